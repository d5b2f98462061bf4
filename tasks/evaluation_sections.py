"""The evaluation's recipe sections: which benchmarks, how samples are drawn and scored, the prompting variants.
Part of the recipe (tasks/recipe.py re-exports them); here to keep each module small."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from tasks.sections import Section

VARIANTS = ("thinking", "plain_prompt", "no_thinking", "think_budget")
NO_THINKING_PREFILL = "<think>\nOkay, I think I have finished thinking.\n</think>\n"  # NoThinking (Ma et al., 2025)


class BenchmarkConfig(Section):
    name: str  # the label in reports: humaneval, leetcode, mbpp, livecodebench, ...
    source: str | None = None  # a problem source (as in problems.sources); default: the name
    difficulties: list[Literal["Easy", "Medium", "Hard"]] | None = None
    held_out: bool | None = (
        None  # only the problems the split keeps out of training; default: when it is a training source
    )
    limit: int | None = Field(default=None, ge=1)  # subset: this many problems, drawn by hashed id
    ids: list[str] | None = None  # subset: exactly these problem ids

    @property
    def source_name(self) -> str:
        return self.source or self.name


class EvaluateConfig(Section):
    benchmarks: list[BenchmarkConfig] = Field(default_factory=list)  # empty: every training source, held out
    samples: int = Field(default=1, ge=1)  # n per problem; greedy when temperature is 0
    k: list[int] = Field(default_factory=lambda: [1])
    temperature: float = Field(default=0.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: int = 0
    max_new_tokens: int = Field(default=256, ge=1)
    batch_size: int = Field(default=16, ge=1)
    # HF: decode in rounds of this many tokens, regrouping the rows still open after each (None: one round)
    round_tokens: int | None = Field(default=None, ge=1)
    backend: Literal["hf", "vllm"] = "hf"
    stop: list[str] = Field(default_factory=list)  # extra stop strings
    # where a checkpoint is decoded and scored: "fresh", a new Python process per evaluation (the flow's own
    # process decoded ~2.5x slower late in a long run: tasks/child_process.py); "flow", in the flow's process
    # (no start-up: ~5 s saved per evaluation, for tiny models)
    process: Literal["fresh", "flow"] = "fresh"
    variants: list[Literal[VARIANTS]] = Field(default_factory=lambda: ["thinking"])  # for every checkpoint
    baselines: list[Literal[VARIANTS]] = Field(default_factory=list)  # for the base model only
    think_budget_tokens: int = Field(default=64, ge=1)  # the think_budget variant's cap on the upfront thought
    plain_prompt: str = "You are a careful Python programmer. Answer with one ```python code block."
    entropy: bool = True  # next-token entropy at think sites vs other code positions
    bootstrap_resamples: int = Field(default=1000, ge=10)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    checkpoints: list[str] = Field(default_factory=list)  # the evaluate flow: checkpoint artifact ids to compare
    evaluate_base_model: bool = True

    @model_validator(mode="after")
    def _consistent(self):
        if max(self.k) > self.samples:
            raise ValueError(
                f"pass@{max(self.k)} needs at least {max(self.k)} samples per problem; samples is {self.samples}"
            )
        if min(self.k) < 1:
            raise ValueError("k values must be at least 1")
        if self.temperature == 0 and self.samples > 1:
            raise ValueError(
                f"temperature 0 is greedy decoding: one sample per problem, not {self.samples}; set a temperature"
            )
        names = [b.name for b in self.benchmarks]
        if len(set(names)) != len(names):
            raise ValueError(f"benchmark names repeat: {names}")
        return self

    def generation(self) -> EvalGeneration:
        """What decides the samples: part of every evaluation's cache key."""
        return EvalGeneration(**self.model_dump(include=set(EvalGeneration.model_fields)))

    def scoring(self) -> EvalScoring:
        return EvalScoring(**self.model_dump(include=set(EvalScoring.model_fields)))

    def variant(self, name: str, thinking_prompt: str) -> EvalVariant:
        """How a variant prompts: its system prompt, the assistant prefill, the thinking budget."""
        return EvalVariant(
            name=name,
            system_prompt=self.plain_prompt if name == "plain_prompt" else thinking_prompt,
            prefill=NO_THINKING_PREFILL if name == "no_thinking" else "",
            think_budget=self.think_budget_tokens if name == "think_budget" else None,
        )


class EvalGeneration(Section):
    """The part of ``evaluate`` that decides the samples (and, outside the cache key, where they are made)."""

    HOW: ClassVar[frozenset[str]] = frozenset({"process"})

    samples: int
    temperature: float
    top_p: float
    seed: int
    max_new_tokens: int
    batch_size: int
    round_tokens: int | None
    backend: Literal["hf", "vllm"]
    stop: list[str]
    process: Literal["fresh", "flow"]


class EvalScoring(Section):
    """The part of ``evaluate`` that decides the scores drawn from the samples."""

    k: list[int]
    entropy: bool
    bootstrap_resamples: int
    confidence: float


class EvalVariant(Section):
    """One way of prompting a checkpoint for evaluation."""

    name: Literal[VARIANTS]
    system_prompt: str
    prefill: str = ""
    think_budget: int | None = None
