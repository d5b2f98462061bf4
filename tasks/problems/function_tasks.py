"""A task family sized to the policy: HumanEval-style function tasks composed from small operations.

Why our own generator: no package on PyPI makes Python function-writing tasks with tests from a
seed (checked 2026-12-05: reasoning-gym's code tasks are Brainf*ck and output prediction; the
test-case generators there make inputs for a given program, not programs). A 135M model solves
almost no HumanEval or LeetCode problem at temperature 1, so GRPO groups carry no correctness
variance; these tasks are built so that it solves some of them, and the number of composed
operations (``ops``) is the difficulty knob.

A task is a chain of 1-3 typed operations (list[int] → list[int] → int, str → list[str] → dict …).
Its prompt is a typed signature with a docstring (one sentence per operation and one example); its
hidden tests are call tests whose expected values come from running the reference implementation
(our own code, made here, never the model's) on seeded inputs. Every operation also says what its
line of code must get right (``Operation.hint``): the cold-start set uses it as the inline thought.

Generalisation, not memory: a task's *spec* (its operations and their constants) falls on the
train or the eval side by a hash, and a share of the compositions (operation sequences) is never
on the train side at all. ``split=train`` draws only train-side specs of seen compositions;
``split=eval`` draws only eval-side specs, of seen and unseen compositions alike (``meta.composition_seen``
says which), so no held-out task is a training task with other inputs.

Source string: ``functions:split=train,seed=0,count=600,ops=1-3`` (every key optional).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tasks.problems.function_operations import (  # noqa: F401 (re-exported: the tests and the hints read them here)
    ARG_NAMES,
    BY_NAME,
    COUNTS,
    INT,
    INTS,
    OPERATIONS,
    STR,
    WORDS,
    Operation,
)
from tasks.records import ProblemFormatError, hashed_fraction, make_problem

UNSEEN_COMPOSITIONS = 0.15  # share of operation sequences never drawn for training
EVAL_SPECS = 0.25  # share of specs (operations + constants) on the eval side
TESTS_PER_TASK = 8

START_TYPES = (INTS, STR)  # a task's argument: a list of ints or a text
RESULT_WORDS = {INTS: "numbers", WORDS: "words", STR: "text", INT: "number", COUNTS: "mapping"}
WORDS_POOL = (
    "apple",
    "tree",
    "sky",
    "moon",
    "level",
    "data",
    "code",
    "red",
    "blue",
    "noon",
    "cat",
    "a",
    "banana",
    "river",
    "stone",
    "Ada",
    "radar",
    "go",
    "light",
    "sun",
)


@dataclass(frozen=True)
class Spec:
    """A task without its inputs: the operations in order and each one's constant (or None)."""

    ops: tuple[str, ...]
    constants: tuple[int | None, ...]

    @property
    def composition(self) -> str:
        return ">".join(self.ops)

    @property
    def key(self) -> str:
        return ";".join(f"{name}:{k}" for name, k in zip(self.ops, self.constants))


def composition_seen(composition: str) -> bool:
    """False for the share of compositions that never reaches the train side."""
    return hashed_fraction(f"composition:{composition}", 0) >= UNSEEN_COMPOSITIONS


def spec_side(spec: Spec) -> str:
    """``train`` or ``eval`` for a spec: fixed by hashes, the same for every seed."""
    if hashed_fraction(f"spec:{spec.key}", 0) < EVAL_SPECS:
        return "eval"
    return "train" if composition_seen(spec.composition) else "eval"


def random_spec(rng: random.Random, length: int) -> Spec:
    """A chain of ``length`` operations whose types connect, starting from a list of ints or a text."""
    while True:
        kind, ops = rng.choice(START_TYPES), []
        for _ in range(length):
            choices = [op for op in OPERATIONS if op.takes == kind and op.name not in ops]
            if not choices:
                break
            op = rng.choice(choices)
            ops.append(op.name)
            kind = op.gives
        if len(ops) == length:
            return Spec(
                tuple(ops), tuple(rng.choice(BY_NAME[n].constants) if BY_NAME[n].constants else None for n in ops)
            )


def random_input(rng: random.Random, kind: str) -> Any:
    if kind == INTS:
        return [rng.randint(-9, 20) for _ in range(rng.randint(1, 7))]
    words = [rng.choice(WORDS_POOL) for _ in range(rng.randint(1, 5))]
    return " ".join(words)


def apply(spec: Spec, value: Any) -> Any:
    for name, k in zip(spec.ops, spec.constants):
        value = BY_NAME[name].run(value, k)
    return value


def function_name(spec: Spec) -> str:
    return "_then_".join(spec.ops)


def docstring_sentence(spec: Spec) -> str:
    says = [BY_NAME[name].says.format(k=k) for name, k in zip(spec.ops, spec.constants)]
    says = [
        s.replace("return ", "take ", 1) if i < len(says) - 1 else s for i, s in enumerate(says)
    ]  # only the last returns
    sentence = ", then ".join(says)
    return sentence[0].upper() + sentence[1:] + "."


