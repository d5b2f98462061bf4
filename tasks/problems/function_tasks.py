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
from typing import Any, Callable

from tasks.records import ProblemFormatError, hashed_fraction, make_problem

INTS, STR, WORDS, INT, BOOL, COUNTS = "list[int]", "str", "list[str]", "int", "bool", "dict[str, int]"
ARG_NAMES = {INTS: "nums", STR: "text", WORDS: "words", INT: "n", COUNTS: "counts"}
UNSEEN_COMPOSITIONS = 0.15  # share of operation sequences never drawn for training
EVAL_SPECS = 0.25  # share of specs (operations + constants) on the eval side
TESTS_PER_TASK = 8


@dataclass(frozen=True)
class Operation:
    """One step: from type ``takes`` to type ``gives``. ``code`` is an expression of ``{x}`` (and ``{k}``),
    ``says`` the docstring's sentence, ``hint`` what the line must get right (an inline thought)."""

    name: str
    takes: str
    gives: str
    code: str
    says: str
    hint: str
    run: Callable[..., Any]
    constants: tuple[int, ...] = ()


def _op(name, takes, gives, code, says, hint, run, constants=()):
    return Operation(name, takes, gives, code, says, hint, run, tuple(constants))


OPERATIONS: tuple[Operation, ...] = (
    _op(
        "keep_even",
        INTS,
        INTS,
        "[v for v in {x} if v % 2 == 0]",
        "keep only the even numbers",
        "even means v % 2 == 0",
        lambda x, k: [v for v in x if v % 2 == 0],
    ),
    _op(
        "keep_odd",
        INTS,
        INTS,
        "[v for v in {x} if v % 2 != 0]",
        "keep only the odd numbers",
        "odd means v % 2 != 0, negatives too",
        lambda x, k: [v for v in x if v % 2 != 0],
    ),
    _op(
        "keep_positive",
        INTS,
        INTS,
        "[v for v in {x} if v > 0]",
        "keep only the numbers greater than 0",
        "zero is not positive, so use > 0",
        lambda x, k: [v for v in x if v > 0],
    ),
    _op(
        "keep_above",
        INTS,
        INTS,
        "[v for v in {x} if v > {k}]",
        "keep only the numbers greater than {k}",
        "strictly greater than {k}",
        lambda x, k: [v for v in x if v > k],
        range(1, 11),
    ),
    _op(
        "double",
        INTS,
        INTS,
        "[v * 2 for v in {x}]",
        "double every number",
        "each number times 2",
        lambda x, k: [v * 2 for v in x],
    ),
    _op(
        "square",
        INTS,
        INTS,
        "[v * v for v in {x}]",
        "square every number",
        "each number times itself",
        lambda x, k: [v * v for v in x],
    ),
    _op(
        "add_k",
        INTS,
        INTS,
        "[v + {k} for v in {x}]",
        "add {k} to every number",
        "add {k} to each item",
        lambda x, k: [v + k for v in x],
        range(1, 11),
    ),
    _op(
        "sort_up",
        INTS,
        INTS,
        "sorted({x})",
        "sort the numbers in increasing order",
        "sorted() gives a new list, smallest first",
        lambda x, k: sorted(x),
    ),
    _op(
        "sort_down",
        INTS,
        INTS,
        "sorted({x}, reverse=True)",
        "sort the numbers in decreasing order",
        "reverse=True puts the largest first",
        lambda x, k: sorted(x, reverse=True),
    ),
    _op(
        "reverse_list",
        INTS,
        INTS,
        "{x}[::-1]",
        "reverse the order of the numbers",
        "a [::-1] slice reverses the list",
        lambda x, k: x[::-1],
    ),
    _op(
        "first_k",
        INTS,
        INTS,
        "{x}[:{k}]",
        "take the first {k} numbers (all of them if there are fewer)",
        "a slice stops safely at the end",
        lambda x, k: x[:k],
        range(1, 6),
    ),
    _op(
        "dedupe",
        INTS,
        INTS,
        "list(dict.fromkeys({x}))",
        "remove repeated numbers, keeping the first of each",
        "dict.fromkeys keeps the first order",
        lambda x, k: list(dict.fromkeys(x)),
    ),
    _op(
        "total",
        INTS,
        INT,
        "sum({x})",
        "return the sum of the numbers (0 for none)",
        "sum() of an empty list is 0",
        lambda x, k: sum(x),
    ),
    _op(
        "largest",
        INTS,
        INT,
        "max({x}, default=0)",
        "return the largest number (0 for none)",
        "max needs default=0 for an empty list",
        lambda x, k: max(x, default=0),
    ),
    _op(
        "smallest",
        INTS,
        INT,
        "min({x}, default=0)",
        "return the smallest number (0 for none)",
        "min needs default=0 for an empty list",
        lambda x, k: min(x, default=0),
    ),
    _op(
        "count",
        INTS,
        INT,
        "len({x})",
        "return how many numbers there are",
        "len() counts the items",
        lambda x, k: len(x),
    ),
    _op(
        "count_above",
        INTS,
        INT,
        "sum(1 for v in {x} if v > {k})",
        "return how many numbers are greater than {k}",
        "count only items strictly above {k}",
        lambda x, k: sum(1 for v in x if v > k),
        range(0, 11),
    ),
    _op(
        "all_positive",
        INTS,
        BOOL,
        "all(v > 0 for v in {x})",
        "return True if every number is greater than 0",
        "all() of nothing is True",
        lambda x, k: all(v > 0 for v in x),
    ),
    _op(
        "has_even",
        INTS,
        BOOL,
        "any(v % 2 == 0 for v in {x})",
        "return True if any number is even",
        "any() stops at the first even number",
        lambda x, k: any(v % 2 == 0 for v in x),
    ),
    _op(
        "abs_value",
        INT,
        INT,
        "abs({x})",
        "return its absolute value",
        "abs() drops the minus sign",
        lambda x, k: abs(x),
    ),
    _op(
        "times_k", INT, INT, "{x} * {k}", "multiply it by {k}", "multiply, do not add", lambda x, k: x * k, range(2, 10)
    ),
    _op(
        "mod_k",
        INT,
        INT,
        "{x} % {k}",
        "return the remainder after dividing it by {k}",
        "% gives the remainder",
        lambda x, k: x % k,
        range(2, 11),
    ),
    _op(
        "upper",
        STR,
        STR,
        "{x}.upper()",
        "make the text upper case",
        ".upper() returns a new string",
        lambda x, k: x.upper(),
    ),
    _op(
        "lower",
        STR,
        STR,
        "{x}.lower()",
        "make the text lower case",
        ".lower() returns a new string",
        lambda x, k: x.lower(),
    ),
    _op(
        "reverse_text",
        STR,
        STR,
        "{x}[::-1]",
        "reverse the text",
        "a [::-1] slice reverses the string",
        lambda x, k: x[::-1],
    ),
    _op(
        "drop_vowels",
        STR,
        STR,
        "''.join(c for c in {x} if c.lower() not in 'aeiou')",
        "remove every vowel (a, e, i, o, u, either case)",
        "check c.lower() so capitals go too",
        lambda x, k: "".join(c for c in x if c.lower() not in "aeiou"),
    ),
    _op(
        "drop_spaces",
        STR,
        STR,
        "{x}.replace(' ', '')",
        "remove every space",
        "replace spaces with nothing",
        lambda x, k: x.replace(" ", ""),
    ),
    _op(
        "text_length",
        STR,
        INT,
        "len({x})",
        "return the number of characters",
        "len() counts every character",
        lambda x, k: len(x),
    ),
    _op(
        "count_vowels",
        STR,
        INT,
        "sum(1 for c in {x} if c.lower() in 'aeiou')",
        "return how many vowels (a, e, i, o, u, either case) it has",
        "count c.lower() in 'aeiou'",
        lambda x, k: sum(1 for c in x if c.lower() in "aeiou"),
    ),
    _op(
        "is_palindrome",
        STR,
        BOOL,
        "{x} == {x}[::-1]",
        "return True if it reads the same backwards",
        "compare with its reverse",
        lambda x, k: x == x[::-1],
    ),
    _op(
        "split_words",
        STR,
        WORDS,
        "{x}.split()",
        "split it into words at spaces",
        "split() with no argument drops empty words",
        lambda x, k: x.split(),
    ),
    _op(
        "long_words",
        WORDS,
        WORDS,
        "[w for w in {x} if len(w) > {k}]",
        "keep only the words longer than {k} letters",
        "strictly longer than {k}",
        lambda x, k: [w for w in x if len(w) > k],
        range(1, 6),
    ),
    _op(
        "sort_words",
        WORDS,
        WORDS,
        "sorted({x})",
        "sort the words alphabetically",
        "sorted() orders strings alphabetically",
        lambda x, k: sorted(x),
    ),
    _op(
        "upper_words",
        WORDS,
        WORDS,
        "[w.upper() for w in {x}]",
        "make every word upper case",
        "upper-case each word",
        lambda x, k: [w.upper() for w in x],
    ),
    _op(
        "join_words",
        WORDS,
        STR,
        "' '.join({x})",
        "join the words with single spaces",
        "' '.join puts one space between words",
        lambda x, k: " ".join(x),
    ),
    _op(
        "join_dashes",
        WORDS,
        STR,
        "'-'.join({x})",
        "join the words with dashes",
        "'-'.join puts a dash between words",
        lambda x, k: "-".join(x),
    ),
    _op(
        "word_count",
        WORDS,
        INT,
        "len({x})",
        "return how many words there are",
        "len() of the word list",
        lambda x, k: len(x),
    ),
    _op(
        "count_each",
        WORDS,
        COUNTS,
        "{{w: {x}.count(w) for w in {x}}}",
        "map each word to how many times it occurs",
        "count every word in the whole list",
        lambda x, k: {w: x.count(w) for w in x},
    ),
    _op(
        "word_lengths",
        WORDS,
        COUNTS,
        "{{w: len(w) for w in {x}}}",
        "map each word to its length",
        "each key is a word, its value len(word)",
        lambda x, k: {w: len(w) for w in x},
    ),
    _op(
        "most_common",
        COUNTS,
        INT,
        "max({x}.values(), default=0)",
        "return the largest value (0 for none)",
        "max over the values, default=0",
        lambda x, k: max(x.values(), default=0),
    ),
    _op(
        "keys_sorted",
        COUNTS,
        WORDS,
        "sorted({x})",
        "return its keys in alphabetical order",
        "sorted() of a dict sorts its keys",
        lambda x, k: sorted(x),
    ),
    _op(
        "values_total",
        COUNTS,
        INT,
        "sum({x}.values())",
        "return the sum of its values",
        "sum the values, not the keys",
        lambda x, k: sum(x.values()),
    ),
)
BY_NAME = {op.name: op for op in OPERATIONS}
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
