"""Which dtype a checkpoint loads in, and whether this machine multiplies it fast.

``dtype="auto"`` (the default of ``repspace compare``) keeps a checkpoint's own dtype, the
way the ecosystem loads it: ``torch_dtype`` / ``dtype`` in its ``config.json`` (for a
composite model without a top-level entry, its sub-configs' when they agree), float32 when
the config names none.  transformers then builds the model on the meta device and takes
the tensors from the memory-mapped safetensors file: no float32 copy, no second copy.  An
explicit dtype (``"float32"``: upcast, ``"bfloat16"``, ``"float16"``) casts at load.

A bfloat16 / float16 model on a CPU without fast half-precision matrix multiplies (no
AVX512-BF16 / AMX for bfloat16, no AVX512-FP16 / AMX-FP16 for float16) still runs, in its
own dtype, several times slower than float32: :func:`slow_matmul_note` says so, once, in a
recorded note rather than upcasting silently.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from repspace._jsonfile import JSONFileError, read_json
from repspace.checkpoints.errors import CheckpointError

if TYPE_CHECKING:  # torch is imported where a function needs it: reading a config needs none
    import torch

__all__ = [
    "DTYPE_CHOICES",
    "MAX_CONFIG_BYTES",
    "check_dtype",
    "config_error",
    "config_dtype",
    "read_config",
    "resolve_dtype",
    "weights_dtype",
    "slow_matmul_note",
    "itemsize",
]

DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")  # the CLI's; the API also takes float64
_FLOATS = ("float32", "bfloat16", "float16", "float64")
_ALIASES = {
    "fp32": "float32",
    "float": "float32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "half": "float16",
    "double": "float64",
}
_ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}
MAX_CONFIG_BYTES = 64 << 20  # a config (or weights index) larger than this is not one


def _torch_dtype_name(value):
    """``value`` as a dtype name when it is a ``torch.dtype`` (then torch is imported
    already: no import here), else ``value`` unchanged."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    return value


def check_dtype(dtype, option: str = "--dtype") -> str:
    """``dtype`` as a canonical name (``"auto"`` or a floating dtype); a one-line error else.
    None means the default, ``"auto"``."""
    if dtype is None:
        return "auto"
    dtype = _torch_dtype_name(dtype)
    name = _ALIASES.get(str(dtype), str(dtype))
    if name != "auto" and name not in _FLOATS:
        raise ValueError(
            f"{option}: {dtype!r} is not a weights dtype; choose auto (the "
            f"checkpoint's own), {', '.join(_FLOATS[:3])} (or float64 in the API)"
        )
    return name


def read_config(path: Path) -> dict:
    """A JSON config file as a dict; a one-line :class:`CheckpointError` naming it otherwise
    (a pipe or device instead of the file, more than :data:`MAX_CONFIG_BYTES`, unreadable or
    not JSON: :func:`repspace._jsonfile.read_json`)."""
    try:
        cfg = read_json(path, max_bytes=MAX_CONFIG_BYTES)
    except JSONFileError as exc:
        raise config_error(path, exc) from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: must hold a JSON object; got {type(cfg).__name__}")
    return cfg


def config_error(path, exc: JSONFileError) -> CheckpointError:
    """The loader's one line for a config file that :func:`repspace._jsonfile.read_json`
    refused (read with ``max_bytes=MAX_CONFIG_BYTES``)."""
    if exc.size is not None:
        return CheckpointError(
            f"{path}: {exc.size} bytes is too large for a config file; check the checkpoint"
        )
    return CheckpointError(
        f"{path}: not a readable JSON config ({exc.problem}); re-download or re-save the checkpoint"
    )


def _named(value) -> str | None:
    value = _torch_dtype_name(value)
    if isinstance(value, str):
        value = _ALIASES.get(value, value)
        return value if value in _FLOATS else None
    return None


def config_dtype(config) -> str:
    """The dtype a config (a ``config.json`` dict or a transformers config) records:
    ``dtype`` / ``torch_dtype``, else its sub-configs' when they all agree, else float32."""
    for key in _dtype_keys(config):
        named = _named(_get(config, key))
        if named:
            return named
    subs = (
        [v for v in config.values() if isinstance(v, dict)]
        if isinstance(config, dict)
        else [getattr(config, k, None) for k in getattr(config, "sub_configs", {}) or {}]
    )
    found = {
        d
        for d in (
            config_dtype(s) if s is not None else None
            for s in subs
            if s is not None and _sub_has_dtype(s)
        )
        if d
    }
    return found.pop() if len(found) == 1 else "float32"


