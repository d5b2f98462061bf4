"""Problem sources in their published formats → Problem records; every bad row is quarantined.

``load_source(name)``: ``leetcode`` and ``humaneval`` (read from the installed wheels),
``skywork:PATH``, ``mbpp:PATH``, ``livecodebench:PATH`` (parquet, JSONL or gzipped JSONL files in
the published formats) and ``jsonl:PATH`` (our own Problem schema). Row numbers count from 1: a
JSONL file's line, a parquet file's row.

Nothing is dropped silently. A row that cannot become a Problem is *quarantined*: kept with its
file, row, field, a reason code and a message a person can act on (``skywork.parquet row 12:
reward_model.ground_truth: inputs has 3 items, outputs has 2``), and loading goes on. A row a
source deliberately leaves out (a LeetCode shape we cannot test, past a ``limit``) is *skipped*,
counted by reason. Every LoadResult reconciles: rows in = problems + skipped + quarantined.
"""

from __future__ import annotations

import ast
import base64
import gzip
import io
import json
import pickle
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sandbox.reference import function_under_test
from sandbox.verdicts import TestSpecError, count_tests
from tasks.records import ProblemFormatError, make_problem, validate_problem

LEETCODE_PRELUDE = (
    "from typing import *\nimport collections, heapq, bisect, itertools, functools, math, string, re\n"
    "from collections import *\nfrom functools import *\nfrom itertools import *\nfrom heapq import *\n"
    "from bisect import *\nfrom math import *\n"
)
MAX_PRIVATE_TESTS_BYTES = 256 * 1024 * 1024  # a decompressed LiveCodeBench private test blob


