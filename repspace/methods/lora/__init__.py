"""LoRA (Hu et al. 2021, arXiv 2106.09685) through HF peft.

Each targeted linear map ``W`` (``d_in -> d_out``) gains a trainable low-rank update::

    h = W x + (alpha / r) * B A x,   A: r x d_in (Kaiming init),  B: d_out x r (zero init)

so the adapted model starts exactly equal to the base; trainable parameters per target
``r * (d_in + d_out)``.  Targets are the modules of ``sites`` (see
:mod:`repspace.methods.architectures`) in ``towers``; on a fused query/key/value projection
(GPT-2 ``c_attn`` Conv1D, BLIP vision ``qkv``) LoRA adapts all three.

Injection uses ``peft.inject_adapter_in_model``: the model is modified *in place* and
returned unwrapped (``generate()`` works as before).  Each target becomes a peft
``LoraLayer`` keeping the original under ``<target>.base_layer``; the trainable parameters
are named ``<target>.lora_A.default.weight`` and ``<target>.lora_B.default.weight``.
Parameters that were trainable before the call stay trainable (peft would freeze them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from repspace.layer_table import unwrap_model
from repspace.methods.architectures import ArchSpec, site_modules
from repspace._constraints import Interval
from repspace.methods.base import (
    MAX_SIZE,
    SIZE,
    TOWERS,
    MethodConfig,
    MethodFacts,
    names,
    register_method,
    subset_of,
)
from repspace.methods.peft_injection import exact_pattern, inject_peft, linear_layout

__all__ = ["LoRAConfig", "apply_lora", "LORA_SITES"]

LORA_SITES = ("query_value", "key_value", "ffn_in", "ffn_out", "attn_out")


@dataclass
class LoRAConfig(MethodConfig):
    """LoRA: rank ``r``, scale ``alpha / r``, ``dropout`` on the LoRA input path, adapted
    ``sites`` (subset of :data:`LORA_SITES`) in ``towers`` (``"text"``, ``"vision"``)."""

    method = "lora"
    budget_field = "r"
    r: int = 8
    alpha: float = 16
    dropout: float = 0.0
    towers: tuple[str, ...] = ("text",)
    sites: tuple[str, ...] = ("query_value",)
    _constraints: ClassVar = {
        "r": [SIZE],
        # the scale alpha / r multiplies every update: above MAX_SIZE it only overflows
        "alpha": [Interval(float, 0, MAX_SIZE, closed="right")],
        "dropout": [Interval(float, 0, 1, closed="left")],
        "towers": [TOWERS],
        "sites": [subset_of(LORA_SITES)],
    }

    def __post_init__(self):
        super().__post_init__()
        self.towers, self.sites = names(self.towers), names(self.sites)


def apply_lora(model: nn.Module, config: LoRAConfig, arch: ArchSpec, stage: int = 1) -> nn.Module:
    """Inject LoRA into ``model`` in place and return it; only the new ``lora_A``/``lora_B``
    parameters (plus whatever was trainable before) are trainable."""
    import peft

    root = unwrap_model(model)
    targets = site_modules(root, arch, config.sites, config.towers, "lora")
    peft_config = peft.LoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=float(config.dropout),
        bias="none",
        target_modules=exact_pattern(n for n, _ in targets),
        fan_in_fan_out=linear_layout("lora", targets),
    )
    inject_peft("lora", root, peft_config)
    return model


register_method(
    "lora",
    LoRAConfig,
    apply_lora,
    "LoRA: trainable low-rank update B A on attention projections",
    paper="Hu et al. 2021, LoRA: Low-Rank Adaptation of Large Language Models, arXiv:2106.09685",
    facts=MethodFacts(default_lr=1e-3, color="#0077BB", marker="o", order=10),
)
