"""The cold-start set: correct solutions with inline thoughts inserted where the policy is unsure.

Strategy ``entropy``: run the policy over each correct solution (in its chat context, after
"```python"), take the positions inside statements (a Python token that is not the first of its
logical line, never inside a string or comment) where its next-token entropy is highest, ask the
annotator for a one-sentence thought at each, and insert ``<thinkanywhere>…</thinkanywhere>``
there. The annotator also writes the short upfront plan. With ``drop_docstrings`` (the default) the
target code is the reference without its docstrings (a HumanEval reference repeats the prompt's),
and it is that code whose tests must pass. A sample is kept only if stripping the
inline blocks gives back the original code exactly, each block sits inside a statement, and the
stripped code still passes the problem's tests in the sandbox; every rejection is counted by
reason.

Strategy ``rewrite``: the annotator rewrites each correct solution with inline blocks, following
``configs/prompts/rewrite.md`` (inside a statement, never on a line of its own, not wrapping a
comment). A rewrite is kept when its blocks sit inside statements and the stripped code passes
the problem's tests in the sandbox; ``rewrites_token_identical`` counts those whose stripped code
is the original token for token.

The stage runs one cached task per shard of ``shard_size`` solutions (``parallel_shards`` at a
time), then one that concatenates the shards and sums their reports: a run that is killed
part-way redoes only the shards that had not finished.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.pool import run_batch
from sandbox.verdicts import Job
from tasks.coldstart.insertion_sites import choose_insertion_offsets, code_tokens, token_entropies, without_docstrings
from tasks.coldstart.thought_text import plan_from, prose_part
from tasks.problems.function_tasks import hint_for_line, plan_of
from tasks.progress import ProgressReport
from tasks.recipe import AnnotatorConfig, ColdStartConfig, SandboxSection
from tasks.records import chat_prompt, read_jsonl, write_jsonl
from tasks.stage_run import PROJECT_ROOT, StageRun, shards_for, stage
from tasks.thinking import (
    clean_thought,
    extract_code,
    find_inline_thoughts,
    has_inline_thought_in_statement,
    insert_inline_thoughts,
    last_python_block,
    render_response,
    strip_inline_thoughts,
)


@dataclass
class ColdStartReport:
    solutions_in: int = 0
    accepted: int = 0
    thoughts: int = 0
    rewrites_identical: int = 0  # rewrite strategy: stripped code equal to the original token for token
    rejected: Counter = field(default_factory=Counter)
    repaired: Counter = field(
        default_factory=Counter
    )  # plans taken from the task; thoughts dropped (no prose, or a repeat)

    def metrics(self) -> dict[str, float]:
        out = {
            "solutions_in": self.solutions_in,
            "accepted": self.accepted,
            "acceptance_rate": self.accepted / self.solutions_in if self.solutions_in else 0.0,
            "thoughts_per_sample": self.thoughts / self.accepted if self.accepted else 0.0,
        }
        if self.rewrites_identical:
            out["rewrites_token_identical"] = self.rewrites_identical
        out.update({f"rejected_{reason}": n for reason, n in sorted(self.rejected.items())})
        out.update({f"repaired_{what}": n for what, n in sorted(self.repaired.items())})
        return out


def thought_request(task_text: str, code_so_far: str) -> list[dict[str, str]]:
    return [
        {
            "role": "user",
            "content": (
                f"Task:\n{task_text.strip()[:1200]}\n\nPython code written so far:\n```python\n{code_so_far}\n```\n"
                "In one short sentence, say what the very next piece of code must get right. Reply with the sentence only."
            ),
        }
    ]


def plan_request(task_text: str) -> list[dict[str, str]]:
    return [
        {
            "role": "user",
            "content": f"Task:\n{task_text.strip()[:1500]}\n\nIn one or two sentences, describe how to solve it. No code.",
        }
    ]


@dataclass
class PendingSample:
    problem: dict[str, Any]
    code: str
    offsets: list[int]
    plan: str = ""
    thoughts: list[str] = field(default_factory=list)
    from_task: bool = False  # plan and thoughts written from the task generator's notes (already prose)


def assemble_sample(
    pending: PendingSample, max_chars: int = 120, repaired: Counter | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """Insert the thoughts' prose (tasks/coldstart/thought_text.py) and check the result; (record,
    None) or (None, rejection reason). A thought with no prose, or one that repeats an earlier
    thought of the same sample, is dropped with its site (a target that says the same thing twice
    teaches a small model to loop: measured 2026-12-02, greedy replies after SFT ran to the token cap
    repeating one block); a plan with no prose is the task's first sentence. ``repaired`` counts each."""
    repaired = Counter() if repaired is None else repaired
    if pending.from_task:
        plan = clean_thought(pending.plan, max_chars=300)
    else:
        plan, from_task = plan_from(clean_thought(pending.plan, max_chars=300), pending.problem.get("prompt", ""))
        repaired["plan_from_task"] += from_task
    if not plan:
        return None, "empty_plan"
    kept: dict[int, str] = {}
    for offset, thought in zip(pending.offsets, pending.thoughts):
        thought = (
            clean_thought(thought, max_chars) if pending.from_task else prose_part(clean_thought(thought, max_chars))
        )
        if not thought:
            repaired["thought_without_prose_dropped"] += 1
        elif thought.lower() in {t.lower() for t in kept.values()}:
            repaired["repeated_thought_dropped"] += 1
        else:
            kept[offset] = thought
    if not kept:
        return None, "empty_thought"
    offsets, thoughts = sorted(kept), [kept[offset] for offset in sorted(kept)]
    annotated = insert_inline_thoughts(pending.code, kept)
    if strip_inline_thoughts(annotated) != pending.code:
        return None, "strip_mismatch"
    response = render_response(annotated, upfront=plan)
    if not has_inline_thought_in_statement(response):
        return None, "not_inside_statement"
    if extract_code(response).strip() != pending.code.strip():
        return None, "extraction_mismatch"
    return {
        "problem_id": pending.problem["id"],
        "response": response,
        "code": pending.code,
        "annotated_code": annotated,
        "plan": plan,
        "thoughts": thoughts,
        "offsets": offsets,
    }, None


