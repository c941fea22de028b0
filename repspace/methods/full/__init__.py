"""Full fine-tuning: every parameter trains (the reference every PEFT is measured against)."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from repspace.methods.base import MethodConfig, register_method

__all__ = ["FullConfig"]


@dataclass
class FullConfig(MethodConfig):
    """Full fine-tuning.  ``freeze_vision``: keep the image encoder frozen (common for LMMs)."""

    method = "full"
    freeze_vision: bool = False


def _apply(model: nn.Module, config: FullConfig, arch, stage: int) -> nn.Module:
    for name, p in model.named_parameters():
        frozen = config.freeze_vision and ("vision_model." in name or "vision_tower." in name)
        p.requires_grad_(not frozen)
    return model


register_method("full", FullConfig, _apply, "full fine-tuning: all weights train")
