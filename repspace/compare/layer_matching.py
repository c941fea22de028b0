"""Layer matching of two models of different depth from one probe pass each.

    from repspace.compare.layer_matching import layer_matching
    m = layer_matching(base_model, expanded_model, batches_fn)   # blocks of each, mean pooled
    m.pairs()   # [(tuned layer, base layer, CKA), ...]

Each model's layers (``base_layers`` / ``tuned_layers``: names, globs or a preset, resolved on
that model alone, so they need not share names or count) are captured with
:func:`repspace.capture.capture` and pooled; the cross-layer linear CKA matrix
(:func:`repspace.metrics.cka_matrix`, exact, float64) is matched by
:func:`repspace.metrics.layer_matching.match_layers`.  Memory: the pooled rows of every
captured layer (n × d each), fine for probes of thousands of samples.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from repspace.metrics.layer_matching import LayerMatching, match_layers

__all__ = ["layer_matching"]


def layer_matching(
    base: nn.Module,
    tuned: nn.Module,
    batches_fn: Callable,
    *,
    base_layers="blocks",
    tuned_layers="blocks",
    pooling: str = "mean",
    debiased: bool = False,
    monotone: bool = True,
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = False,
) -> LayerMatching:
    """Match ``tuned``'s layers to ``base``'s by cross-layer CKA on ``batches_fn()``'s inputs."""
    from repspace.capture import capture
    from repspace.metrics import cka_matrix

    xs = capture(
        base,
        batches_fn(),
        base_layers,
        pooling=pooling,
        batch_size=batch_size,
        device=device,
        progress=progress,
    ).tensors["base"]
    ys = capture(
        tuned,
        batches_fn(),
        tuned_layers,
        pooling=pooling,
        batch_size=batch_size,
        device=device,
        progress=progress,
    ).tensors["base"]
    if next(iter(xs.values())).shape[0] != next(iter(ys.values())).shape[0]:
        raise ValueError(
            "the two models produced different numbers of rows; pass batches_fn "
            "returning the same inputs each call"
        )
    return match_layers(cka_matrix(xs, ys, debiased=debiased), monotone=monotone)
