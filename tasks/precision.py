"""Which floating-point precision a run uses: ``model.torch_dtype: auto`` resolved on the machine at hand.

bf16 pays only where the hardware computes in it: a GPU with bf16, or a CPU with AMX-BF16 tiles
(measured on 2 AMX cores, SmolLM2-135M greedy batch 32: float32 weights 348 tokens/s, bf16 weights
574, float32 weights under bf16 autocast 487). Without AMX, bf16 runs 1.6x *slower* than float32
on these CPUs, so ``auto`` keeps float32 there. Generation and evaluation load bf16 weights;
training keeps float32 master weights and runs its forward and backward passes under bf16 autocast
(TRL/transformers ``bf16: true``), which is what ``sft.bf16`` / ``rl.bf16`` left unset follow.

The resolved choice, not ``auto``, goes into every stage's parameters, so the cache key and the
lineage record say which precision made an artifact.
"""

from __future__ import annotations

from pathlib import Path


def cpu_has_amx_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        return "amx_bf16" in cpuinfo.read_text()
    except OSError:
        return False


def bf16_hardware() -> str | None:
    """What computes in bf16 here ("a GPU with bf16", "a CPU with AMX-BF16"), or None."""
    import torch

    if torch.cuda.is_available():
        return "a GPU with bf16" if torch.cuda.is_bf16_supported() else None
    return "a CPU with AMX-BF16" if cpu_has_amx_bf16() else None


def resolve_dtype(requested: str) -> tuple[str, str]:
    """(dtype, why) for ``float32`` | ``bfloat16`` | ``auto``."""
    if requested != "auto":
        return requested, "set in the recipe"
    hardware = bf16_hardware()
    if hardware:
        return "bfloat16", f"auto: {hardware}"
    return "float32", "auto: no bf16 hardware (no CUDA bf16, no AMX-BF16), where bf16 would run slower"
