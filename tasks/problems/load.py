"""The problem stages: every configured source into one dataset, and the train/eval split.

Loading reads each source (``tasks.problems.sources``, ``tasks.problems.bundled``); rows that cannot become
Problems are quarantined with file, row, field and reason, and written next to the problems, so
the filter stage's report can reconcile rows in = kept + filtered + quarantined.
"""

from __future__ import annotations

import json
from collections import Counter

from prefect.cache_policies import CachePolicy

from tasks.problems.catalog import load_source, record_reference_tests, source_fingerprints, split_of
from tasks.recipe import ProblemsConfig, SandboxSection, SplitRule
from tasks.records import ProblemFormatError, read_jsonl, write_jsonl
from tasks.stage_run import StageRun, stage


class SourceData(CachePolicy):
    """Cache key part: the bytes of the problem sources' files (the ``problems`` argument)."""

    def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs) -> str | None:
        return json.dumps(source_fingerprints([s.name for s in inputs["problems"].sources]), sort_keys=True)


# -- Prefect tasks -------------------------------------------------------------------------------


@stage("load_problems", retries=1, cache_policy=SourceData())
def load_problems(problems: ProblemsConfig, sandbox: SandboxSection) -> str:
    """Every configured source into one Problem dataset; bad rows quarantined (quarantine.jsonl) and
    every row accounted for per source (ledger.json); check and assert tests recorded from the
    reference into call tests."""
    sources = problems.sources
    with StageRun(derived={"source_data": source_fingerprints([s.name for s in sources])}) as run:
        problems, quarantined, metrics, ledger, origins = [], [], {}, {}, {}
        for source in sources:
            result = load_source(source.name, source.difficulties, source.limit)
            if not result.reconciles():
                raise RuntimeError(
                    f"{source.name}: {result.rows_in} rows in, but problems + skipped + quarantined differ"
                )
            problems += result.problems
            quarantined += [q.to_dict() for q in result.quarantined]
            origins.update({p["id"]: source.name for p in result.problems})
            ledger[source.name] = {
                "rows_in": result.rows_in,
                "problems": len(result.problems),
                "skipped": dict(result.skipped),
                "quarantined": dict(result.quarantine_counts()),
            }
            label = source.name.split(":")[0]
            metrics[f"{label}_problems"] = metrics.get(f"{label}_problems", 0) + len(result.problems)
            run.log.info(
                "%s: %d rows, %d problems, skipped %s, quarantined %s",
                source.name,
                result.rows_in,
                len(result.problems),
                dict(result.skipped),
                dict(result.quarantine_counts()),
            )
            for row in result.quarantined[:5]:
                run.log.warning("quarantined: %s", row.message)
        ids = [p["id"] for p in problems]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ProblemFormatError(f"problem ids occur in more than one source: {duplicates[:5]}")
        if not problems:
            raise ProblemFormatError(f"no source gave a usable problem: {json.dumps(ledger)}")
        recorded = record_reference_tests(problems, sandbox.sandbox_config())
        metrics["tests_recorded_from_reference"] = recorded["recorded"]
        metrics["tests_run_in_sandbox"] = recorded["in_sandbox"]
        run.log.info(
            "check/assert tests: %d recorded from the reference as call tests, %d left in the sandbox",
            recorded["recorded"],
            recorded["in_sandbox"],
        )
        staged = run.staging("problems")
        write_jsonl(staged / "problems.jsonl", problems)
        write_jsonl(staged / "quarantine.jsonl", quarantined)
        (staged / "ledger.json").write_text(
            json.dumps({"sources": ledger, "origins": origins}, indent=1, sort_keys=True)
        )
        metrics["problems"], metrics["quarantined"] = len(problems), len(quarantined)
        return run.output(
            "problems", staged, kind="dataset", name="problems", metadata={"ledger": ledger}, metrics=metrics
        )


@stage("split_problems", inputs={"problems": "problems_id"})
def split_problems(problems_id: str, split: SplitRule) -> tuple[str, str]:
    """Deterministic train / eval split by hashed id; returns (train id, eval id)."""
    rule = split
    with StageRun() as run:
        problems = read_jsonl(run.input_path("problems") / "problems.jsonl")
        ids = {}
        for split in ("train", "eval"):
            chosen = [p for p in problems if split_of(p["id"], rule.eval_fraction, rule.split_seed) == split]
            staged = run.staging(split)
            write_jsonl(staged / "problems.jsonl", chosen)
            by_source = Counter(p["source"] for p in chosen)
            ids[split] = run.output(
                split,
                staged,
                kind="dataset",
                name=f"problems-{split}",
                metrics={"problems": len(chosen), **{f"{s}_problems": n for s, n in by_source.items()}},
            )
        return ids["train"], ids["eval"]
