"""Problem filters: pure functions registered by name, chained as the recipe lists them.

Every filter has one signature, ``filter(problems, ctx, settings) -> list[str | None]``: for each
problem, ``None`` to keep it or a short detail saying why it goes. ``settings`` is the filter's
typed section from the recipe (``tasks/recipe.py`` owns them, with their defaults and checks). Filters run in the recipe's
order, each on what the previous ones kept, so every dropped problem is charged to exactly one
filter. Dropped problems are written whole, with filter and detail, to ``filtered.jsonl``.

Rows that never became problems (a missing or unparsable ground truth, inputs and outputs of
different lengths, a bad field) were quarantined by the loaders; the stage's report reconciles,
per source and reason, rows in = kept + filtered + quarantined.

Registered: ``prompt_length`` (tokens of the chat prompt, with the policy's tokenizer),
``difficulty_band`` (Skywork's per-model difficulty, 0-16), ``exact_duplicate`` (prompt hash up to case
and spacing), ``near_duplicate`` (MinHash + LSH on word shingles, confirmed by exact Jaccard),
``reference_fails`` (the reference solution fails its tests in the sandbox) and ``pass_rate_band``
(sample k from the policy, keep problems it solves sometimes but not always; off by default).
MinHash and LSH are ``datasketch``'s; the confirmation by exact Jaccard is ours.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.pool import run_batch
from sandbox.verdicts import Job
from tasks.progress import ProgressReport
from tasks.recipe import (
    DifficultyBandFilter,
    ExactDuplicateFilter,
    FilterConfig,
    NearDuplicateFilter,
    PassRateBandFilter,
    PromptLengthFilter,
    ReferenceFailsFilter,
    SandboxSection,
    SolutionsConfig,
)
from tasks.records import chat_prompt, read_jsonl, write_jsonl
from tasks.stage_run import StageRun, stage

Decision = str | None
FILTERS: dict[str, Callable[..., list[Decision]]] = {}


def register(name: str):
    def add(function):
        FILTERS[name] = function
        return function

    return add


@dataclass
class FilterContext:
    """What filters may need besides the problems: the sandbox, the policy, the system prompt."""

    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    policy_dir: Path | None = None
    system_prompt: str = ""
    dtype: str = "float32"
    say: Callable[[str], None] = lambda message: None

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        if self.policy_dir is None:
            raise ValueError("this filter needs the policy model (its tokenizer), and none was given")
        return AutoTokenizer.from_pretrained(self.policy_dir)


class FilterConfigError(ValueError):
    pass


def apply_filters(problems: list[dict[str, Any]], specs: list[FilterConfig], ctx: FilterContext):
    """(kept problems, dropped rows) after the filters in order; a dropped row is the problem plus
    ``filter`` and ``detail``."""
    kept, dropped = list(problems), []
    for spec in specs:
        decisions = FILTERS[spec.name](kept, ctx, spec)
        if len(decisions) != len(kept):
            raise RuntimeError(f"filter {spec.name} decided {len(decisions)} of {len(kept)} problems")
        survivors = []
        for problem, detail in zip(kept, decisions):
            if detail is None:
                survivors.append(problem)
            else:
                dropped.append({"problem": problem, "filter": spec.name, "detail": detail})
        ctx.say(f"filter {spec.name}: kept {len(survivors)} of {len(kept)}")
        kept = survivors
    return kept, dropped


# -- the filters -----------------------------------------------------------------------------------


@register("prompt_length")
def prompt_length(problems: list[dict], ctx: FilterContext, settings: PromptLengthFilter) -> list[Decision]:
    """The chat prompt (system + task) longer than ``max_tokens`` with the policy's tokenizer."""
    max_tokens = settings.max_tokens
    decisions = []
    for problem in problems:
        ids = ctx.tokenizer.apply_chat_template(
            chat_prompt(problem, ctx.system_prompt), add_generation_prompt=True, tokenize=True
        )
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        decisions.append(None if len(ids) <= max_tokens else f"{len(ids)} prompt tokens > {max_tokens}")
    return decisions


