"""The sections of the training stages (SFT, RL, its reward and probe, Thinking Mid-training) and of the
annotator, typed and validated; tasks/recipe.py puts them into a recipe and re-exports them."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from tasks.sections import Section

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

    def stage1(self) -> SFTSection:
        """The section for Think-Anywhere* stage 1: only the new rows, its own steps and rate."""
        return self.model_copy(
            update={
                "train": "new_rows",
                "max_steps": self.think_tokens.stage1_steps,
                "num_train_epochs": None,
                "learning_rate": self.think_tokens.stage1_learning_rate,
            }
        )


# the reward terms' registry is imported to validate ``rl.reward.weights`` only: a stage that computes a
# reward reaches it through its own imports (tasks/training/rewards.py), so editing a term re-runs RL and
# what follows, not every stage that reads a recipe (tasks/code_version.py)
OPTIONAL_IMPORTS = ("tasks.training.reward_terms",)


class RewardSection(Section):
    name: Literal["think_anywhere", "midtrain_judge", "math"] = "think_anywhere"
    # think_anywhere: every term's weight, the registered defaults (tasks/training/reward_terms.py) filled in
    # where a recipe names fewer; a term with weight 0 is computed and logged, not rewarded
    weights: dict[str, float] = Field(default_factory=dict)
    modules: list[str] = Field(default_factory=list)  # think_anywhere: modules that register more terms
    # midtrain_judge: offline token overlap (F1 >= threshold), the F1 itself (graded), or the recipe's annotator
    judge: Literal["overlap", "f1", "llm"] = "overlap"
    threshold: float = Field(default=0.3, gt=0, le=1)  # midtrain_judge/overlap: token F1 needed
    format_weight: float = Field(default=0.0, ge=0)  # midtrain_judge, math: weight of "opens with <think>"

    @model_validator(mode="before")
    @classmethod
    def _registered_terms(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("name", "think_anywhere") != "think_anywhere":
            return data
        from tasks.training.reward_terms import resolved_weights

        return {**data, "weights": resolved_weights(dict(data.get("weights") or {}), list(data.get("modules") or []))}


class ProbeSection(Section):
    """A fixed probe set for RL (tasks/training/probe.py): ``prompts`` RL prompts, ``samples`` completions
    each, scored with the run's reward at step 0 and every ``every`` optimizer steps. 0 prompts: none."""

    HOW: ClassVar[frozenset[str]] = frozenset({"batch_prompts"})
    prompts: int = Field(default=0, ge=0)
    samples: int = Field(default=4, ge=1, le=64)
    every: int = Field(default=4, ge=1)
    seed: int = 0
    batch_prompts: int = Field(default=8, ge=1)


class RLDraw(Section):
    """What a stage that samples like RL reads from the RL section (calibration): which problems RL draws
    and in what order, and how it samples; the cache key of such a stage leaves the rest of RL out."""

    sources: list[str] | None = None
    shuffle_seed: int | None = 0
    temperature: float = Field(default=1.0, gt=0)
    max_completion_length: int = Field(default=128, ge=8)


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

    def draw(self) -> RLDraw:
        """The part of this section a calibration stage depends on."""
        return RLDraw(**{name: getattr(self, name) for name in RLDraw.model_fields})

    def completions_per_generation(self) -> int:
        """Completions behind one generation batch (what a logged step's reward averages over, per process)."""
        return self.per_device_train_batch_size * (self.steps_per_generation or self.gradient_accumulation_steps)

    def upfront_only(self) -> RLSection:
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
    def _math_needs_source(self) -> MidtrainingSection:
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