@dataclass(frozen=True)
class Quarantined:
    """A row that could not become a Problem, and why."""

    source: str
    file: str
    row: int
    field: str
    reason: str
    message: str

    @classmethod
    def from_error(cls, source: str, path: Path, row: int, error: RowError) -> Quarantined:
        return cls(
            source, str(path), row, error.field, error.reason, f"{path.name} row {row}: {error.field}: {error.detail}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RowError(ValueError):
    """Raised by a converter: which field of the row is wrong, a reason code, and what is wrong."""

    def __init__(self, field_name: str, reason: str, detail: str):
        super().__init__(detail)
        self.field, self.reason, self.detail = field_name, reason, detail


@dataclass
class LoadResult:
    problems: list[dict[str, Any]]
    skipped: Counter = field(default_factory=Counter)  # reason -> rows a source leaves out on purpose
    source: str = ""
    quarantined: list[Quarantined] = field(default_factory=list)
    rows_in: int = 0

    def quarantine_counts(self) -> Counter:
        return Counter(q.reason for q in self.quarantined)

    def reconciles(self) -> bool:
        return self.rows_in == len(self.problems) + sum(self.skipped.values()) + len(self.quarantined)


# -- reading rows ----------------------------------------------------------------------------------


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(row number, row) for each row of a parquet, JSONL or gzipped JSONL file; a line that is
    not JSON comes as a RowError in place of the row."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=256)
            row_number = 0
            for batch in batches:
                for row in batch.to_pylist():
                    row_number += 1
                    yield row_number, row
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise ProblemFormatError(f"{path}: not a readable parquet file: {exc}") from None
        return
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for row_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield row_number, json.loads(line)
            except ValueError as exc:
                yield row_number, RowError("(row)", "not_json", f"not valid JSON: {exc}")


def take(
    row: Any,
    path: str,
    kind: type | tuple[type, ...] | None = None,
    required: bool = True,
    missing_reason: str = "missing_field",
) -> Any:
    """``row["a"]["b"]`` for ``path="a.b"``, type-checked; a missing value raises RowError naming the path."""
    node = row
    for part in path.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            if required:
                raise RowError(path, missing_reason, "missing")
            return None
        node = node[part]
    if kind is not None and not isinstance(node, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise RowError(path, "bad_type", f"expected {names}, got {type(node).__name__}")
    return node


def load_rows(source: str, path: Path, convert: Callable[[Any, int], dict[str, Any]]) -> LoadResult:
    """Convert every row; quarantine the ones that fail (bad JSON, a wrong field, a repeated id)."""
    result = LoadResult(problems=[], source=source)
    seen: set[str] = set()

    for row_number, row in read_rows(path):
        result.rows_in += 1
        try:
            if isinstance(row, RowError):
                raise row
            if not isinstance(row, dict):
                raise RowError("(row)", "not_object", f"expected an object, got {type(row).__name__}")
            problem = convert(row, row_number)
            try:
                count_tests(problem["id"], problem["tests"])
            except TestSpecError as exc:
                raise RowError("tests", "bad_tests", str(exc)) from None
            if problem["id"] in seen:
                raise RowError("id", "duplicate_id", f"{problem['id']} already appeared in an earlier row")
        except RowError as error:
            result.quarantined.append(Quarantined.from_error(source, path, row_number, error))
            continue
        seen.add(problem["id"])
        result.problems.append(problem)
    return result


# -- Skywork-OR1-RL-Data (code split) ------------------------------------------------------------


def stdio_text(value: Any, where: str) -> str:
    """A stdin/stdout test value: a string, or a list of lines (joined, as APPS/TACO do)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    raise RowError(where, "bad_test_case", f"expected a string (or a list of lines), got {type(value).__name__}")


def ground_truth_tests(truth: Any, where: str, prompt: str) -> dict[str, Any]:
    """APPS/TACO-style ``{"inputs", "outputs", "fn_name"?}`` → a tests spec."""
    if not isinstance(truth, dict):
        raise RowError(
            where, "ground_truth_unparsable", f"expected an object with inputs and outputs, got {type(truth).__name__}"
        )
    inputs, outputs = truth.get("inputs"), truth.get("outputs")
    for name, value in (("inputs", inputs), ("outputs", outputs)):
        if not isinstance(value, list):
            raise RowError(f"{where}.{name}", "ground_truth_unparsable", f"expected a list, got {type(value).__name__}")
    if len(inputs) != len(outputs):
        raise RowError(where, "io_length_mismatch", f"inputs has {len(inputs)} items, outputs has {len(outputs)}")
    if not inputs:
        raise RowError(f"{where}.inputs", "no_test_cases", "no test cases")
    fn_name = truth.get("fn_name")
    if fn_name is None:
        return {
            "kind": "stdio",
            "inputs": [stdio_text(v, f"{where}.inputs[{i}]") for i, v in enumerate(inputs)],
            "outputs": [stdio_text(v, f"{where}.outputs[{i}]") for i, v in enumerate(outputs)],
        }
    if not isinstance(fn_name, str) or not fn_name.isidentifier():
        raise RowError(f"{where}.fn_name", "bad_type", f"expected a function name, got {fn_name!r}")
    for index, args in enumerate(inputs):
        if not isinstance(args, list):
            raise RowError(f"{where}.inputs[{index}]", "bad_test_case", "call-based inputs must be argument lists")
    tests = {
        "kind": "call",
        "fn_name": fn_name,
        "inputs": inputs,
        "outputs": outputs,
        "compare": "maybe_wrapped",
        "setup": LEETCODE_PRELUDE,
    }
    if re.search(r"class\s+Solution\b", prompt):
        tests["class_name"] = "Solution"
    return tests


def convert_skywork(row: dict[str, Any], row_number: int) -> dict[str, Any]:
    messages = take(row, "prompt", list)
    users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users or not isinstance(users[-1], str) or not users[-1].strip():
        raise RowError("prompt", "bad_type", "no user message with text in the chat list")
    prompt = users[-1]
    truth = take(row, "reward_model.ground_truth", (str, dict), missing_reason="ground_truth_missing")
    if isinstance(truth, str):
        try:
            truth = json.loads(truth)
        except ValueError as exc:
            raise RowError("reward_model.ground_truth", "ground_truth_unparsable", f"not valid JSON: {exc}") from None
    tests = ground_truth_tests(truth, "reward_model.ground_truth", prompt)
    difficulty = take(row, "extra_info.model_difficulty", dict, required=False) or {}
    for model, level in difficulty.items():
        if type(level) is not int or not 0 <= level <= 16:
            raise RowError(
                f"extra_info.model_difficulty.{model}", "bad_difficulty", f"expected an integer 0-16, got {level!r}"
            )
    index = take(row, "extra_info.index", (int, str), required=False)
    return make_problem(
        id=f"skywork/{index if index is not None else row_number}",
        source="skywork",
        prompt=prompt,
        tests=tests,
        meta={"data_source": row.get("data_source"), "model_difficulty": difficulty},
    )


# -- MBPP ----------------------------------------------------------------------------------------


def convert_mbpp(row: dict[str, Any], row_number: int) -> dict[str, Any]:
    """The original (``text``, ``test_setup_code``) and the sanitized (``prompt``, ``test_imports``) layouts."""
    task_id = take(row, "task_id", (int, str))
    text = take(row, "text" if "text" in row else "prompt", str)
    code = take(row, "code", str)
    asserts = take(row, "test_list", list)
    if not asserts:
        raise RowError("test_list", "no_test_cases", "no test cases")
    for index, line in enumerate(asserts):
        if not isinstance(line, str):
            raise RowError(f"test_list[{index}]", "bad_test_case", f"expected a string, got {type(line).__name__}")
        try:
            ast.parse(line)
        except SyntaxError as exc:
            raise RowError(f"test_list[{index}]", "bad_test_case", f"not valid Python: {exc.msg}") from None
    setup = take(row, "test_setup_code", str, required=False) or ""
    imports = take(row, "test_imports", list, required=False) or []
    if not all(isinstance(line, str) for line in imports):
        raise RowError("test_imports", "bad_type", "expected a list of strings")
    fn_name = function_under_test({"asserts": asserts})
    if not fn_name:
        raise RowError("test_list", "bad_test_case", "cannot tell which function the asserts call")
    prompt = f"{text.strip()}\nYour code should pass these tests:\n\n" + "\n".join(asserts)
    return make_problem(
        id=f"mbpp/{task_id}",
        source="mbpp",
        prompt=prompt,
        reference=code,
        tests={"kind": "assert", "asserts": asserts, "setup": "\n".join(imports + [setup]).strip(), "fn_name": fn_name},
    )


# -- LiveCodeBench code_generation_lite ------------------------------------------------------------


class _StringsOnlyUnpickler(pickle.Unpickler):
    """LiveCodeBench's private tests are pickled strings; anything naming a global is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: the test data may hold strings only")


def decode_test_cases(row: dict[str, Any], name: str) -> list[Any]:
    """A JSON list of test cases, or (private tests) base64 → zlib → pickle → that JSON."""
    value = row.get(name)
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if not isinstance(value, str):
        raise RowError(name, "bad_type", f"expected a string, got {type(value).__name__}")
    try:
        return json.loads(value)
    except ValueError:
        pass
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(value, validate=True), MAX_PRIVATE_TESTS_BYTES)
        if inflater.unconsumed_tail:
            raise ValueError(f"more than {MAX_PRIVATE_TESTS_BYTES // 2**20} MB decompressed")
        decoded = _StringsOnlyUnpickler(io.BytesIO(raw)).load()
        return json.loads(decoded)
    except (ValueError, zlib.error, pickle.UnpicklingError, EOFError, TypeError) as exc:
        raise RowError(name, "tests_undecodable", f"neither JSON nor base64/zlib/pickle JSON: {exc}") from None


def functional_arguments(text: str, where: str) -> list[Any]:
    try:
        return [json.loads(line) for line in text.split("\n") if line.strip()]
    except ValueError as exc:
        raise RowError(where, "bad_test_case", f"each line must be one JSON argument: {exc}") from None


def convert_livecodebench(row: dict[str, Any], row_number: int) -> dict[str, Any]:
    question_id = take(row, "question_id", (str, int))
    content = take(row, "question_content", str)
    cases = []
    for name in ("public_test_cases", "private_test_cases"):
        decoded = decode_test_cases(row, name)
        if not isinstance(decoded, list):
            raise RowError(name, "bad_type", f"expected a list of test cases, got {type(decoded).__name__}")
        for index, case in enumerate(decoded):
            where = f"{name}[{index}]"
            if (
                not isinstance(case, dict)
                or not isinstance(case.get("input"), str)
                or not isinstance(case.get("output"), str)
            ):
                raise RowError(where, "bad_test_case", "expected an object with string input and output")
            if case.get("testtype") not in ("stdin", "functional"):
                raise RowError(
                    f"{where}.testtype", "bad_test_case", f"expected stdin or functional, got {case.get('testtype')!r}"
                )
            cases.append((where, case))
    if not cases:
        raise RowError("public_test_cases", "no_test_cases", "no test cases (public or private)")
    kinds = {case["testtype"] for _, case in cases}
    if len(kinds) > 1:
        raise RowError("private_test_cases", "mixed_test_types", "stdin and functional tests in one problem")
    if kinds == {"stdin"}:
        tests = {"kind": "stdio", "inputs": [c["input"] for _, c in cases], "outputs": [c["output"] for _, c in cases]}
    else:
        metadata = take(row, "metadata", (str, dict))
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError as exc:
                raise RowError("metadata", "bad_type", f"not valid JSON: {exc}") from None
        fn_name = take({"metadata": metadata}, "metadata.func_name", str)
        outputs = []
        for where, case in cases:
            try:
                outputs.append(json.loads(case["output"]))
            except ValueError as exc:
                raise RowError(f"{where}.output", "bad_test_case", f"not valid JSON: {exc}") from None
        tests = {
            "kind": "call",
            "fn_name": fn_name,
            "class_name": "Solution",
            "setup": LEETCODE_PRELUDE,
            "inputs": [functional_arguments(c["input"], f"{w}.input") for w, c in cases],
            "outputs": outputs,
        }
    return make_problem(
        id=f"livecodebench/{question_id}",
        source="livecodebench",
        prompt=content,
        starter_code=take(row, "starter_code", str, required=False) or "",
        tests=tests,
        difficulty=take(row, "difficulty", str, required=False),
        meta={
            "title": row.get("question_title"),
            "platform": row.get("platform"),
            "contest_date": row.get("contest_date"),
        },
    )


# -- our own JSONL ---------------------------------------------------------------------------------


def convert_own(row: dict[str, Any], row_number: int) -> dict[str, Any]:
    try:
        return validate_problem(row, f"row {row_number}")
    except ProblemFormatError as exc:
        raise RowError(exc.field, exc.reason, str(exc).split(": ", 1)[-1]) from None


def load_jsonl(path: Path) -> LoadResult:
    return load_rows(f"jsonl:{path}", path, convert_own)


PUBLISHED_FORMATS: dict[str, Callable[[dict[str, Any], int], dict[str, Any]]] = {
    "skywork": convert_skywork,
    "mbpp": convert_mbpp,
    "livecodebench": convert_livecodebench,
    "jsonl": convert_own,
}
