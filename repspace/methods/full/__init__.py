"""Full fine-tuning: every parameter trains (the reference every PEFT is measured against)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from repspace.methods.base import SWITCH, MethodConfig, MethodFacts, register_method

__all__ = ["FullConfig"]

# image-encoder module paths across the supported LMMs (BLIP/BLIP-2/Idefics3, LLaVA/PaliGemma, Qwen2-VL)
_VISION = ("vision_model.", "vision_tower.", "model.visual.")


@dataclass
class FullConfig(MethodConfig):
    """Full fine-tuning.  ``freeze_vision``: keep the image encoder frozen (common for LMMs)."""

    method = "full"
    freeze_vision: bool = False
    _constraints: ClassVar = {"freeze_vision": [SWITCH]}


def _apply(model: nn.Module, config: FullConfig, arch, stage: int) -> nn.Module:
    for name, p in model.named_parameters():
        frozen = config.freeze_vision and any(t in name for t in _VISION)
        p.requires_grad_(not frozen)
    return model


register_method(
    "full",
    FullConfig,
    _apply,
    "full fine-tuning: all weights train",
    facts=MethodFacts(
        default_lr=1e-4, color="#000000", marker="X", trains_all_weights=True, order=0
    ),
)