def reference_code(spec: Spec, doc: str) -> str:
    """One assignment per operation, the last one returned: each line is where its hint belongs."""
    start = BY_NAME[spec.ops[0]].takes
    arg, result = ARG_NAMES[start], BY_NAME[spec.ops[-1]].gives
    lines = [f"def {function_name(spec)}({arg}: {start}) -> {result}:", doc]
    current = arg
    for index, (name, k) in enumerate(zip(spec.ops, spec.constants)):
        expression = BY_NAME[name].code.format(x=current, k=k)
        if index == len(spec.ops) - 1:
            lines.append(f"    return {expression}")
        else:
            current = f"step{index + 1}"
            lines.append(f"    {current} = {expression}")
    return "\n".join(lines) + "\n"


def make_task(spec: Spec, rng: random.Random, task_id: str, seed: int) -> dict[str, Any]:
    start = BY_NAME[spec.ops[0]].takes
    inputs: list[Any] = []
    while len(inputs) < TESTS_PER_TASK + 1:
        value = random_input(rng, start)
        if value not in inputs or len(inputs) > 2 * TESTS_PER_TASK:
            inputs.append(value)
    example, tests = inputs[0], inputs[1:]
    name = function_name(spec)
    doc = f'    """{docstring_sentence(spec)}\n    >>> {name}({example!r})\n    {apply(spec, example)!r}\n    """'
    reference = reference_code(spec, doc)
    signature = reference.split("\n", 1)[0]
    prompt = f"Write this Python function.\n\n```python\n{signature}\n{doc}\n```"
    return make_problem(
        id=task_id,
        source="functions",
        prompt=prompt,
        reference=reference,
        difficulty=f"{len(spec.ops)} ops",
        tests={
            "kind": "call",
            "fn_name": name,
            "inputs": [[value] for value in tests],
            "outputs": [apply(spec, v) for v in tests],
        },
        meta={
            "ops": list(spec.ops),
            "constants": list(spec.constants),
            "composition": spec.composition,
            "composition_seen": composition_seen(spec.composition),
            "seed": seed,
            "hints": [BY_NAME[n].hint.format(k=k) for n, k in zip(spec.ops, spec.constants)],
        },
    )


def parse_options(text: str) -> dict[str, Any]:
    """``split=train,seed=0,count=600,ops=1-3`` → options; a wrong key or value names itself."""
    options: dict[str, Any] = {"split": "train", "seed": 0, "count": 500, "ops": (1, 3)}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        try:
            if key == "split" and value in ("train", "eval"):
                options[key] = value
            elif key in ("seed", "count"):
                options[key] = int(value)
            elif key == "ops":
                low, _, high = value.partition("-")
                options[key] = (int(low), int(high or low))
            else:
                raise ValueError
        except ValueError:
            raise ProblemFormatError(
                f"functions source: {item!r} is not one of split=train|eval, seed=N, count=N, ops=A-B"
            ) from None
    low, high = options["ops"]
    if not 1 <= low <= high <= 3 or options["count"] < 1:
        raise ProblemFormatError(f"functions source {text!r}: ops must be within 1-3 (low-high) and count at least 1")
    return options


def generate_tasks(
    split: str = "train", seed: int = 0, count: int = 500, ops: tuple[int, int] = (1, 3)
) -> list[dict[str, Any]]:
    """``count`` distinct tasks of the ``split`` side, deterministic. Lengths take turns over ``ops``; a
    length whose distinct specs run out (there are few one-operation tasks) leaves its turns to the others."""
    rng = random.Random(f"functions:{split}:{seed}")
    open_lengths = list(range(ops[0], ops[1] + 1))
    tasks, specs, turn = [], set(), 0
    while len(tasks) < count:
        if not open_lengths:
            raise ProblemFormatError(
                f"functions source: only {len(tasks)} distinct {split} tasks of {ops[0]}-{ops[1]} ops exist, "
                f"not {count}; lower count or widen ops"
            )
        length = open_lengths[turn % len(open_lengths)]
        for _ in range(400):
            spec = random_spec(rng, length)
            if spec.key not in specs and spec_side(spec) == split:
                break
        else:
            open_lengths.remove(length)
            continue
        turn += 1
        specs.add(spec.key)
        tasks.append(make_task(spec, rng, f"functions/{split}-s{seed}-{len(tasks):04d}", seed))
    return tasks


def code_marks(code: str) -> set[str]:
    """The names and operators of a code template (``sum``, ``%``, ``[::-1]``, ``upper`` …): what a line
    doing that operation is likely to contain."""
    import re

    marks = set(re.findall(r"[A-Za-z_]\w*|\[::-1\]|%|\*|\+|>|==|!=|'-'|' '", code))
    return marks - {"for", "in", "if", "v", "w", "c", "x", "k", "True", "False"}


def hint_for_line(meta: dict[str, Any], line: str) -> str | None:
    """The hint of the task's operation that the line of code most looks like (most shared marks; the
    earliest operation on a tie), or None when it shares no mark with any of them."""
    best, best_score = None, 0
    for name, hint in zip(meta.get("ops", []), meta.get("hints", [])):
        op = BY_NAME.get(name)
        if op is None:
            continue
        score = sum(1 for mark in code_marks(op.code.format(x="x", k="k")) if mark in line)
        if score > best_score:
            best, best_score = hint, score
    return best


def plan_of(meta: dict[str, Any], prompt: str) -> str | None:
    """The upfront plan for a generated task: its steps in order, from the docstring's sentence."""
    import re

    match = re.search(r'"""(.+?)\n', prompt)
    return f"Steps: {match.group(1).strip()}" if match and meta.get("ops") else None