@register("difficulty_band")
def difficulty_band(problems: list[dict], ctx: FilterContext, settings: DifficultyBandFilter) -> list[Decision]:
    """Skywork's ``model_difficulty`` for ``model`` (how many of 16 samples failed) outside
    ``low..high``. Problems from sources without that field are not judged here."""
    model, low, high = settings.model, settings.low, settings.high
    decisions = []
    for problem in problems:
        levels = problem.get("meta", {}).get("model_difficulty")
        if not levels:
            decisions.append(None)
        elif model not in levels:
            decisions.append(f"no difficulty for {model} (has {', '.join(sorted(levels))})")
        elif not low <= levels[model] <= high:
            decisions.append(f"difficulty {levels[model]}/16 for {model} outside {low}-{high}")
        else:
            decisions.append(None)
    return decisions


def prompt_words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: spacing is ignored, symbols are not (HumanEval/56
    and /61 differ only in ``<>`` against ``()``)."""
    return re.findall(r"\w+|[^\w\s]", text.lower())


def normalized_prompt(text: str) -> str:
    return " ".join(prompt_words(text))


@register("exact_duplicate")
def exact_duplicate(problems: list[dict], ctx: FilterContext, settings: ExactDuplicateFilter) -> list[Decision]:
    """Same prompt up to case and spacing: the first one stays."""
    first: dict[str, str] = {}
    decisions = []
    for problem in problems:
        digest = hashlib.sha256(normalized_prompt(problem["prompt"]).encode()).hexdigest()
        decisions.append(f"same prompt as {first[digest]}" if digest in first else None)
        first.setdefault(digest, problem["id"])
    return decisions


def shingles(text: str, size: int) -> set[str]:
    words = prompt_words(text)
    return {" ".join(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}


def minhash_of(items: set[str], permutations: int):
    from datasketch import MinHash

    minhash = MinHash(num_perm=permutations, seed=1)
    minhash.update_batch([item.encode() for item in sorted(items)])
    return minhash


@register("near_duplicate")
def near_duplicate(problems: list[dict], ctx: FilterContext, settings: NearDuplicateFilter) -> list[Decision]:
    """A prompt whose word-shingle Jaccard similarity with an earlier kept prompt is at least
    ``threshold``. MinHash + LSH (``bands`` bands) proposes pairs; the exact Jaccard decides, and
    the earliest kept prompt that matches is named."""
    from datasketch import MinHashLSH

    rows = settings.permutations // settings.bands
    lsh = MinHashLSH(threshold=settings.threshold, num_perm=settings.permutations, params=(settings.bands, rows))
    sets = [shingles(p["prompt"], settings.shingle_words) for p in problems]
    decisions: list[Decision] = []
    for index, items in enumerate(sets):
        minhash = minhash_of(items, settings.permutations)
        match = None
        for other in sorted(lsh.query(minhash)):
            similarity = len(items & sets[other]) / len(items | sets[other])
            if similarity >= settings.threshold:
                match = (other, similarity)
                break
        if match:
            decisions.append(f"near-duplicate of {problems[match[0]]['id']} (Jaccard {match[1]:.2f})")
            continue
        decisions.append(None)
        lsh.insert(index, minhash)
    return decisions


@register("reference_fails")
def reference_fails(problems: list[dict], ctx: FilterContext, settings: ReferenceFailsFilter) -> list[Decision]:
    """The problem's reference solution does not pass its own tests in the sandbox (problems
    without a reference are kept: there is nothing to check)."""
    with_reference = [i for i, p in enumerate(problems) if p.get("reference")]
    verdicts = run_batch(
        [Job(problems[i]["id"], "reference", problems[i]["reference"], problems[i]["tests"]) for i in with_reference],
        ctx.sandbox,
        progress=ProgressReport("sandbox: reference solutions", len(with_reference), "solutions"),
    )
    decisions: list[Decision] = [None] * len(problems)
    for index, verdict in zip(with_reference, verdicts):
        if verdict.status == "infra_error":
            raise RuntimeError(f"{verdict.problem_id}: the sandbox could not run the reference: {verdict.detail}")
        if verdict.status != "passed":
            decisions[index] = f"reference {verdict.status} ({verdict.passed}/{verdict.total}): {verdict.detail}"[:300]
    return decisions


@register("pass_rate_band")
def pass_rate_band(problems: list[dict], ctx: FilterContext, settings: PassRateBandFilter) -> list[Decision]:
    """Sample ``samples`` replies per problem from the policy and keep problems whose pass rate
    lies in ``low..high`` (PRIME-style: neither hopeless nor already solved). The sampling and the
    sandbox run are the rejection-sampling stage's (tasks/problems/solutions.py)."""
    from tasks.problems.solutions import make_sampler, rejection_sample

    if ctx.policy_dir is None:
        raise FilterConfigError("pass_rate_band needs the policy model")
    low, high = settings.low, settings.high
    cfg = SolutionsConfig(
        problems="all",
        samples=settings.samples,
        temperature=settings.temperature,
        max_new_tokens=settings.max_new_tokens,
        seed=settings.seed,
    )
    results = rejection_sample(
        problems, make_sampler(cfg, ctx.policy_dir, None, ctx.dtype), cfg, ctx.sandbox, ctx.system_prompt
    )
    return [
        None if low <= r["pass_rate"] <= high else f"pass rate {r['pass_rate']:.2f} outside {low}-{high}"
        for r in results
    ]


