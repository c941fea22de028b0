"""Pair a backbone with its task-head variants: ``BertModel`` vs ``BertForSequenceClassification``.

The commonest pair in practice is a pre-trained encoder saved bare (``AutoModel``, block
names ``encoder.layer.0``) and its fine-tune saved with a task head (block names
``bert.encoder.layer.0``; likewise ``*ForCausalLM`` / ``*ForConditionalGeneration`` around
``transformer`` / ``model``).  Their layer names differ only by the head model's
``base_model_prefix``.  When the selection does not match as is, each head model is
replaced by its backbone module (``model.<base_model_prefix>``, which shares its
parameters and adapter layers) and the selection is resolved again: the states of the
backbone's blocks are the same whether or not the head runs after them.

Prompt-learning adapters prepend virtual tokens in the wrapper's forward, which the bare
backbone would skip, so those are never reduced.

(Named ``backbone`` before issue 30: it does not load or define a backbone, it strips task
heads so that a bare backbone and its head models share layer names.)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from torch import nn

from repspace.capture.model_view import model_view
from repspace.capture.selection import LayerSpec, resolve_paired_layers
from repspace.capture.tokens import num_virtual_tokens

__all__ = ["backbone_of", "shared_layers"]


def backbone_of(model: nn.Module) -> tuple[str, nn.Module] | None:
    """``(prefix, backbone)`` of a head model (``model.<base_model_prefix>``), else None."""
    view = model_view(model)
    root = view.root
    prefix = getattr(root, "base_model_prefix", "") or ""
    sub = getattr(root, prefix, None) if prefix else None
    if isinstance(sub, nn.Module) and sub is not root and num_virtual_tokens(model) == 0:
        return prefix, sub
    return None


def shared_layers(
    base: nn.Module, tuned: Sequence[nn.Module], spec: LayerSpec, *, warn: bool = True
) -> tuple[nn.Module, list[nn.Module], list[str]]:
    """``(base, tuned, names)`` to capture: the models as given when ``spec`` names the same
    layers in all of them, else their shared backbones (a ``UserWarning`` says so).

    Raises the original ``ValueError`` of :func:`resolve_paired_layers` when the backbones
    do not agree either.
    """
    try:
        names = [resolve_paired_layers(base, t, spec) for t in tuned]
        return base, list(tuned), names[0] if names else []
    except ValueError as exc:
        first = exc
    models = [base, *tuned]
    reduced = [backbone_of(m) for m in models]
    if not any(reduced):
        raise first
    cores = [m if r is None else r[1] for m, r in zip(models, reduced)]
    try:
        names = [resolve_paired_layers(cores[0], t, spec) for t in cores[1:]]
    except ValueError:
        raise first from None
    heads = sorted(
        {
            f"{type(model_view(m).root).__name__} (prefix '{r[0]}.')"
            for m, r in zip(models, reduced)
            if r
        }
    )
    if warn:
        warnings.warn(
            f"base and tuned models have different heads; compared layer by layer on the "
            f"shared backbone ({', '.join(heads)} stripped): layer names are the "
            "backbone's",
            UserWarning,
            stacklevel=3,
        )
    return cores[0], cores[1:], names[0] if names else []
