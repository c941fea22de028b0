"""Resolve method sites to concrete modules, and run peft injection without touching what
the caller already made trainable.  Shared by the LoRA, IA3, adapter and AdaLink families.

Sites are matched against *canonical* layer names (:func:`repspace.capture.names.canonical_modules`:
``base_layer`` path components dropped, adapter sub-modules skipped), so a site still
resolves on a model whose modules another method already wrapped (PT-PEFT stage 2 on a
model with a prefix injected); the returned names are the real ``named_modules()`` paths
of the unwrapped model, which is what peft and ``setattr`` need.
"""
from __future__ import annotations

import re
from typing import Iterable

from torch import nn

from repspace.capture.names import canonical_modules, unwrap_model
from repspace.methods.architectures import ArchSpec

__all__ = ["site_modules", "exact_pattern", "keep_trainable", "check_towers", "check_positive_int"]


def site_modules(model: nn.Module, arch: ArchSpec, sites: Iterable[str], towers: Iterable[str],
                 what: str) -> list[tuple[str, nn.Module]]:
    """``(real name, module)`` of every module of ``sites`` in ``towers``, in model order,
    each once.  ValueError (one line, naming ``what``) when a tower lacks a site or nothing
    matches."""
    root = unwrap_model(model)
    rx = re.compile("|".join(f"(?:{arch.pattern(s, tuple(towers))})" for s in sites))
    real: dict[int, str] = {id(m): n for n, m in root.named_modules()}  # deduplicated by torch
    out = [(real[id(m)], m) for c, m in canonical_modules(root).items() if rx.fullmatch(c)]
    if not out:
        raise ValueError(f"{what}: no module of {type(root).__name__} matches site(s) "
                         f"{', '.join(sites)} in tower(s) {', '.join(towers)}; is this really a "
                         f"{arch.name} model?")
    return out


def exact_pattern(names: Iterable[str]) -> str:
    """A regex fully matching exactly ``names`` (what peft's ``target_modules=str`` expects)."""
    return "|".join(re.escape(n) for n in names)


class keep_trainable:
    """Context manager: parameters trainable on entry are trainable again on exit.

    peft's injection (``inject_adapter_in_model``) freezes every parameter that is not its
    own; a multi-stage method (PT-PEFT) calls LoRA on a model whose stage-1 parameters
    must keep training, so we restore their ``requires_grad`` afterwards.
    """

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self._ids = {id(p) for p in self.model.parameters() if p.requires_grad}
        return self

    def __exit__(self, *exc):
        for p in self.model.parameters():
            if id(p) in self._ids:
                p.requires_grad_(True)
        return False


def check_towers(method: str, towers, allowed=("text", "vision")) -> tuple[str, ...]:
    """``towers`` as a non-empty tuple of known tower names (ValueError otherwise)."""
    towers = (towers,) if isinstance(towers, str) else tuple(towers)
    bad = [t for t in towers if t not in allowed]
    if not towers or bad:
        raise ValueError(f"{method}: towers must be a non-empty subset of {', '.join(allowed)}; "
                         f"got {towers!r}")
    return towers


def check_positive_int(method: str, field: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{method}: {field} must be a positive integer; got {value!r}")
    return value
