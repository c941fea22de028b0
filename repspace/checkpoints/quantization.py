"""Quantized bases: QLoRA adapters, bitsandbytes checkpoints, ``--load-in-4bit`` / ``-8bit``.

A QLoRA adapter was trained on its base loaded in 4 bits (NF4 weights, bfloat16 compute).
repspace compares it, by default, on the *unquantized* base in bfloat16 (the base's own
dtype under ``--dtype auto`` when that is a half type): the numbers are then the adapter's
effect on the full-precision weights, not on the 4-bit model it was trained with (see
docs/compare.md).  Where ``bitsandbytes`` imports and a CUDA device exists,
``--load-in-4bit`` / ``--load-in-8bit`` load every transformers model of the comparison
through transformers' ``BitsAndBytesConfig``, as the adapter was trained.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from repspace.checkpoints.errors import CheckpointError

if TYPE_CHECKING:
    import torch

__all__ = [
    "QUANT_FLAGS",
    "check_quantization",
    "quantization_mode",
    "bnb_config",
    "bnb_usable",
    "stored_quantization",
    "qlora_reason",
]

QUANT_FLAGS = {"4bit": "--load-in-4bit", "8bit": "--load-in-8bit"}
# How QLoRA bases are usually named on the hub (unsloth/…-bnb-4bit, …-nf4, …-int4, …-4bit).
_FOUR_BIT_NAME = re.compile(r"(bnb|nf4|int4|4-?bit)", re.IGNORECASE)


def bnb_usable() -> str | None:
    """None when bitsandbytes loads models here; otherwise why not (what to do)."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or a library that fails to load
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        return (
            f"bitsandbytes cannot be imported ({first}); install it (pip install "
            "bitsandbytes) on a machine with a CUDA GPU"
        )
    import torch

    if not torch.cuda.is_available():
        return "there is no CUDA device on this machine, and bitsandbytes quantizes on one"
    return None


def quantization_mode(load_in_4bit: bool = False, load_in_8bit: bool = False) -> str | None:
    """``"4bit"``, ``"8bit"`` or None: the one rule of the two flags (both is an error).
    torch-free, so that settings classes check it when they are made."""
    if load_in_4bit and load_in_8bit:
        raise ValueError("--load-in-4bit and --load-in-8bit: choose one")
    return "4bit" if load_in_4bit else "8bit" if load_in_8bit else None


def check_quantization(load_in_4bit: bool = False, load_in_8bit: bool = False) -> str | None:
    """``"4bit"``, ``"8bit"`` or None; a one-line error naming the flag and what to do when
    both are given or bitsandbytes cannot load models on this machine."""
    mode = quantization_mode(load_in_4bit, load_in_8bit)
    if mode is None:
        return None
    why = bnb_usable()
    if why is not None:
        raise ValueError(
            f"{QUANT_FLAGS[mode]}: {why}; or leave the flag out to compare on the "
            "unquantized base in its own dtype (--dtype auto)"
        )
    return mode


def bnb_config(mode: str, compute_dtype: torch.dtype | None = None):
    """transformers' ``BitsAndBytesConfig`` for ``mode``: 4-bit is QLoRA's recipe (NF4, double
    quantization, ``compute_dtype`` matmuls, bfloat16 when None), 8-bit is LLM.int8()."""
    import torch
    from transformers import BitsAndBytesConfig

    if mode == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype or torch.bfloat16,
        )
    if mode == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"quantization must be '4bit' or '8bit'; got {mode!r}")


def stored_quantization(config: dict) -> dict | None:
    """A ``config.json``'s ``quantization_config`` (a checkpoint saved quantized), or None."""
    q = config.get("quantization_config") if isinstance(config, dict) else None
    return q if isinstance(q, dict) and q else None


def describe_quantization(q: dict) -> str:
    method = str(q.get("quant_method", "?"))
    bits = (
        "4-bit"
        if q.get("load_in_4bit")
        else "8-bit"
        if q.get("load_in_8bit")
        else f"{q['bits']}-bit"
        if q.get("bits")
        else None
    )
    return f"{method}{f' {bits}' if bits else ''}"


def refuse_stored_quantization(spec: str, config: dict, mode: str | None) -> None:
    """A checkpoint saved quantized by bitsandbytes holds packed integer weights that only
    bitsandbytes (on CUDA) can read: refused, naming the levers, when it cannot."""
    q = stored_quantization(config)
    if q is None or str(q.get("quant_method", "")).lower() != "bitsandbytes":
        return
    why = bnb_usable()
    if why is None:
        return  # transformers loads it as stored (quantized), as it was trained on
    flag = QUANT_FLAGS["8bit" if q.get("load_in_8bit") else "4bit"]
    raise CheckpointError(
        f"{spec}: its weights are stored quantized ({describe_quantization(q)}) and {why}; "
        f"run on a CUDA machine with bitsandbytes (it loads as stored; {flag} there for the "
        "other models), or pass --base-override with the unquantized model it was made from "
        "(a QLoRA adapter is then compared on it in bfloat16, see docs/compare.md)"
    )


def qlora_reason(adapter_config: dict, base_config: dict | None) -> str | None:
    """Why an adapter looks trained on a 4-bit base (QLoRA), or None: its base's config.json
    records a 4-bit ``quantization_config``, or its recorded base name says 4-bit."""
    q = stored_quantization(base_config or {})
    if q is not None and (q.get("load_in_4bit") or str(q.get("bits", "")) == "4"):
        return f"its base is stored {describe_quantization(q)}"
    named = adapter_config.get("base_model_name_or_path")
    if isinstance(named, str) and _FOUR_BIT_NAME.search(Path(named).name or named):
        return f"its recorded base {named} is a 4-bit model"
    return None


def compute_dtype_of(base_config: dict | None) -> torch.dtype | None:
    """The ``bnb_4bit_compute_dtype`` a quantized base records, or None."""
    q = stored_quantization(base_config or {}) or {}
    name = q.get("bnb_4bit_compute_dtype")
    import torch

    dtype = getattr(torch, str(name).removeprefix("torch."), None) if name else None
    return dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else None