def raise_on_infra_error(verdict) -> None:
    """A sandbox that could not run the code says nothing about the code: stop (the task retries)."""
    if verdict.status == "infra_error":
        raise RuntimeError(
            f"{verdict.problem_id}/{verdict.solution_id}: the sandbox could not run it: {verdict.detail}"
        )


def build_coldstart_examples(
    problems: list[dict[str, Any]],
    policy_dir,
    make_annotator_for: Callable[[Any], Any],
    cfg: ColdStartConfig,
    sandbox_cfg: SandboxConfig,
    system_prompt: str,
    dtype: str = "float32",
    say=lambda message: None,
) -> tuple[list[dict[str, Any]], ColdStartReport]:
    """Reference solutions → verified, annotated SFT records (prompt/completion chat format).
    ``make_annotator_for(loaded_policy)`` gives the annotator (it may reuse the loaded policy).
    Problems without a reference are not used (``coldstart_candidates`` chooses them)."""
    from tasks.models import load_for_inference

    report = ColdStartReport()
    candidates = [p for p in problems if p.get("reference")]
    if cfg.drop_docstrings:  # the target is the model's own code, not the prompt's docstring copied back
        candidates = [{**p, "reference": without_docstrings(p["reference"])} for p in candidates]
    report.solutions_in = len(candidates)
    verdicts = run_batch(
        [Job(p["id"], "reference", p["reference"], p["tests"]) for p in candidates],
        sandbox_cfg,
        progress=ProgressReport("sandbox: reference solutions", len(candidates), "solutions"),
    )
    say(f"{len(candidates)} reference solutions checked in the sandbox")
    correct = []
    for problem, verdict in zip(candidates, verdicts):
        raise_on_infra_error(verdict)
        if verdict.status == "passed":
            correct.append(problem)
        else:
            report.rejected[f"reference_{verdict.status}"] += 1

    policy = load_for_inference(policy_dir, dtype)
    annotator = make_annotator_for(policy)
    if cfg.strategy == "rewrite":
        assembled = rewrite_samples(correct, annotator, cfg, report, say)
    else:
        assembled = entropy_samples(correct, policy, annotator, cfg, report, system_prompt, say)
    verdicts = run_batch(
        [Job(p["id"], "annotated", extract_code(r["response"]), p["tests"]) for p, r in assembled],
        sandbox_cfg,
        progress=ProgressReport("sandbox: annotated solutions", len(assembled), "solutions"),
    )
    records = []
    for (problem, record), verdict in zip(assembled, verdicts):
        raise_on_infra_error(verdict)
        if verdict.status != "passed":
            report.rejected["stripped_code_failed"] += 1
            continue
        record["target_origin"] = problem.get("target_origin", "reference")
        record["prompt"] = chat_prompt(problem, system_prompt)
        record["completion"] = [{"role": "assistant", "content": record["response"]}]
        records.append(record)
        report.accepted += 1
        report.thoughts += len(record["thoughts"])
    return records, report