# -- the stage -------------------------------------------------------------------------------------


class ReconciliationError(RuntimeError):
    pass


def reconcile(ledger: dict[str, Any], kept: list[dict], dropped: list[dict]) -> list[dict[str, Any]]:
    """Rows (source, outcome, reason, rows) such that, per source, ``in`` = kept + filtered +
    quarantined. Rows a source skipped while loading count as filtered, reason ``load:<why>``."""
    origins = ledger["origins"]
    table = []
    for source, entry in ledger["sources"].items():
        kept_here = sum(origins[p["id"]] == source for p in kept)
        filtered = Counter(d["filter"] for d in dropped if origins[d["problem"]["id"]] == source)
        filtered.update({f"load:{reason}": n for reason, n in entry["skipped"].items()})
        quarantined = entry["quarantined"]
        accounted = kept_here + sum(filtered.values()) + sum(quarantined.values())
        if accounted != entry["rows_in"]:
            raise ReconciliationError(
                f"{source}: {entry['rows_in']} rows in, but kept + filtered + quarantined = {accounted}"
            )
        table.append({"source": source, "outcome": "in", "reason": "", "rows": entry["rows_in"]})
        table += [
            {"source": source, "outcome": "quarantined", "reason": r, "rows": n} for r, n in sorted(quarantined.items())
        ]
        table += [
            {"source": source, "outcome": "filtered", "reason": r, "rows": n} for r, n in sorted(filtered.items())
        ]
        table.append({"source": source, "outcome": "kept", "reason": "", "rows": kept_here})
    return table


@stage("filter_problems", inputs={"problems": "problems_id", "policy": "policy_id"}, retries=1)
def filter_problems(
    problems_id: str,
    policy_id: str,
    filters: list[FilterConfig],
    sandbox: SandboxSection,
    system_prompt: str,
    dtype: str,
) -> str:
    """The recipe's filters over the loaded problems; kept problems, filtered.jsonl (every dropped
    problem with filter and detail), the loader's quarantine, and the reconciled report."""
    with StageRun() as run:
        loaded = run.input_path("problems")
        problems = read_jsonl(loaded / "problems.jsonl")
        ledger = json.loads((loaded / "ledger.json").read_text())
        ctx = FilterContext(sandbox.sandbox_config(), run.input_path("policy"), system_prompt, dtype, say=run.log.info)
        kept, dropped = apply_filters(problems, filters, ctx)
        table = reconcile(ledger, kept, dropped)
        staged = run.staging("filtered")
        write_jsonl(staged / "problems.jsonl", kept)
        write_jsonl(staged / "filtered.jsonl", dropped)
        shutil.copy(loaded / "quarantine.jsonl", staged / "quarantine.jsonl")
        (staged / "report.json").write_text(json.dumps(table, indent=1))
        by_filter = Counter(d["filter"] for d in dropped)
        metrics = {
            "kept": len(kept),
            "filtered": len(dropped),
            **{f"filtered_{k}": n for k, n in by_filter.items()},
            "quarantined": sum(r["rows"] for r in table if r["outcome"] == "quarantined"),
        }
        return run.output(
            "problems", staged, kind="dataset", name="problems-filtered", metadata={"report": table}, metrics=metrics
        )
