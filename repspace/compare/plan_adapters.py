"""A PEFT adapter's parameter count from its ``adapter_config.json`` alone (for --plan).

LoRA adds A (r × in) and B (out × r) beside every module its ``target_modules`` name: r·(in
+ out) parameters each (a convolution's A is r × in × k × k; DoRA adds a magnitude vector
of out), with ``rank_pattern`` overriding r per module, ``exclude_modules`` and
``layers_to_transform`` narrowing the targets.  The matching follows peft's rules (a name
equal to or ending in ``.target``, a string target is a full-match regex, ``all-linear``
every linear layer but the output head) on the base built on the meta device, without
importing peft (seconds of imports for a count).  The counting itself (:func:`lora_count`)
reads only names and widths, so the config-only plan (:mod:`repspace.compare.plan_fast`)
shares it.  Other adapter types are counted from the header of ``adapter_model.safetensors``
(shapes only, no tensor is read).
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path

__all__ = ["adapter_parameters", "linear_sites", "lora_count", "lora_description"]

_MAX_HEADER = 100 << 20


def _matches(name: str, target) -> bool:
    if isinstance(target, str):
        return re.fullmatch(target, name) is not None
    return any(name == t or name.endswith("." + t) for t in target or ())


def _layer_index(name: str, pattern) -> int | None:
    patterns = [pattern] if isinstance(pattern, str) else list(pattern or []) or [r"[^.]*"]
    for p in patterns:
        hit = re.match(rf".*\.{p}\.(\d+)\.", name)
        if hit:
            return int(hit.group(1))
    return None


def _rank(name: str, cfg: dict) -> int:
    for key, r in (cfg.get("rank_pattern") or {}).items():
        if re.match(rf"(.*\.)?({key})$", name):
            return int(r)
    return int(cfg.get("r") or 8)


def linear_sites(model) -> list[tuple[str, str, int, int, bool]]:
    """``(name, kind, fan_in, fan_out, is_output_head)`` of every module of ``model`` (built
    on the meta device) a LoRA adapter can sit on: ``kind`` is ``linear`` (GPT-2's Conv1D
    too), ``embedding`` or ``conv``.  :mod:`repspace.compare.plan_fast` writes the same list
    from a config.json alone; :func:`lora_count` counts from either."""
    from torch import nn

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    sites = []
    for name, module in model.named_modules():
        conv1d = type(module).__name__ == "Conv1D"  # GPT-2's linear maps, weight (in, out)
        if isinstance(module, nn.Linear):
            sites.append((name, "linear", module.in_features, module.out_features, module is head))
        elif conv1d:
            fan_in, fan_out = module.weight.shape
            sites.append((name, "linear", fan_in, fan_out, module is head))
        elif isinstance(module, nn.Embedding):
            sites.append((name, "embedding", module.num_embeddings, module.embedding_dim, False))
        elif isinstance(module, (nn.Conv1d, nn.Conv2d)):
            # A is a k×k conv to r channels, B a 1×1 conv back
            fan_in = module.in_channels // module.groups * math.prod(module.kernel_size)
            sites.append((name, "conv", fan_in, module.out_channels, False))
    return sites


def lora_count(sites, cfg: dict) -> tuple[int, int]:
    """``(parameters, modules adapted)`` of a LoRA adapter ``cfg`` on the modules ``sites``
    (:func:`linear_sites`)."""
    target = cfg.get("target_modules")
    exclude = cfg.get("exclude_modules")
    layers = cfg.get("layers_to_transform")
    layers = {layers} if isinstance(layers, int) else set(layers) if layers else None
    total = count = 0
    for name, kind, fan_in, fan_out, is_head in sites:
        if target == "all-linear":
            hit = kind == "linear" and not is_head
        else:
            hit = _matches(name, target)
        if not hit or (exclude and _matches(name, exclude)):
            continue
        if layers is not None and _layer_index(name, cfg.get("layers_pattern")) not in layers:
            continue
        r = _rank(name, cfg)
        total += r * (fan_in + fan_out) + (fan_out if cfg.get("use_dora") else 0)
        count += 1
    return total, count


def lora_description(cfg: dict, count: int) -> str:
    dora = " DoRA" if cfg.get("use_dora") else ""
    return f"LoRA{dora} r={cfg.get('r')} on {count} modules"


def _header_parameters(path: Path) -> int | None:
    """Parameters stored in a safetensors file, from its header (no tensor read)."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > _MAX_HEADER:
                return None
            header = json.loads(f.read(length))
    except (OSError, struct.error, ValueError, UnicodeDecodeError):
        return None
    return sum(
        math.prod(v.get("shape", []))
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict)
    )


def adapter_parameters(model, cfg: dict, folder: Path) -> tuple[int, str, str | None]:
    """``(parameters, description, note)`` of the adapter ``cfg`` (its folder ``folder``) on
    the base ``model`` (built on the meta device)."""
    kind = str(cfg.get("peft_type", "?")).upper()
    if kind == "LORA" and cfg.get("target_modules"):
        total, count = lora_count(linear_sites(model), cfg)
        if count == 0:
            raise ValueError(
                f"{folder}: the adapter's target_modules "
                f"{cfg.get('target_modules')!r} match no module of its base "
                f"{type(model).__name__}; pass --base-override with the model it "
                "was trained on"
            )
        return total, lora_description(cfg, count), None
    stored = _header_parameters(folder / "adapter_model.safetensors")
    if stored is not None:
        return stored, kind, None
    return 0, kind, f"{kind} adapter: its parameters are not counted (no safetensors header)"
