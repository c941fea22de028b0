"""Named layer presets resolved from a model's structure, per architecture.

Presets
-------
``blocks``
    Every transformer block of every encoder/decoder/tower: the children of each
    outermost ``ModuleList`` whose elements all share one class (``encoder.layer.*``
    in BERT, ``transformer.h.*`` in GPT-2, ``layers.*`` in ViT, both BLIP towers...).
``vision``
    The blocks of the vision tower(s): block lists whose path mentions
    vision/visual/image/vit/patch/pixel, or, in a model with no such named tower, every
    block list when its ``main_input_name`` is ``pixel_values`` (ViT).
``text``
    The blocks that are not vision blocks (text encoder, text decoder, LM).
``embeddings``
    For each tower, the output of its ``embeddings`` module (the module that feeds the
    first block).  Towers without one (GPT-2 adds ``wte``+``wpe`` inline) use the input
    of their first block instead (``transformer.h.0:input``).

These are structural rules, not a per-model table, so new architectures work
when they follow the usual HF layout; ``repspace layers MODEL`` shows what a preset
resolves to.
"""

from __future__ import annotations

from torch import nn

from repspace.capture.model_view import model_view
from repspace.layer_table import INPUT_SUFFIX

__all__ = ["PRESETS", "block_lists", "is_vision_layer", "resolve_preset"]

PRESETS = ("blocks", "vision", "text", "embeddings")
_VISION_WORDS = ("vision", "visual", "image", "vit", "patch", "pixel")


def block_lists(model: nn.Module) -> list[tuple[str, list[str]]]:
    """``[(list_path, [block names])]`` for every outermost homogeneous block list.

    Paths are canonical (relative to the un-wrapped model), in registration order; the
    lists are the model view's towers (:mod:`repspace.capture.model_view`, resolved once).
    """
    return [(path, list(blocks)) for path, blocks in model_view(model).towers]


def is_vision_layer(model: nn.Module, name: str) -> bool:
    """Whether ``name`` belongs to a vision tower (its states are image-patch tokens)."""
    if _has_vision_words(name):
        return True
    # A multimodal model names its vision tower (vision_model, vision_tower, visual);
    # only a pure vision model (ViT: main input pixel_values, no named tower) makes
    # every layer a vision layer.
    view = model_view(model)
    if any(_has_vision_words(path) for path, _ in view.towers):
        return False
    return view.main_input_name == "pixel_values"


def _has_vision_words(name: str) -> bool:
    return any(w in part.lower() for part in name.split(".") for w in _VISION_WORDS)


def _embeddings_for(model: nn.Module, list_path: str, first_block: str) -> str:
    modules = model_view(model).modules
    parts = list_path.split(".")
    for depth in range(len(parts) - 1, -1, -1):  # walk up from the list's parent
        parent = ".".join(parts[:depth])
        for cand in ("embeddings", "embedding"):
            name = f"{parent}.{cand}" if parent else cand
            if name in modules and not isinstance(modules[name], nn.Embedding):
                return name
    return first_block + INPUT_SUFFIX


def resolve_preset(model: nn.Module, preset: str) -> list[str]:
    """The canonical layer names a preset stands for on this model (may be empty)."""
    lists = block_lists(model)
    if preset == "blocks":
        return [n for _, blocks in lists for n in blocks]
    if preset == "vision":
        return [n for p, blocks in lists if is_vision_layer(model, p) for n in blocks]
    if preset == "text":
        return [n for p, blocks in lists if not is_vision_layer(model, p) for n in blocks]
    if preset == "embeddings":
        out = []
        for p, blocks in lists:
            name = _embeddings_for(model, p, blocks[0])
            if name not in out:
                out.append(name)
        return out
    raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
