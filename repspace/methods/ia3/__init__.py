"""(IA)^3 (Liu et al. 2022, arXiv 2205.05638) through HF peft.

Learned vectors rescale activations element-wise::

    k' = l_k * (W_k x),   v' = l_v * (W_v x),   ffn: W_out (l_ff * act(W_in x))

with ``l`` initialised to ones, so the adapted model starts exactly equal to the base.
Targets: the ``key_value`` site (vector on the *output*, ``d_out`` entries each) and the
``ffn_out`` site, marked feed-forward (vector on its *input*, ``d_in`` entries).

Fused query/key/value projections (GPT-2 ``c_attn``, BLIP vision ``qkv``) cannot rescale
key and value alone: the vector covers all ``3 d`` outputs, query included -- the same
choice as peft's own GPT-2 default (``target_modules=["c_attn", "mlp.c_proj"]``).

Injected in place with ``peft.inject_adapter_in_model`` (model returned unwrapped);
trainable parameters are ``<target>.ia3_l.default``; parameters trainable before the call
stay trainable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from repspace.layer_table import unwrap_model
from repspace.methods.architectures import ArchSpec, site_modules
from repspace.methods.base import TOWERS, MethodConfig, MethodFacts, names, register_method
from repspace.methods.peft_injection import exact_pattern, inject_peft, linear_layout

__all__ = ["IA3Config", "apply_ia3"]


@dataclass
class IA3Config(MethodConfig):
    """(IA)^3 on the ``key_value`` and ``ffn_out`` sites of ``towers``."""

    method = "ia3"
    budget_field = None
    towers: tuple[str, ...] = ("text",)
    _constraints: ClassVar = {"towers": [TOWERS]}

    def __post_init__(self):
        super().__post_init__()
        self.towers = names(self.towers)


def apply_ia3(model: nn.Module, config: IA3Config, arch: ArchSpec, stage: int = 1) -> nn.Module:
    """Inject (IA)^3 vectors into ``model`` in place and return it."""
    import peft

    root = unwrap_model(model)
    attn = site_modules(root, arch, ("key_value",), config.towers, "ia3")
    ffn = site_modules(root, arch, ("ffn_out",), config.towers, "ia3")
    targets = attn + [t for t in ffn if t[0] not in {n for n, _ in attn}]
    peft_config = peft.IA3Config(
        target_modules=exact_pattern(n for n, _ in targets),
        feedforward_modules=exact_pattern(n for n, _ in ffn),
        fan_in_fan_out=linear_layout("ia3", targets, linear_only=True),
        init_ia3_weights=True,
    )
    inject_peft("ia3", root, peft_config)
    return model


register_method(
    "ia3",
    IA3Config,
    apply_ia3,
    "(IA)^3: learned vectors rescale keys, values and feed-forward activations",
    paper="Liu et al. 2022, Few-Shot Parameter-Efficient Fine-Tuning is Better and "
    "Cheaper than In-Context Learning, arXiv:2205.05638",
    facts=MethodFacts(default_lr=3e-3, color="#EE3377", marker="h", order=20),
)
