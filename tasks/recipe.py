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
from pydantic import Field, ValidationError, field_validator, model_validator

from tasks.evaluation_sections import (  # noqa: F401 (the evaluation's sections, re-exported: one place to import a section)
    NO_THINKING_PREFILL,
    VARIANTS,
    BenchmarkConfig,
    EvalGeneration,
    EvalScoring,
    EvalVariant,
    EvaluateConfig,
)
from tasks.sections import RecipeError, Section


REPLY_SETTINGS = frozenset({"kind", "model", "temperature"})


class AnnotatorConfig(Section):
    """The model that writes plans, thoughts and (``llm``) judgements: a local HF/vLLM model or an
    OpenAI-compatible endpoint. Only the reply settings are part of a cache key: a server on
    another port serving the same model gives the same replies."""

    HOW: ClassVar[frozenset[str]] = frozenset(
        {"base_url", "api_key_env", "concurrency", "max_retries", "backoff_s", "timeout_s", "batch_size", "cache"}
    )

    kind: Literal["hf", "openai", "vllm"] = "hf"
    model: str = "policy"  # hf/vllm: "policy" or a model name the registry builds; openai: the served model's name
    base_url: str = "http://127.0.0.1:8000/v1"  # openai only
    api_key_env: str = "OPENAI_API_KEY"  # openai only: the environment variable holding the key (if any)
    concurrency: int = Field(default=8, ge=1, le=256)
    max_retries: int = Field(default=6, ge=0)
    backoff_s: float = Field(default=0.5, ge=0)
    timeout_s: float = Field(default=120.0, gt=0)
    temperature: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=16, ge=1)  # hf only
    cache: bool = True  # openai only: reuse replies by content hash


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

    def resolved(self) -> "ModelConfig":
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
    def _bands_divide(self) -> "NearDuplicateFilter":
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

    def split_rule(self) -> "SplitRule":
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
    def _band(self) -> "CalibrationConfig":
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class LoraSection(Section):
    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


class ThinkTokensSection(Section):
    """Think-Anywhere*: the tags become tokens of their own (tasks/training/think_tokens.py); stage 1 trains
    only their embedding rows for ``stage1_steps``, then the SFT section's own run (use
    ``train: lora``: LoRA plus those rows) is stage 2."""

    enabled: bool = False
    stage1_steps: int = Field(default=8, ge=1)
    stage1_learning_rate: float = Field(default=1e-3, gt=0)


