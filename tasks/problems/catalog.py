"""Problem sources by name, the train/eval split rule and reference-recorded tests: plain
functions without Prefect, so ``thinkflow problems load`` and ``thinkflow verify`` start without
the orchestrator; the problem stages (``tasks.problems.load``) run them inside Prefect tasks."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.reference import convert_tests
from tasks.problems.bundled import humaneval_file, leetcode_folder, load_humaneval, load_leetcode
from tasks.problems.function_tasks import generate_tasks, parse_options
from tasks.problems.sources import PUBLISHED_FORMATS, LoadResult, load_rows
from tasks.records import ProblemFormatError, hashed_fraction


def load_source(name: str, difficulties: Iterable[str] | None = None, limit: int | None = None) -> LoadResult:
    """``leetcode`` | ``humaneval`` | ``functions[:OPTIONS]`` | ``skywork:PATH`` | ``mbpp:PATH`` | ``livecodebench:PATH`` |
    ``jsonl:PATH``. ``functions`` is the generated task family (tasks/problems/function_tasks.py); ``difficulties``
    does not apply to it (its ``ops`` option is the difficulty)."""
    kind, _, path = name.partition(":")
    if kind == "functions":
        tasks = generate_tasks(**parse_options(path))
        result = LoadResult(problems=tasks, source=name, rows_in=len(tasks))
    elif name == "leetcode":
        result = load_leetcode(difficulties=difficulties)
    elif name == "humaneval":
        result = load_humaneval()
    elif kind in PUBLISHED_FORMATS and path:
        result = load_rows(name, Path(path), PUBLISHED_FORMATS[kind])
    else:
        raise ProblemFormatError(
            f"unknown problem source {name!r}; known: leetcode, humaneval, functions[:split=train,seed=0,count=500,ops=1-3], skywork:PATH, mbpp:PATH, livecodebench:PATH, jsonl:PATH"
        )
    if limit is not None and len(result.problems) > limit:
        result.skipped["over_limit"] += len(result.problems) - limit
        result.problems = result.problems[:limit]
    return result


def source_files(name: str) -> list[Path]:
    """The files a source reads (the installed wheel's data for leetcode and humaneval)."""
    kind, _, path = name.partition(":")
    if name == "leetcode":
        return sorted(leetcode_folder().glob("*.json"))
    if name == "humaneval":
        return [humaneval_file()]
    if kind in PUBLISHED_FORMATS and path:
        return [Path(path)]
    return []


def source_fingerprints(names: list[str]) -> dict[str, str]:
    """A content hash of each source's files, so a load is redone when its data changes (new
    rows in a parquet file, a newer wheel), not only when the recipe does. A missing file hashes
    as missing; loading it then fails with the file named."""
    prints = {}
    for name in names:
        digest = hashlib.sha256()
        for path in source_files(name):
            digest.update(path.name.encode() + b"\0")
            digest.update(path.read_bytes() if path.is_file() else b"<missing>")
        prints[name] = digest.hexdigest()[:16]
    return prints


def split_of(problem_id: str, eval_fraction: float, seed: int) -> str:
    """``train`` or ``eval``, from a hash of the id: stable across runs, machines and orderings."""
    return "eval" if hashed_fraction(problem_id, seed) < eval_fraction else "train"


def record_reference_tests(problems: list[dict[str, Any]], cfg: SandboxConfig) -> Counter:
    """Replace check/assert tests by call tests recorded from each problem's reference (in place).

    Problems whose tests cannot be recorded keep them (run inside the sandbox) and say why in
    ``meta.tests_in_sandbox``. Returns counts: recorded, in_sandbox."""
    conversions = convert_tests([(p["tests"], p.get("reference")) for p in problems], cfg)
    counts: Counter = Counter()
    for problem, conversion in zip(problems, conversions):
        if conversion.converted:
            problem["tests"] = conversion.tests
            counts["recorded"] += 1
        elif problem["tests"]["kind"] in ("check", "assert"):
            problem.setdefault("meta", {})["tests_in_sandbox"] = conversion.reason
            counts["in_sandbox"] += 1
    return counts