def entropy_samples(
    correct, policy, annotator, cfg, report: ColdStartReport, system_prompt: str, say
) -> list[tuple[dict, dict]]:
    """Thoughts where the policy's entropy is highest, written by the annotator: (problem, record) pairs."""
    tokenizer, model = policy
    pending: list[PendingSample] = []
    progress = ProgressReport("policy entropy over reference solutions", len(correct), "solutions")
    for problem in correct:
        context = tokenizer.apply_chat_template(
            chat_prompt(problem, system_prompt), add_generation_prompt=True, tokenize=False
        )
        spans = token_entropies(model, tokenizer, context + "```python\n", problem["reference"])
        progress(1)
        offsets = choose_insertion_offsets(problem["reference"], spans, cfg.thoughts_per_solution)
        if offsets:
            pending.append(PendingSample(problem, problem["reference"], offsets))
        else:
            report.rejected["no_insertion_point"] += 1
    if cfg.thoughts == "task_hints":
        for sample in pending:
            write_from_task_hints(sample, report.repaired)
    asked = [s for s in pending if not s.from_task]
    say(
        f"{len(pending)} solutions: insertion points chosen by policy entropy; {len(pending) - len(asked)} annotated from the "
        f"task generator's notes, asking the annotator for {len(asked)}"
    )
    plans = (
        annotator.complete([plan_request(s.problem["prompt"]) for s in asked], max_new_tokens=cfg.plan_max_new_tokens)
        if asked
        else []
    )
    requests = [
        (i, thought_request(s.problem["prompt"], s.code[:offset])) for i, s in enumerate(asked) for offset in s.offsets
    ]
    thoughts = (
        annotator.complete([conversation for _, conversation in requests], max_new_tokens=cfg.thought_max_new_tokens)
        if requests
        else []
    )
    for sample, plan in zip(asked, plans):
        sample.plan = plan
    for (index, _), thought in zip(requests, thoughts):
        asked[index].thoughts.append(thought)
    say(f"{len(plans)} plans and {len(thoughts)} inline thoughts written by the annotator; verifying")
    assembled = []
    for sample in pending:
        record, reason = assemble_sample(sample, repaired=report.repaired)
        if record is None:
            report.rejected[reason] += 1
        else:
            assembled.append((sample.problem, record))
    return assembled


def write_from_task_hints(sample: PendingSample, repaired: Counter) -> None:
    """Plan and thoughts from a generated task's own notes (tasks/problems/function_tasks.py): the plan
    is its step list, the thought at a site is the note on the operation its line performs. A site
    whose line matches no operation is dropped (counted). Problems without notes are left as they are."""
    meta = sample.problem.get("meta") or {}
    plan = plan_of(meta, sample.problem.get("prompt", ""))
    if not meta.get("hints") or not plan:
        return
    offsets, thoughts = [], []
    for offset in sample.offsets:
        start, end = sample.code.rfind("\n", 0, offset) + 1, sample.code.find("\n", offset)
        hint = hint_for_line(meta, sample.code[start : end if end >= 0 else None])
        if hint is None:
            repaired["site_without_matching_hint_dropped"] += 1
            continue
        offsets.append(offset)
        thoughts.append(hint)
    sample.offsets, sample.thoughts, sample.plan, sample.from_task = offsets, thoughts, plan, True


