"""AdaLink (Wang et al. 2023, arXiv 2310.12100): non-intrusive input-centric adaptation.

Between the embeddings and the first transformer block, each modality's token sequence
``x`` (width ``d``) passes through its own residual low-rank map::

    x' = x + W_up W_down x,   W_down: rank x d (Kaiming-uniform init),  W_up: d x rank (zero init)

(no bias, no non-linearity, as in the paper), so the adapted model starts exactly equal to
the base and the backbone itself is never modified.  Trainable parameters: ``2 * d * rank``
per embedding module.  Sites come from ``arch.sites["embeddings"]`` keyed by modality
(``"text"``, ``"image"``): e.g. GPT-2 ``transformer.drop`` (its output enters block 0),
BLIP ``vision_model.embeddings`` / text embeddings, LLaVA ``embed_tokens`` and the
``multi_modal_projector`` (image tokens entering the LM).  A model with two text embedding
modules (BLIP VQA: question encoder and answer decoder) gets one map on each.

Implementation: the map is registered as child ``adalink`` of the embedding module (so it
is in ``state_dict`` and hidden from capture) and applied by a forward hook returning
``out + adalink(out)``.  Trainable parameters: ``<embeddings>.adalink.down.weight`` and
``<embeddings>.adalink.up.weight``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from repspace.layer_table import unwrap_model
from repspace.methods.architectures import ArchSpec, output_width, site_modules
from repspace.methods.base import SIZE, MethodConfig, MethodFacts, names, register_method, subset_of

__all__ = ["AdaLinkConfig", "LowRankResidual", "apply_adalink", "MODALITIES"]

MODALITIES = ("text", "image")


@dataclass
class AdaLinkConfig(MethodConfig):
    """AdaLink of ``rank`` on the input embeddings of ``modalities`` (those the model has)."""

    method = "adalink"
    budget_field = "rank"
    rank: int = 4
    modalities: tuple[str, ...] = MODALITIES
    _constraints: ClassVar = {"rank": [SIZE], "modalities": [subset_of(MODALITIES)]}

    def __post_init__(self):
        super().__post_init__()
        self.modalities = names(self.modalities)


class LowRankResidual(nn.Module):
    """``x -> W_up W_down x`` (``d -> rank -> d``, no bias); the hook adds the residual ``x``."""

    def __init__(self, d: int, rank: int, dtype: torch.dtype | None = None, device=None):
        super().__init__()
        self.down = nn.Linear(d, rank, bias=False, dtype=dtype, device=device)
        self.up = nn.Linear(rank, d, bias=False, dtype=dtype, device=device)
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


def _adalink_hook(module: nn.Module, args, output):
    """Forward hook: ``out + module.adalink(out)`` (first element if the output is a tuple)."""
    if isinstance(output, tuple):
        return (output[0] + module.adalink(output[0]),) + output[1:]
    return output + module.adalink(output)


def _output_width(root: nn.Module, name: str, module: nn.Module, modality: str) -> int:
    """Width of ``module``'s output: from its last sized sub-module (LayerNorm, Linear,
    Embedding, Conv), or -- for a parameter-free module such as GPT-2's dropout -- the
    text config's ``hidden_size``."""
    for m in reversed(list(module.modules())):
        d = output_width(m)
        if d is not None:
            return d
    config = getattr(root, "config", None)
    if modality == "text" and config is not None and hasattr(config, "get_text_config"):
        d = getattr(config.get_text_config(), "hidden_size", None)
        if isinstance(d, int):
            return d
    raise ValueError(
        f"adalink: cannot tell the output width of {name} ({type(module).__name__}); "
        "fix the embeddings site of this architecture"
    )


def apply_adalink(
    model: nn.Module, config: AdaLinkConfig, arch: ArchSpec, stage: int = 1
) -> nn.Module:
    """Attach one :class:`LowRankResidual` per embedding module of the requested modalities."""
    root = unwrap_model(model)
    have = arch.sites.get("embeddings", {})
    used = [m for m in config.modalities if m in have]
    if not used:
        raise ValueError(
            f"adalink: {arch.name} models have no embeddings for modalities "
            f"{', '.join(config.modalities)}; "
            f"available: {', '.join(sorted(have)) or 'none'}"
        )
    for modality in used:
        for name, module in site_modules(root, arch, ("embeddings",), (modality,), "adalink"):
            if hasattr(module, "adalink"):
                raise ValueError(f"adalink: {name} already has an adalink; apply AdaLink once")
            ref = next(module.parameters(), None)
            ref = next(root.parameters()) if ref is None else ref
            d = _output_width(root, name, module, modality)
            module.adalink = LowRankResidual(d, config.rank, dtype=ref.dtype, device=ref.device)
            module.register_forward_hook(_adalink_hook)
    return model


register_method(
    "adalink",
    AdaLinkConfig,
    apply_adalink,
    "AdaLink: residual low-rank maps on each modality's input embeddings",
    paper="Wang et al. 2023, Non-Intrusive Adaptation: Input-Centric "
    "Parameter-efficient Fine-Tuning for Versatile Multimodal Modeling, "
    "arXiv:2310.12100",
    facts=MethodFacts(
        default_lr=1e-3, color="#882255", marker="p", hidden_modules=("adalink",), order=60
    ),
)