class SFTSection(Section):
    HOW: ClassVar[frozenset[str]] = frozenset({"accelerate_config", "timeout_s"})
    train: Literal["full", "lora", "new_rows"] = (
        "full"  # new_rows: Think-Anywhere* stage 1 (``stage1()``), not for recipes
    )
    lora: LoraSection = LoraSection()
    think_tokens: ThinkTokensSection = ThinkTokensSection()
    max_steps: int = Field(default=10, ge=1)
    num_train_epochs: float | None = Field(
        default=None, gt=0
    )  # when set, epochs decide the length (max_steps is ignored)
    learning_rate: float = Field(default=5e-5, gt=0)
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_steps: float = Field(default=0, ge=0)  # a whole number of steps, or a share of them below 1 (0.1: 10 %)
    per_device_train_batch_size: int = Field(default=4, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    max_length: int = Field(default=512, ge=16)
    packing: bool = False
    bf16: bool | None = None  # bf16 autocast over float32 weights; unset: as model.torch_dtype resolves
    seed: int = 0
    save_steps: int = Field(default=50, ge=1)  # a complete checkpoint every N steps: a killed run resumes from it
    accelerate_config: str = "auto"  # auto: configs/accelerate/cpu.yaml without CUDA, single_gpu.yaml with it
    timeout_s: int = Field(default=3600, ge=10)
    trl: dict[str, Any] = Field(default_factory=dict)  # extra SFTConfig fields, passed through

    def stage1(self) -> "SFTSection":
        """The section for Think-Anywhere* stage 1: only the new rows, its own steps and rate."""
        return self.model_copy(
            update={
                "train": "new_rows",
                "max_steps": self.think_tokens.stage1_steps,
                "num_train_epochs": None,
                "learning_rate": self.think_tokens.stage1_learning_rate,
            }
        )


THINK_ANYWHERE_TERMS = ("correct", "tests_passed", "upfront_think", "inline_think")


class RewardSection(Section):
    name: Literal["think_anywhere", "midtrain_judge", "math"] = "think_anywhere"
    weights: dict[str, float] = Field(
        default_factory=lambda: {"correct": 0.9, "upfront_think": 0.02, "inline_think": 0.08}
    )
    # midtrain_judge: offline token overlap (F1 >= threshold), the F1 itself (graded), or the recipe's annotator
    judge: Literal["overlap", "f1", "llm"] = "overlap"
    threshold: float = Field(default=0.3, gt=0, le=1)  # midtrain_judge/overlap: token F1 needed
    format_weight: float = Field(default=0.0, ge=0)  # midtrain_judge, math: weight of "opens with <think>"

    @field_validator("weights")
    @classmethod
    def _known_terms(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = set(weights) - set(THINK_ANYWHERE_TERMS)
        if unknown:
            raise ValueError(f"unknown reward terms {sorted(unknown)}; known: {', '.join(THINK_ANYWHERE_TERMS)}")
        return weights


class ProbeSection(Section):
    """A fixed probe set for RL (tasks/training/probe.py): ``prompts`` RL prompts, ``samples`` completions
    each, scored with the run's reward at step 0 and every ``every`` optimizer steps. 0 prompts: none."""

    HOW: ClassVar[frozenset[str]] = frozenset({"batch_prompts"})
    prompts: int = Field(default=0, ge=0)
    samples: int = Field(default=4, ge=1, le=64)
    every: int = Field(default=4, ge=1)
    seed: int = 0
    batch_prompts: int = Field(default=8, ge=1)


class RLSection(Section):
    HOW: ClassVar[frozenset[str]] = frozenset({"accelerate_config", "timeout_s"})
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"] = "dr_grpo"
    # the advantage: "group" is standard GRPO, (r - mean) / std within each prompt's group; "none" keeps
    # r - mean (Dr.GRPO); unset: "none" with dr_grpo, "group" otherwise
    scale_rewards: Literal["group", "batch", "none"] | None = None
    reward: RewardSection = RewardSection()
    drop_equal_groups: bool = True  # groups whose rewards all tie carry no signal: masked out, counted
    train: Literal["full", "lora"] = "full"
    lora: LoraSection = LoraSection()
    max_steps: int = Field(default=4, ge=1)  # optimizer steps (steps_per_generation of them per generation batch)
    num_train_epochs: float | None = Field(default=None, gt=0)
    learning_rate: float = Field(default=1e-5, gt=0)
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "constant"
    warmup_steps: float = Field(default=0, ge=0)
    num_generations: int = Field(default=4, ge=2)
    per_device_train_batch_size: int = Field(default=8, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    # optimizer updates per generation batch: one batch of per_device_train_batch_size x steps_per_generation
    # completions is generated, then trained on in that many updates (unset: gradient_accumulation_steps)
    steps_per_generation: int | None = Field(default=None, ge=1)
    num_iterations: int = Field(default=1, ge=1)  # passes over each generation batch
    max_prompt_length: int = Field(default=512, ge=16)
    max_completion_length: int = Field(default=128, ge=8)
    stop_at_code_end: bool = True  # a rollout ends (with EOS) once its first code block closes
    mask_truncated_completions: bool = False  # completions cut at max_completion_length leave the loss (always counted)
    shuffle_seed: int | None = 0  # the RL prompts are drawn in this seeded order (None: file order)
    sources: list[str] | None = None  # only train problems from these sources (e.g. [humaneval]); None: all
    temperature: float = Field(default=1.0, gt=0)
    beta: float = Field(default=0.0, ge=0)
    use_vllm: bool = False  # GPU only
    vllm_mode: Literal["colocate", "server"] = "colocate"
    bf16: bool | None = None  # bf16 autocast over float32 weights; unset: as model.torch_dtype resolves
    seed: int = 0
    save_steps: int = Field(default=50, ge=1)
    accelerate_config: str = "auto"
    limit: int | None = Field(default=None, ge=1)
    timeout_s: int = Field(default=3600, ge=10)
    probe: ProbeSection = ProbeSection()  # the reward trend on fixed prompts (0 prompts: off)
    trl: dict[str, Any] = Field(default_factory=dict)  # extra GRPOConfig fields, passed through

    def completions_per_generation(self) -> int:
        """Completions behind one generation batch (what a logged step's reward averages over, per process)."""
        return self.per_device_train_batch_size * (self.steps_per_generation or self.gradient_accumulation_steps)

    def upfront_only(self) -> "RLSection":
        """This section for the upfront-only arm: the inline term's weight moves to the upfront term
        (the format share stays the same; inline_think is still computed and logged)."""
        weights = {**self.reward.weights}
        weights["upfront_think"] = weights.get("upfront_think", 0.0) + weights.get("inline_think", 0.0)
        weights["inline_think"] = 0.0
        return self.model_copy(update={"reward": self.reward.model_copy(update={"weights": weights})})

    @field_validator("per_device_train_batch_size")
    @classmethod
    def _divisible(cls, batch: int, info) -> int:
        groups = info.data.get("num_generations")
        if groups and batch % groups:
            raise ValueError(f"must be divisible by num_generations ({groups}), got {batch}")
        return batch


class MidtrainingRLSection(RLSection):
    """RL mid-training: the same settings as ``rl``, judged by ``midtrain_judge`` by default."""

    reward: RewardSection = RewardSection(name="midtrain_judge")
    stop_at_code_end: bool = False  # the completion is prose
    # the prompt ends with <think>: every rollout is a thought, then its guess (as the held-out evaluation's
    # thinking mode); false leaves opening a thought to the model (0 reward when it does not)
    prefill_think: bool = True
    max_prompt_length: int = Field(default=384, ge=16)
    max_completion_length: int = Field(default=96, ge=8)


class MidtrainingEvalSection(Section):
    """The held-out mid-training evaluation (``corpus.eval_fraction`` > 0): each model continues
    held-out prefixes with a thought (``<think>`` prefilled) and without (an empty one prefilled),
    judged as in RL mid-training, and the perplexity of the true suffix."""

    max_new_tokens: int = Field(default=48, ge=4)  # the continuation's budget, the same with and without a thought
    thought_tokens: int = Field(default=32, ge=1)  # added to it when thinking, for the thought itself
    batch_size: int = Field(default=8, ge=1)
    limit: int | None = Field(default=None, ge=1)  # at most this many (prefix, suffix) examples
    resamples: int = Field(default=1000, ge=100)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    seed: int = 0


class MidtrainingSection(Section):
    """Thinking Mid-training after the corpus: SFT on the SFT half (plain text with thoughts), RL on
    the RL half (prefix → thought + next segment, judged), then optional RLVR post-training."""

    sft: SFTSection = SFTSection()
    rl: MidtrainingRLSection = MidtrainingRLSection()
    post_training: Literal["none", "code", "math"] = (
        "none"  # code: the Think-Anywhere RL stage (recipe `rl`) + evaluation
    )
    math_source: str | None = (
        None  # post_training math: gsm8k:PATH or jsonl:PATH (question, answer); RL with recipe `rl`
    )
    # where RLVR post-training starts, one arm each, same problems and settings (the paper's baselines):
    # base | sft_raw (SFT on the same chunks without thoughts, same budget) | sft_think | sft_think_rlmt
    arms: list[Literal["base", "sft_raw", "sft_think", "sft_think_rlmt"]] = ["sft_think_rlmt"]
    # more RLVR arms, each from its own RL mid-training run of this many steps from the same SFT(think) model
    # (arm sft_think_rlmt_<steps>): the paper's "more RLMT, higher RLVR reward", swept (0 steps is sft_think)
    rlmt_sweep: list[int] = Field(default_factory=list)
    evaluate: MidtrainingEvalSection = MidtrainingEvalSection()
    # an LLM judge (e.g. kind: openai at a `thinkflow serve-annotator` endpoint) scored against the overlap
    # judge on every held-out (prediction, truth) pair: the `judge agreement` stage (needs corpus.eval_fraction > 0)
    agreement_judge: AnnotatorConfig | None = None

    @model_validator(mode="after")
    def _math_needs_source(self) -> "MidtrainingSection":
        if self.post_training == "math" and not self.math_source:
            raise ValueError("post_training: math needs math_source (gsm8k:PATH or jsonl:PATH)")
        if not self.arms or len(set(self.arms)) != len(self.arms):
            raise ValueError(f"midtraining.arms must name each arm once, at least one: {self.arms}")
        if len(set(self.rlmt_sweep)) != len(self.rlmt_sweep) or any(
            s < 1 or s == self.rl.max_steps for s in self.rlmt_sweep
        ):
            raise ValueError(
                f"midtraining.rlmt_sweep {self.rlmt_sweep}: distinct step counts of at least 1, other than "
                f"midtraining.rl.max_steps ({self.rl.max_steps}, the sft_think_rlmt arm; 0 steps is sft_think)"
            )
        return self

    def rlvr_arms(self) -> list[str]:
        """Where RLVR post-training starts: ``arms``, then one arm per RL mid-training length swept."""
        return list(self.arms) + [f"sft_think_rlmt_{steps}" for steps in self.rlmt_sweep]


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


class Recipe(Section):
    name: str = "think-anywhere"
    runner: RunnerConfig = RunnerConfig()
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

    def with_resolved_precision(self) -> "Recipe":
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