STAGE_FILES = ("configs/prompts/rewrite.md",)  # read by the rewrite strategy: part of the stage's code version
REWRITE_PROMPT = PROJECT_ROOT / STAGE_FILES[0]


def rewrite_request(task_text: str, code: str) -> list[dict[str, str]]:
    template = REWRITE_PROMPT.read_text()
    return [
        {
            "role": "user",
            "content": template.replace("{task}", task_text.strip()[:1500]).replace("{code}", code.rstrip()),
        }
    ]


def assemble_rewrite(
    problem: dict[str, Any], plan: str, reply: str, repaired: Counter | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """Check an annotator's rewrite: (record, None) or (None, rejection reason). ``record["identical"]``
    says whether the stripped code is the original token for token; if not, it is accepted only
    after its tests pass in the sandbox (the caller runs them for every record)."""
    repaired = Counter() if repaired is None else repaired
    plan, from_task = plan_from(clean_thought(plan, max_chars=300), problem.get("prompt", ""))
    repaired["plan_from_task"] += from_task
    annotated = last_python_block(reply) or reply
    blocks = find_inline_thoughts(annotated)
    thoughts = [clean_thought(block.text) for block in blocks]
    if not plan:
        return None, "empty_plan"
    if not thoughts or any(not t for t in thoughts):
        return None, "no_inline_thought"
    if not all(block.inside_statement for block in blocks):
        return None, "not_inside_statement"
    response = render_response(annotated, upfront=plan)
    stripped = extract_code(response)
    tokens = code_tokens(stripped)
    if tokens is None:
        return None, "stripped_code_does_not_parse"
    return {
        "problem_id": problem["id"],
        "response": response,
        "code": stripped,
        "annotated_code": annotated,
        "plan": plan,
        "thoughts": thoughts,
        "identical": tokens == code_tokens(problem["reference"]),
    }, None


def rewrite_samples(correct, annotator, cfg, report: ColdStartReport, say) -> list[tuple[dict, dict]]:
    """The annotator rewrites each correct solution with inline blocks (configs/prompts/rewrite.md)."""
    say(f"{len(correct)} solutions: asking the annotator to rewrite them with inline thoughts")
    plans = annotator.complete([plan_request(p["prompt"]) for p in correct], max_new_tokens=cfg.plan_max_new_tokens)
    replies = annotator.complete(
        [rewrite_request(p["prompt"], p["reference"]) for p in correct], max_new_tokens=cfg.rewrite_max_new_tokens
    )
    assembled = []
    for problem, plan, reply in zip(correct, plans, replies):
        record, reason = assemble_rewrite(problem, plan, reply, repaired=report.repaired)
        if record is None:
            report.rejected[reason] += 1
        else:
            report.rewrites_identical += record["identical"]
            assembled.append((problem, record))
    return assembled


def coldstart_candidates(problems: list[dict[str, Any]], cfg: ColdStartConfig) -> list[dict[str, Any]]:
    """The problems with a reference solution (given or rejection-sampled), up to ``limit``. With
    ``targets: policy`` the problems the policy solved itself come first, their passing sample as
    the code (``target_origin: policy``), then the rest on their references."""
    if cfg.targets == "policy":
        own = [
            {**p, "reference": p["meta"]["policy_solution"], "target_origin": "policy"}
            for p in problems
            if (p.get("meta") or {}).get("policy_solution")
        ]
        candidates = own + [
            p for p in problems if p.get("reference") and not (p.get("meta") or {}).get("policy_solution")
        ]
    else:
        candidates = [p for p in problems if p.get("reference")]
    return candidates[: cfg.limit] if cfg.limit else candidates


def coldstart_shards(problems_id: str, coldstart_cfg: ColdStartConfig) -> int:
    """How many shards of ``shard_size`` candidates the cold-start stage runs for this split."""
    from storage import ArtifactStore

    problems = read_jsonl(ArtifactStore().path(problems_id) / "problems.jsonl")
    return shards_for(len(coldstart_candidates(problems, coldstart_cfg)), coldstart_cfg.shard_size)


def merged_report(reports: list[dict[str, Any]]) -> ColdStartReport:
    """The shards' reports summed into one."""
    total = ColdStartReport()
    for report in reports:
        total.solutions_in += report["solutions_in"]
        total.accepted += report["accepted"]
        total.thoughts += report["thoughts"]
        total.rewrites_identical += report["rewrites_identical"]
        total.rejected.update(report["rejected"])
        total.repaired.update(report.get("repaired", {}))
    return total


@stage(
    "coldstart_shard",
    inputs={"problems": "problems_id", "policy": "policy_id", "annotator": "annotator_model_id"},
    retries=2,
    retry_delay_seconds=[5, 30],
)
def build_coldstart_shard(
    problems_id: str,
    shard: int,
    policy_id: str,
    annotator_model_id: str | None,
    annotator: AnnotatorConfig,
    coldstart: ColdStartConfig,
    sandbox: SandboxSection,
    system_prompt: str,
    dtype: str,
) -> str:
    """One shard's annotated, verified samples (records.jsonl) and its report, cached on its own:
    an interrupted run redoes only the shards that had not finished."""
    from tasks.annotators import make_annotator

    annotator_cfg, coldstart_cfg = annotator, coldstart
    with StageRun() as run:
        size = coldstart_cfg.shard_size
        problems = coldstart_candidates(read_jsonl(run.input_path("problems") / "problems.jsonl"), coldstart_cfg)
        problems = problems[shard * size : (shard + 1) * size]
        annotator_dir = run.input_path("annotator") if annotator_model_id else None
        same_model = annotator_model_id == policy_id

        def annotator_for(loaded_policy):
            return make_annotator(
                annotator_cfg,
                annotator_dir,
                run.store.home / "cache" / "annotator",
                dtype,
                loaded=loaded_policy if same_model else None,
            )

        records, report = build_coldstart_examples(
            problems,
            run.input_path("policy"),
            annotator_for,
            coldstart_cfg,
            sandbox.sandbox_config(),
            system_prompt,
            dtype,
            say=run.log.info,
        )
        run.log.info(
            "cold-start shard %d: %d of %d solutions accepted, rejected %s",
            shard,
            report.accepted,
            report.solutions_in,
            dict(report.rejected),
        )
        staged = run.staging(f"shard{shard}")
        write_jsonl(staged / "records.jsonl", records)
        (staged / "report.json").write_text(
            json.dumps(
                {
                    "solutions_in": report.solutions_in,
                    "accepted": report.accepted,
                    "thoughts": report.thoughts,
                    "rewrites_identical": report.rewrites_identical,
                    "rejected": dict(report.rejected),
                    "repaired": dict(report.repaired),
                },
                indent=1,
            )
        )
        return run.output("records", staged, kind="dataset", name=f"coldstart-shard-{shard}", metrics=report.metrics())


@stage("coldstart", inputs={"problems": "problems_id", "shard": "shard_ids"})
def assemble_coldstart_set(problems_id: str, shard_ids: list[str], coldstart: ColdStartConfig) -> str:
    """The cold-start SFT set (train.jsonl) from its shards, with the summed report as metrics."""
    with StageRun() as run:
        records = [
            row for i in range(len(shard_ids)) for row in read_jsonl(run.input_path(f"shard{i}") / "records.jsonl")
        ]
        report = merged_report(
            [json.loads((run.input_path(f"shard{i}") / "report.json").read_text()) for i in range(len(shard_ids))]
        )
        run.log.info(
            "cold start: %d of %d solutions accepted, rejected %s",
            report.accepted,
            report.solutions_in,
            dict(report.rejected),
        )
        if not records:
            raise ValueError(
                f"the cold-start set is empty: {report.solutions_in} solutions, rejected {dict(report.rejected)}; "
                "the train split needs problems with a reference solution (given, e.g. the humaneval source, or found by "
                "the `solutions` stage's rejection sampling)"
            )
        staged = run.staging("coldstart")
        write_jsonl(staged / "train.jsonl", records)
        (staged / "report.json").write_text(json.dumps(report.metrics(), indent=1))
        return run.output("dataset", staged, kind="dataset", name="coldstart", metrics=report.metrics())
