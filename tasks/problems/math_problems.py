"""Math problems for RLVR post-training, from local files in their published formats.

``gsm8k:PATH``: GSM8K rows (``question``, ``answer`` ending in ``#### <final answer>``).
``jsonl:PATH``: rows with ``question`` and ``answer`` (the final answer itself).
A row that cannot be read is quarantined with file, row, field and reason; loading goes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.problems.sources import Quarantined, RowError, read_rows
from tasks.records import write_jsonl
from tasks.stage_run import StageRun, stage


def gsm8k_answer(text: Any) -> str:
    if not isinstance(text, str) or "####" not in text:
        raise RowError("answer", "no_final_answer", "a GSM8K answer ends with '#### <final answer>'")
    final = text.rsplit("####", 1)[1].strip().replace(",", "")
    if not final:
        raise RowError("answer", "no_final_answer", "nothing after '####'")
    return final


def convert_math_row(row: Any, row_number: int, kind: str, stem: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise RowError("(row)", "not_object", f"expected an object, got {type(row).__name__}")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise RowError("question", "missing_field", "a non-empty question is required")
    if kind == "gsm8k":
        answer = gsm8k_answer(row.get("answer"))
    else:
        answer = row.get("answer")
        if not isinstance(answer, (str, int, float)) or not str(answer).strip():
            raise RowError("answer", "missing_field", "a final answer (string or number) is required")
        answer = str(answer).strip()
    return {"id": str(row.get("id") or f"{stem}/{row_number}"), "question": question.strip(), "answer": answer}


def load_math_source(source: str) -> tuple[list[dict[str, Any]], list[Quarantined], int]:
    """(problems, quarantined rows, rows read) for ``gsm8k:PATH`` or ``jsonl:PATH``."""
    kind, _, location = source.partition(":")
    if kind not in ("gsm8k", "jsonl") or not location:
        raise ValueError(f"math source {source!r}: expected gsm8k:PATH or jsonl:PATH")
    path = Path(location)
    problems, quarantined, rows = [], [], 0
    for row_number, row in read_rows(path):
        rows += 1
        try:
            if isinstance(row, RowError):
                raise row
            problems.append(convert_math_row(row, row_number, kind, path.stem))
        except RowError as error:
            quarantined.append(Quarantined.from_error(source, path, row_number, error))
    return problems, quarantined, rows


@stage("load_math_problems")
def load_math_problems(source: str) -> str:
    """Math problems (problems.jsonl: id, question, answer) with bad rows in quarantine.jsonl."""
    with StageRun() as run:
        problems, quarantined, rows = load_math_source(source)
        for row in quarantined[:5]:
            run.log.warning("quarantined: %s", row.message)
        if not problems:
            raise ValueError(f"{source}: no usable math problem in {rows} rows")
        staged = run.staging("math")
        write_jsonl(staged / "problems.jsonl", problems)
        write_jsonl(staged / "quarantine.jsonl", [q.to_dict() for q in quarantined])
        (staged / "ledger.json").write_text(
            json.dumps({"rows_in": rows, "problems": len(problems), "quarantined": len(quarantined)})
        )
        return run.output(
            "problems",
            staged,
            kind="dataset",
            name="math-problems",
            metrics={"problems": len(problems), "quarantined": len(quarantined)},
        )
