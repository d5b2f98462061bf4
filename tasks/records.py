"""The Problem record every loader produces, how it is checked, written and shown to a model.

A Problem is one JSON object (ARCHITECTURE.md, Records). ``validate_problem`` names the file, the
row and the field when a record is wrong; loaders turn that into a quarantined row, never a
silent drop.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sandbox.verdicts import TestSpecError, count_tests

REQUIRED_FIELDS = ("id", "source", "prompt", "tests")


class ProblemFormatError(ValueError):
    """A record or file cannot be read as problems; the message names file, row and field."""

    def __init__(self, message: str, field: str = "", reason: str = "bad_record"):
        super().__init__(message)
        self.field, self.reason = field, reason


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
        raise ProblemFormatError(f"{where}: expected a JSON object, got {type(record).__name__}", "(row)", "not_object")
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        raise ProblemFormatError(f"{where}: missing field(s) {', '.join(missing)}", missing[0], "missing_field")
    for name in ("id", "source", "prompt"):
        if not isinstance(record[name], str) or not record[name]:
            raise ProblemFormatError(f"{where}: field {name} must be a non-empty string", name, "bad_type")
    if not isinstance(record["tests"], dict):
        raise ProblemFormatError(f"{where}: field tests must be an object", "tests", "bad_type")
    try:
        count_tests(record["id"], record["tests"])
    except TestSpecError as exc:
        raise ProblemFormatError(f"{where}: {exc}", "tests", "bad_tests") from None
    return make_problem(**record)


def render_user_prompt(problem: dict[str, Any]) -> str:
    if problem["tests"]["kind"] == "check":
        return (
            "Complete the following Python function. Reply with the whole function in one ```python block.\n\n"
            f"```python\n{problem['prompt'].rstrip()}\n```"
        )
    starter = (
        f"\n\nStart from this code:\n```python\n{problem['starter_code'].rstrip()}\n```"
        if problem["starter_code"]
        else ""
    )
    return f"{problem['prompt'].rstrip()}{starter}\n\nReply with the solution in one ```python block."


def chat_prompt(problem: dict[str, Any], system_prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": render_user_prompt(problem)}]


def hashed_fraction(key: str, seed: int) -> float:
    """A number in [0, 1) from a seeded hash of ``key``: stable across runs, machines and orderings
    (train/eval splits, corpus halves, benchmark subsets)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


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
