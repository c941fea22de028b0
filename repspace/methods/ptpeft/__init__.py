"""PT-PEFT (Kim et al., Findings of EMNLP 2024, arXiv 2411.00029): prefix-tune first, then
add a PEFT module and keep training both.

* stage 1 -- prefix-tuning (:func:`repspace.methods.prefix.inject_prefix`): only the
  prefixes train;
* stage 2 -- LoRA (``pt_lora``, via the ``lora`` method) or the Houlsby adapter
  (``pt_adapter``, via the ``adapter`` method) is injected *on top*, and the prefixes stay
  trainable: stage 2 trains prefix + LoRA/adapter, never the backbone.

A run of ``total`` steps spends ``round(stage1_fraction * total)`` on stage 1 (clamped so
each stage gets at least one step; :meth:`stage_steps`).  ``apply_method(model, config)``
builds both stages at once, which is how a checkpoint is rebuilt before loading its weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from repspace.layer_table import unwrap_model
from repspace.methods.architectures import ArchSpec
from repspace._constraints import Interval, SettingError
from repspace.methods.base import (
    MAX_SIZE,
    SIZE,
    TOWERS,
    MethodConfig,
    MethodFacts,
    get_method,
    make_config,
    names,
    register_method,
)
from repspace.methods.prefix import inject_prefix, prefix_modules, prefix_parameters

__all__ = ["PTLoRAConfig", "PTAdapterConfig", "apply_ptpeft"]


class _TwoStages:
    """Shared stage bookkeeping of the two PT-PEFT configs."""

    num_stages = 2
    _constraints: ClassVar = {
        "num_virtual_tokens": [SIZE],
        "towers": [TOWERS],
        "stage1_fraction": [Interval(float, 0, 1, closed="neither")],
    }

    def stage_steps(self, total_steps: int) -> list[int]:
        """``[stage-1 steps, stage-2 steps]`` summing to ``total_steps`` (>= 2), each >= 1."""
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 2:
            raise SettingError(
                "total_steps",
                total_steps,
                "an integer ≥ 2 (one step per stage at least)",
                self.method,
            )
        first = min(max(round(self.stage1_fraction * total_steps), 1), total_steps - 1)
        return [first, total_steps - first]

    def __post_init__(self):
        super().__post_init__()
        self.towers = names(self.towers)
        self.stage1_fraction = float(self.stage1_fraction)
        self.stage2_config()  # the stage-2 method's own checks, now rather than at stage 2


@dataclass
class PTLoRAConfig(_TwoStages, MethodConfig):
    """PT-PEFT with LoRA: ``num_virtual_tokens`` prefix positions, then LoRA of rank ``r``
    (scale ``alpha / r``, LoRA's default sites) in ``towers``."""

    method = "pt_lora"
    budget_field = "r"
    num_virtual_tokens: int = 10
    r: int = 8
    alpha: float = 16
    towers: tuple[str, ...] = ("text",)
    stage1_fraction: float = 0.5
    _constraints: ClassVar = {"r": [SIZE], "alpha": [Interval(float, 0, MAX_SIZE, closed="right")]}

    def stage2_config(self) -> MethodConfig:
        return make_config("lora", r=self.r, alpha=self.alpha, towers=self.towers)


@dataclass
class PTAdapterConfig(_TwoStages, MethodConfig):
    """PT-PEFT with the Houlsby adapter: ``num_virtual_tokens`` prefix positions, then
    bottleneck adapters of ``width`` in ``towers``."""

    method = "pt_adapter"
    budget_field = "width"
    num_virtual_tokens: int = 10
    width: int = 16
    towers: tuple[str, ...] = ("text",)
    stage1_fraction: float = 0.5
    _constraints: ClassVar = {"width": [SIZE]}

    def stage2_config(self) -> MethodConfig:
        return make_config("adapter", width=self.width, towers=self.towers)


def apply_ptpeft(
    model: nn.Module, config: PTLoRAConfig | PTAdapterConfig, arch: ArchSpec, stage: int
) -> nn.Module:
    """Stage 1: inject the prefix.  Stage 2: inject LoRA/the adapter, prefix kept trainable."""
    if stage == 1:
        return inject_prefix(model, config.num_virtual_tokens, config.towers, arch)
    if not prefix_modules(unwrap_model(model)):
        raise ValueError(
            f"{config.method} stage 2 needs the stage-1 prefix; run stage 1 first "
            "(apply_method(model, config) builds both stages)"
        )
    second = config.stage2_config()
    model = get_method(second.method).apply(model, second, arch, 1)
    for p in prefix_parameters(unwrap_model(model)):  # a PEFT injection may have frozen them
        p.requires_grad_(True)
    return model


register_method(
    "pt_lora",
    PTLoRAConfig,
    apply_ptpeft,
    "PT-PEFT: prefix-tuning, then LoRA with the prefix still training",
    paper="Kim et al. 2024, arXiv:2411.00029 (Findings of EMNLP 2024)",
    facts=MethodFacts(default_lr=1e-3, color="#004488", marker="D", order=70),
)
register_method(
    "pt_adapter",
    PTAdapterConfig,
    apply_ptpeft,
    "PT-PEFT: prefix-tuning, then Houlsby adapters with the prefix still training",
    paper="Kim et al. 2024, arXiv:2411.00029 (Findings of EMNLP 2024)",
    facts=MethodFacts(default_lr=1e-3, color="#D55E00", marker="v", order=71),
)