def _get(config, key):
    return config.get(key) if isinstance(config, dict) else getattr(config, key, None)


def _dtype_keys(config) -> tuple[str, ...]:
    # a transformers config object reads torch_dtype into dtype (asking it for torch_dtype warns)
    return ("dtype", "torch_dtype") if isinstance(config, dict) else ("dtype",)


def _sub_has_dtype(sub) -> bool:
    return any(_named(_get(sub, k)) for k in _dtype_keys(sub))


def resolve_dtype(dtype, config) -> torch.dtype:
    """The torch dtype to load a model of ``config`` in: ``"auto"`` (or None) reads the
    config (:func:`config_dtype`), anything else is that dtype."""
    import torch

    name = check_dtype(dtype)
    return getattr(torch, config_dtype(config) if name == "auto" else name)


def itemsize(dtype: str | torch.dtype) -> int:
    """Bytes per value of a floating dtype (by name or as a torch dtype)."""
    if isinstance(dtype, str) and dtype in _ITEMSIZE:
        return _ITEMSIZE[dtype]  # the floating dtypes by name: no torch import for a plan
    import torch

    return (getattr(torch, dtype) if isinstance(dtype, str) else dtype).itemsize


def weights_dtype(model: torch.nn.Module) -> str:
    """The dtype that holds most of ``model``'s floating-point parameters (an adapter's
    float32 weights on a bfloat16 base do not change it); ``"bnb-4bit"`` / ``"bnb-8bit"``
    for a model quantized by bitsandbytes."""
    root = getattr(model, "get_base_model", lambda: model)()
    quant = getattr(getattr(root, "config", None), "quantization_config", None)
    if quant is not None:
        get = quant.get if isinstance(quant, dict) else (lambda k: getattr(quant, k, None))
        if get("load_in_4bit"):
            return "bnb-4bit"
        if get("load_in_8bit"):
            return "bnb-8bit"
    counts: dict[torch.dtype, int] = {}
    for p in model.parameters():
        if p.is_floating_point():
            counts[p.dtype] = counts.get(p.dtype, 0) + p.numel()
    if not counts:
        return "float32"
    return str(max(counts, key=counts.get)).removeprefix("torch.")


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``), or None where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return None


_FAST_CPU = {"bfloat16": ("avx512_bf16", "amx_bf16"), "float16": ("avx512_fp16", "amx_fp16")}


def fast_matmul(dtype: str, device: torch.device | str | None) -> bool | None:
    """True / False: whether ``device`` multiplies ``dtype`` matrices natively; None when
    unknown (then nothing is said)."""
    import torch

    dev = torch.device(device or "cpu")
    if dtype not in _FAST_CPU:
        return True
    if dev.type == "cuda":
        if dtype == "float16":
            return True
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except Exception:  # noqa: BLE001 - an old torch without the argument: ask plainly
            return None
    if dev.type != "cpu":
        return None
    flags = _cpu_flags()
    if flags is None:
        return None
    return any(f in flags for f in _FAST_CPU[dtype])


def slow_matmul_note(dtypes, device) -> str | None:
    """One sentence when a model runs in a half dtype that ``device`` has no fast matrix
    multiply for (said once, recorded in the report), else None."""
    import torch

    slow = [d for d in dict.fromkeys(dtypes) if fast_matmul(d, device) is False]
    if not slow:
        return None
    dev = torch.device(device or "cpu")
    needs = " or ".join(_FAST_CPU[slow[0]]).upper().replace("_", "-")
    where = "this CPU" if dev.type == "cpu" else f"this GPU ({dev})"
    return (
        f"note: {where} has no fast {' / '.join(slow)} matrix multiply"
        f"{f' (no {needs})' if dev.type == 'cpu' else ''}; the weights are kept in "
        f"{' / '.join(slow)} (not upcast) and the forward passes may run several times "
        "slower than in float32; --dtype float32 trades twice the weight memory for speed"
    )
