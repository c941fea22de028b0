"""Run peft injection on resolved sites without touching what the caller already made
trainable.  Shared by every peft-backed family (LoRA, IA3; PT-PEFT through LoRA), so it
belongs to none of them; sites are resolved by
:func:`repspace.methods.architectures.site_modules`.
"""

from __future__ import annotations

import re
from typing import Iterable

from torch import nn

__all__ = ["exact_pattern", "keep_trainable", "linear_layout", "inject_peft"]


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


def linear_layout(
    method: str, targets: list[tuple[str, nn.Module]], linear_only: bool = False
) -> bool:
    """peft's ``fan_in_fan_out`` for ``targets``: True when every one is a transformers
    ``Conv1D``, which stores W as (d_in, d_out) (with mixed module types peft fixes it per
    module).  ``linear_only``: a target that is neither ``nn.Linear`` nor ``Conv1D`` is a
    ValueError naming it (IA3's scaling vectors are defined for linear maps only)."""
    from transformers.pytorch_utils import Conv1D

    if linear_only:
        for name, m in targets:
            if not isinstance(m, (nn.Linear, Conv1D)):
                raise ValueError(
                    f"{method}: target {name} is a {type(m).__name__}; {method} "
                    "supports nn.Linear and transformers Conv1D only"
                )
    return all(isinstance(m, Conv1D) for _, m in targets)


def inject_peft(method: str, root: nn.Module, peft_config) -> None:
    """``peft.inject_adapter_in_model(peft_config, root)`` in place, keeping what was trainable
    before (:class:`keep_trainable`); refuses a model that already carries peft's adapter
    ``default`` (a second injection would silently share or replace it)."""
    import peft

    if "default" in (getattr(root, "peft_config", None) or {}):
        raise ValueError(
            f"{method}: {type(root).__name__} already carries a peft adapter 'default'; "
            f"apply {method} to a model without LoRA/IA3"
        )
    with keep_trainable(root):
        peft.inject_adapter_in_model(peft_config, root)
