"""Typed recipes: YAML in, validated config out, a wrong key named in the error.

This module owns every section of a recipe. A stage takes the typed section it reads (never a
dict rebuilt from one); the section's ``cache_key()`` (its settings, less those in ``HOW``: where
and how fast, not what) is part of the stage's cache key, so changing one stage's settings
recomputes that stage and what follows, nothing before it. Loading a recipe imports neither
Prefect nor the sandbox.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from tasks.evaluation_sections import (  # noqa: F401 (the evaluation's sections, re-exported: one place to import a section)
    NO_THINKING_PREFILL,
    VARIANTS,
    BenchmarkConfig,
    EvalGeneration,
    EvalScoring,
    EvaluateConfig,
    EvalVariant,
)
from tasks.sections import RecipeError, Section
from tasks.training_sections import (  # noqa: F401 (the training stages' sections, re-exported: one place to import a section)
    REPLY_SETTINGS,
    AnnotatorConfig,
    LoraSection,
    MidtrainingEvalSection,
    MidtrainingRLSection,
    MidtrainingSection,
    ProbeSection,
    RewardSection,
    RLDraw,
    RLSection,
    SFTSection,
    ThinkTokensSection,
)


class CorpusConfig(Section):
    """Thinking Mid-training: the corpus to chunk and annotate."""

    HOW: ClassVar[frozenset[str]] = frozenset({"parallel_shards"})

    source: str = "python-stdlib"  # python-stdlib | files:GLOB (text files)
    max_documents: int = Field(default=40, ge=1)
    chunk_tokens: int = Field(default=256, ge=16)
    limit_chunks: int | None = Field(default=None, ge=1)
    mode: Literal["boundaries", "interleave"] = "boundaries"
    segments_per_chunk: int = Field(default=3, ge=2, le=16)
    thought_max_new_tokens: int = Field(default=32, ge=4)
    shard_size: int = Field(default=16, ge=1)
    parallel_shards: int = Field(default=2, ge=1)
    rl_fraction: float = Field(default=0.5, gt=0, lt=1)
    eval_fraction: float = Field(
        default=0.0, ge=0, lt=1
    )  # chunks held out of both halves for the mid-training evaluation
    seed: int = 0


class SolutionsConfig(Section):
    """Rejection sampling for train problems without a reference solution."""

    HOW: ClassVar[frozenset[str]] = frozenset({"parallel_shards"})

    problems: Literal["without_reference", "all", "none"] = "without_reference"  # which train problems to sample for
    limit: int | None = Field(default=None, ge=1)  # at most this many of them (in split order)
    sampler: Literal["policy", "annotator"] = (
        "policy"  # annotator: the recipe's `annotator` (needs temperature > 0 to vary)
    )
    samples: int = Field(default=4, ge=1, le=64)
    temperature: float = Field(default=1.0, gt=0)
    max_new_tokens: int = Field(default=256, ge=8)
    seed: int = 0
    shard_size: int = Field(default=16, ge=1)
    parallel_shards: int = Field(default=1, ge=1)


class ModelConfig(Section):
    name: str = "tiny"  # tiny | smollm2-135m-instruct | a local path | an HF id in the local cache
    seed: int = 0
    # auto: bfloat16 where the hardware computes in it (a GPU with bf16, a CPU with AMX-BF16), float32 elsewhere
    # (tasks/precision.py); the flow resolves it before any stage runs, so lineage records the choice
    torch_dtype: Literal["auto", "float32", "bfloat16"] = "auto"

    def resolved(self) -> ModelConfig:
        from tasks.precision import resolve_dtype

        return self.model_copy(update={"torch_dtype": resolve_dtype(self.torch_dtype)[0]})


class SourceConfig(Section):
    name: str  # leetcode | humaneval | skywork:PATH | mbpp:PATH | livecodebench:PATH | jsonl:PATH
    limit: int | None = Field(default=None, ge=1)
    difficulties: list[Literal["Easy", "Medium", "Hard"]] | None = None


class PromptLengthFilter(Section):
    """Drop a problem whose chat prompt is longer than ``max_tokens`` (the policy's tokenizer)."""

    name: Literal["prompt_length"] = "prompt_length"
    max_tokens: int = Field(default=1024, ge=1)


class DifficultyBandFilter(Section):
    """Keep Skywork problems whose difficulty for ``model`` (0-16 correct of 16) is in low..high."""

    name: Literal["difficulty_band"] = "difficulty_band"
    model: str = "DeepSeek-R1-Distill-Qwen-7B"
    low: int = Field(default=1, ge=0)
    high: int = Field(default=15, ge=0)


class ExactDuplicateFilter(Section):
    """Drop a prompt equal to an earlier one up to case and spacing."""

    name: Literal["exact_duplicate"] = "exact_duplicate"


class NearDuplicateFilter(Section):
    """Drop a prompt whose word-shingle Jaccard with an earlier kept one is at least ``threshold``
    (MinHash + LSH with ``bands`` bands propose pairs, the exact Jaccard decides)."""

    name: Literal["near_duplicate"] = "near_duplicate"
    threshold: float = Field(default=0.8, gt=0, le=1)
    shingle_words: int = Field(default=5, ge=1)
    permutations: int = Field(default=64, ge=2)
    bands: int = Field(default=16, ge=1)

    @model_validator(mode="after")
    def _bands_divide(self) -> NearDuplicateFilter:
        if self.permutations % self.bands:
            raise ValueError(f"permutations ({self.permutations}) must be a multiple of bands ({self.bands})")
        return self


class ReferenceFailsFilter(Section):
    """Drop a problem whose reference solution fails its own tests in the sandbox."""

    name: Literal["reference_fails"] = "reference_fails"


class PassRateBandFilter(Section):
    """Sample the policy ``samples`` times per problem; keep problems solved sometimes, not always."""

    name: Literal["pass_rate_band"] = "pass_rate_band"
    samples: int = Field(default=8, ge=1, le=64)
    low: float = Field(default=0.2, ge=0, le=1)
    high: float = Field(default=0.8, ge=0, le=1)
    max_new_tokens: int = Field(default=256, ge=8)
    temperature: float = Field(default=1.0, gt=0)
    seed: int = 0


FilterConfig = Annotated[
    PromptLengthFilter
    | DifficultyBandFilter
    | ExactDuplicateFilter
    | NearDuplicateFilter
    | ReferenceFailsFilter
    | PassRateBandFilter,
    Field(discriminator="name"),
]
FILTER_NAMES = (
    "prompt_length",
    "difficulty_band",
    "exact_duplicate",
    "near_duplicate",
    "reference_fails",
    "pass_rate_band",
)
DEFAULT_FILTERS = (
    PromptLengthFilter(),
    DifficultyBandFilter(),
    ExactDuplicateFilter(),
    NearDuplicateFilter(),
    ReferenceFailsFilter(),
)


class ProblemsConfig(Section):
    sources: list[SourceConfig] = Field(default_factory=lambda: [SourceConfig(name="humaneval")])
    # in order; each entry: {name: <a filter above>, <its settings>}; pass_rate_band is off by default
    filters: list[FilterConfig] = Field(default_factory=lambda: list(DEFAULT_FILTERS))
    eval_fraction: float = Field(default=0.2, gt=0, lt=1)
    split_seed: int = 0

    def split_rule(self) -> SplitRule:
        return SplitRule(eval_fraction=self.eval_fraction, split_seed=self.split_seed)


class SplitRule(Section):
    """Which problems are held out for evaluation: by hashed id, so a problem stays on its side."""

    eval_fraction: float = Field(default=0.2, gt=0, lt=1)
    split_seed: int = 0


class SandboxSection(Section):
    """The recipe's sandbox settings; ``sandbox_config()`` is the sandbox's own config (the sandbox
    package imports nothing of ours, so it has its own dataclass with further limits)."""

    HOW: ClassVar[frozenset[str]] = frozenset({"workers"})
    backend: Literal["local", "docker"] = "local"
    isolation: Literal["strict", "weak"] = "strict"  # weak: run without namespaces where there are none
    workers: int = Field(default=0, ge=0)  # 0: one per core
    timeout_s: float = Field(default=6.0, gt=0)
    memory_mb: int = Field(default=1024, ge=64)

    def sandbox_config(self):
        from sandbox.config import SandboxConfig  # the dataclass only: no pool, no worker

        return SandboxConfig(**self.to_json())

    def cache_key(self) -> dict[str, Any]:
        """The settings, and with ``backend: docker`` the Docker backend's code version (the stages' own
        code versions leave that optional backend out: tasks/code_version.py ``OPTIONAL_IMPORTS``)."""
        key = super().cache_key()
        if self.backend == "docker":
            from tasks.code_version import code_version

            key["docker_backend_code"] = code_version("sandbox.docker_backend")
        return key


class GenerationConfig(Section):
    max_new_tokens: int = Field(default=256, ge=1)
    batch_size: int = Field(default=16, ge=1)


class ColdStartConfig(Section):  # the annotator that writes plans and thoughts: the recipe's `annotator` section
    HOW: ClassVar[frozenset[str]] = frozenset({"parallel_shards"})
    strategy: Literal["entropy", "rewrite"] = (
        "entropy"  # rewrite: the annotator rewrites the code (configs/prompts/rewrite.md)
    )
    # the code a target is built on: the reference, or (policy) the policy's own passing sample where the solutions
    # stage found one (meta.policy_solution), so SFT teaches where to think and not another coding style
    targets: Literal["reference", "policy"] = "reference"
    # who writes the entropy strategy's thoughts and plan: the annotator, or (task_hints) the task generator's
    # note on the operation the line performs and its step list, where the problem has them (meta.hints), the
    # annotator elsewhere
    thoughts: Literal["annotator", "task_hints"] = "annotator"
    drop_docstrings: bool = True  # targets without the reference's docstrings (HumanEval's repeat the prompt)
    thoughts_per_solution: int = Field(default=1, ge=1, le=8)
    thought_max_new_tokens: int = Field(default=24, ge=4)
    plan_max_new_tokens: int = Field(default=40, ge=4)
    rewrite_max_new_tokens: int = Field(default=512, ge=16)
    limit: int | None = Field(default=None, ge=1)
    shard_size: int = Field(default=32, ge=1)  # solutions per cached shard
    parallel_shards: int = Field(default=1, ge=1)  # shards at a time on the recipe's runner (threads, dask, ray)


class CalibrationConfig(Section):
    """The RL set, chosen by measurement: the policy RL starts from (the SFT model, not the base)
    samples each candidate problem ``samples`` times at the RL temperature and completion cap, and the
    problems whose pass rate lies in ``low``..``high`` (both included) are what RL trains on: there
    a GRPO group's rewards differ, so correctness carries signal. Off: RL draws from the train split."""

    HOW: ClassVar[frozenset[str]] = frozenset({"batch_size"})
    enabled: bool = False
    samples: int = Field(default=4, ge=2, le=64)
    low: float = Field(default=0.2, ge=0, le=1)
    high: float = Field(default=0.8, ge=0, le=1)
    limit: int | None = Field(
        default=None, ge=1
    )  # candidates: the first this many RL-source train problems, in RL order
    seed: int = 0
    batch_size: int = Field(default=8, ge=1)  # prompts per generation batch (each with its samples)

    @model_validator(mode="after")
    def _band(self) -> CalibrationConfig:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class PromptsConfig(Section):
    # what the reference's RL prompt asks (in our words): a brief upfront thought, then the code; inline
    # thoughts are required, frequent, inside a statement, never on their own line, never around a comment
    system: str = (
        "You are a careful Python programmer. First think briefly inside <think> </think>, then give the final "
        "code in one ```python block. In the code you must add short thoughts wrapped in <thinkanywhere> "
        "</thinkanywhere>, often, wherever a step needs care. Put each one inside a statement, with code before "
        "and after it on the same line, never on a line of its own, and never around a comment. They are removed "
        "before the code runs, so the code must run without them."
    )


class RunnerConfig(Section):
    """Where the fan-out stages (solution sampling, cold-start annotation, corpus annotation shards)
    run. How, not what: never part of a cache key."""

    kind: Literal["thread", "dask", "ray"] = "thread"  # dask: pip install 'thinkflow[dask]'; ray: 'thinkflow[ray]'
    address: str | None = None  # dask: tcp://scheduler:8786, ray: ray://head:10001; none: a local cluster for the stage
    workers: int = Field(default=2, ge=1)  # local cluster: worker processes (one thread each)


class TrackingConfig(Section):
    """The experiment tracker every stage run also reports to (tasks/tracking.py): its training
    curves, its metrics, its lineage ids. Where results are shown, never what they are: no cache key."""

    HOW: ClassVar[frozenset[str]] = frozenset({"kind", "uri", "experiment"})
    kind: Literal["none", "mlflow"] = "none"  # mlflow: pip install 'thinkflow[tracking]'
    uri: str | None = (
        None  # MLflow tracking URI (a server, or sqlite:///PATH); none: sqlite:///THINKFLOW_HOME/mlflow.db
    )
    experiment: str | None = None  # none: the pipeline's name


class Recipe(Section):
    name: str = "think-anywhere"
    runner: RunnerConfig = RunnerConfig()
    tracking: TrackingConfig = TrackingConfig()
    annotator: AnnotatorConfig = AnnotatorConfig()  # writes thoughts: cold-start set and mid-training corpus
    corpus: CorpusConfig = CorpusConfig()  # thinking-midtraining: what to chunk and annotate
    midtraining: MidtrainingSection = MidtrainingSection()  # thinking-midtraining: SFT, RL, post-training
    model: ModelConfig = ModelConfig()
    problems: ProblemsConfig = ProblemsConfig()
    sandbox: SandboxSection = SandboxSection()
    prompts: PromptsConfig = PromptsConfig()
    solutions: SolutionsConfig = SolutionsConfig()  # rejection sampling for train problems without a reference
    coldstart: ColdStartConfig = ColdStartConfig()
    calibration: CalibrationConfig = CalibrationConfig()  # the RL set: problems the SFT model solves sometimes
    sft: SFTSection = SFTSection()
    rl: RLSection = RLSection()
    # further RL arms from the same SFT model with the same settings, evaluated beside `rl` (a section of its own, so
    # adding an arm re-runs nothing already done); upfront_only: the paper's comparison, a format reward that credits
    # only the upfront <think> (plain GRPO with thinking)
    rl_arms: list[Literal["upfront_only"]] = Field(default_factory=list)
    evaluate: EvaluateConfig = EvaluateConfig()

    def with_resolved_precision(self) -> Recipe:
        """``model.torch_dtype: auto`` resolved on this machine, and every training section's unset
        ``bf16`` following it: what the stages run with and lineage records."""
        model = self.model.resolved()
        bf16 = model.torch_dtype == "bfloat16"

        def follow(section):
            return section if section.bf16 is not None else section.model_copy(update={"bf16": bf16})

        midtraining = self.midtraining.model_copy(
            update={"sft": follow(self.midtraining.sft), "rl": follow(self.midtraining.rl)}
        )
        return self.model_copy(
            update={"model": model, "sft": follow(self.sft), "rl": follow(self.rl), "midtraining": midtraining}
        )

    def benchmarks(self) -> list[BenchmarkConfig]:
        """The evaluation's benchmarks, resolved: each with its source and whether it is held out.

        A benchmark on a training source is held out by default and loads as that source does
        (same difficulties and limit), so its pool is exactly the split's held-out share."""
        training = {s.name: s for s in self.problems.sources}
        configured = self.evaluate.benchmarks or [
            BenchmarkConfig(name=source.name.split(":")[0], source=source.name) for source in self.problems.sources
        ]
        resolved = []
        for bench in configured:
            held_out = bench.source_name in training if bench.held_out is None else bench.held_out
            if held_out and bench.source_name not in training:
                raise RecipeError(
                    f"evaluate.benchmarks {bench.name}: held_out needs {bench.source_name!r} among problems.sources"
                )
            resolved.append(bench.model_copy(update={"source": bench.source_name, "held_out": held_out}))
        return resolved

    def benchmark_sources(self) -> ProblemsConfig | None:
        """What load_problems loads for the benchmarks that are not held out (None: there are none)."""
        sources = [
            SourceConfig(name=b.source, difficulties=b.difficulties) for b in self.benchmarks() if not b.held_out
        ]
        unique = list({json.dumps(s.to_json(), sort_keys=True): s for s in sources}.values())
        return ProblemsConfig(sources=unique) if unique else None


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """``a.b.c=value`` with the value parsed as YAML (``3``, ``true``, ``[1, 2]``, ``text``)."""
    if "=" not in assignment:
        raise RecipeError(f"--set expects KEY=VALUE, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(f"--set {key}: {part} is not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise RecipeError(
            f"--set {key}: the value {raw!r} is not valid YAML (quote text, e.g. --set {key}='\"{raw}\"')"
        ) from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = Path(path)
    if not path.exists():
        raise RecipeError(
            f"recipe {path} does not exist; the recipes that ship are in configs/ (tiny.yaml, default.yaml)"
        )
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise RecipeError(
            f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc}); fix the file's syntax"
        ) from exc
    if not isinstance(tree, dict):
        raise RecipeError(f"{path}: the recipe must be a mapping of sections")
    for assignment in overrides or []:
        apply_override(tree, assignment)
    try:
        return Recipe.model_validate(tree)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in error['loc']) or '(top level)'}: {error['msg']}" for error in exc.errors()
        ]
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        source = f"{path} with --set {' '.join(overrides)}" if overrides else str(path)
        raise RecipeError(
            f"{source}: invalid recipe: {shown} (the keys each section takes: configs/default.yaml)"
        ) from None
