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

from torch import nn

from repspace.introspection import unwrap_model
from repspace.methods.architectures import ArchSpec
from repspace.methods.base import (
    MethodConfig, MethodFacts, check_positive_int, check_towers, get_method, make_config, register_method,
)
from repspace.methods.prefix import inject_prefix, prefix_modules, prefix_parameters

__all__ = ["PTLoRAConfig", "PTAdapterConfig", "apply_ptpeft"]


def _check_fraction(method: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{method}: stage1_fraction must be a number strictly between 0 and 1; "
                         f"got {value!r}")
    return float(value)


class _TwoStages:
    """Shared stage bookkeeping of the two PT-PEFT configs."""

    num_stages = 2

    def stage_steps(self, total_steps: int) -> list[int]:
        """``[stage-1 steps, stage-2 steps]`` summing to ``total_steps`` (>= 2), each >= 1."""
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 2:
            raise ValueError(f"{self.method}: total_steps must be an integer >= 2 (one step per stage at "
                             f"least); got {total_steps!r}")
        first = min(max(round(self.stage1_fraction * total_steps), 1), total_steps - 1)
        return [first, total_steps - first]

    def __post_init__(self):
        check_positive_int(self.method, "num_virtual_tokens", self.num_virtual_tokens)
        self.towers = check_towers(self.method, self.towers)
        self.stage1_fraction = _check_fraction(self.method, self.stage1_fraction)
        self.stage2_config()  # validates the stage-2 options now, not at stage 2


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

    def stage2_config(self) -> MethodConfig:
        return make_config("adapter", width=self.width, towers=self.towers)


def apply_ptpeft(model: nn.Module, config: PTLoRAConfig | PTAdapterConfig, arch: ArchSpec,
                 stage: int) -> nn.Module:
    """Stage 1: inject the prefix.  Stage 2: inject LoRA/the adapter, prefix kept trainable."""
    if stage == 1:
        return inject_prefix(model, config.num_virtual_tokens, config.towers, arch)
    if not prefix_modules(unwrap_model(model)):
        raise ValueError(f"{config.method} stage 2 needs the stage-1 prefix; run stage 1 first "
                         "(apply_method(model, config) builds both stages)")
    second = config.stage2_config()
    model = get_method(second.method).apply(model, second, arch, 1)
    for p in prefix_parameters(unwrap_model(model)):  # a PEFT injection may have frozen them
        p.requires_grad_(True)
    return model


register_method("pt_lora", PTLoRAConfig, apply_ptpeft,
                "PT-PEFT: prefix-tuning, then LoRA with the prefix still training",
                paper="Kim et al. 2024, arXiv:2411.00029 (Findings of EMNLP 2024)",
                facts=MethodFacts(default_lr=1e-3, color="#004488", marker="D", order=70))
register_method("pt_adapter", PTAdapterConfig, apply_ptpeft,
                "PT-PEFT: prefix-tuning, then Houlsby adapters with the prefix still training",
                paper="Kim et al. 2024, arXiv:2411.00029 (Findings of EMNLP 2024)",
                facts=MethodFacts(default_lr=1e-3, color="#D55E00", marker="v", order=71))
