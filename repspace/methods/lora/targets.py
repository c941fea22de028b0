"""Run peft injection on resolved sites without touching what the caller already made
trainable.  Shared by the peft-backed families (LoRA, IA3); sites are resolved by
:func:`repspace.methods.architectures.site_modules`.
"""
from __future__ import annotations

import re
from typing import Iterable

from torch import nn

__all__ = ["exact_pattern", "keep_trainable"]


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
