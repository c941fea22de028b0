"""Prefix-tuning (Li & Liang 2021, arXiv 2101.00190), own implementation.

Every targeted self-attention layer (site ``self_attention`` in ``towers``) attends over
``P = num_virtual_tokens`` learned key/value vectors in front of its real keys::

    Attn(Q, [P_k; K], [P_v; V]) = softmax(Q [P_k; K]^T / sqrt(d_head) + [0, M]) [P_v; V]

where ``M`` is the model's own mask (padding, causality): every query sees every prefix
position, and real tokens keep exactly their masking.  Prefixes are position-free (not
rotated by RoPE) and never enter the KV cache, so ``generate()`` works as before.

Trainable parameters: ``layers * 2 * P * kv_heads * head_dim`` (``= layers * 2 * P * hidden``
without grouped-query attention).  With ``reparameterize=True`` the prefixes of a tower are
the output of one MLP (``P x d`` embedding -> ``prefix_hidden`` tanh -> ``layers * 2 * d``, as
in the paper) registered on the model root as ``adapter_prefix_encoder_<tower>``; its
parameters are what trains and is saved.

We do not use HF peft (it cannot prefix-tune BLIP, and PT-PEFT needs the prefix to stay
trainable under a later LoRA).  Each targeted module gains an ``adapter_prefix`` child
(:class:`~repspace.methods.prefix.modules.PrefixKV`; hidden from capture by its name); see
:mod:`repspace.methods.prefix.attention` for how its keys reach the attention.  Supported:
BLIP text and vision, and every module on transformers' attention interface (GPT-2, BERT,
Llama / LLaVA's language model, CLIP, ...), with eager or sdpa attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from repspace.layer_table import unwrap_model
from repspace.methods.architectures import ArchSpec, site_modules
from repspace.methods.base import (
    SIZE,
    SWITCH,
    TOWERS,
    MethodConfig,
    MethodFacts,
    names,
    register_method,
)

__all__ = ["PrefixConfig", "apply_prefix", "inject_prefix", "prefix_modules", "prefix_parameters"]


@dataclass
class PrefixConfig(MethodConfig):
    """Prefix-tuning with ``num_virtual_tokens`` prefix positions per layer of ``towers``;
    ``reparameterize``: produce them by an MLP of width ``prefix_hidden`` (the paper's trick)."""

    method = "prefix"
    budget_field = "num_virtual_tokens"
    num_virtual_tokens: int = 10
    towers: tuple[str, ...] = ("text",)
    reparameterize: bool = False
    prefix_hidden: int = 64
    _constraints: ClassVar = {
        "num_virtual_tokens": [SIZE],
        "towers": [TOWERS],
        "reparameterize": [SWITCH],
        "prefix_hidden": [SIZE],
    }

    def __post_init__(self):
        super().__post_init__()
        self.towers = names(self.towers)


def inject_prefix(
    model: nn.Module,
    num_virtual_tokens: int,
    towers: tuple[str, ...],
    arch: ArchSpec,
    reparameterize: bool = False,
    prefix_hidden: int = 64,
) -> nn.Module:
    """Give every ``self_attention`` module of ``towers`` a trainable prefix, in place.

    Only the new parameters are made trainable; nothing else's ``requires_grad`` changes.
    Raises ValueError (one line) for an attention class or implementation we cannot prefix.
    """
    from repspace.methods.prefix.attention import attach, kv_layout
    from repspace.methods.prefix.modules import PrefixEncoder, PrefixKV

    root = unwrap_model(model)
    if prefix_modules(root):
        raise ValueError(
            f"prefix: {type(root).__name__} already has prefixes; apply prefix-tuning once"
        )
    plan = []
    for tower in towers:
        targets = site_modules(root, arch, ("self_attention",), (tower,), "prefix")
        layouts = [kv_layout(m) for _, m in targets]  # validates every module before changing any
        plan.append((tower, targets, layouts))
    for tower, targets, layouts in plan:
        encoder = None
        weight = next(targets[0][1].parameters())
        if reparameterize:
            dims = {h * d for h, d in layouts}
            if len(dims) != 1:
                raise ValueError(
                    f"prefix: reparameterize needs one key width per tower; {tower} has "
                    f"{sorted(dims)}"
                )
            encoder = PrefixEncoder(
                num_virtual_tokens,
                dims.pop(),
                prefix_hidden,
                len(targets),
                dtype=weight.dtype,
                device=weight.device,
            )
            root.add_module(f"adapter_prefix_encoder_{tower}", encoder)
        for i, ((_, module), (heads, head_dim)) in enumerate(zip(targets, layouts)):
            attach(
                module,
                PrefixKV(
                    num_virtual_tokens,
                    heads,
                    head_dim,
                    encoder=encoder,
                    index=i,
                    dtype=weight.dtype,
                    device=weight.device,
                ),
            )
    return model


def prefix_modules(model: nn.Module) -> list[nn.Module]:
    """Every :class:`PrefixKV` and :class:`PrefixEncoder` in ``model``."""
    from repspace.methods.prefix.modules import PrefixEncoder, PrefixKV

    return [m for m in model.modules() if isinstance(m, (PrefixKV, PrefixEncoder))]


def prefix_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable prefix parameters (direct key/value tensors, or the MLP + embedding)."""
    return [p for m in prefix_modules(model) for p in m.parameters(recurse=True)]


def apply_prefix(
    model: nn.Module, config: PrefixConfig, arch: ArchSpec, stage: int = 1
) -> nn.Module:
    return inject_prefix(
        model,
        config.num_virtual_tokens,
        config.towers,
        arch,
        config.reparameterize,
        config.prefix_hidden,
    )


register_method(
    "prefix",
    PrefixConfig,
    apply_prefix,
    "prefix-tuning: learned key/value vectors prepended in every self-attention layer",
    paper="Li & Liang 2021, Prefix-Tuning: Optimizing Continuous Prompts for Generation, "
    "arXiv:2101.00190",
    facts=MethodFacts(default_lr=5e-3, color="#117733", marker="P", order=40),
)
