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

__all__ = ["capture_each", "layer_matching", "matching_record"]


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
    from repspace.metrics import cka_matrix

    xs, ys = capture_each(
        base,
        tuned,
        batches_fn,
        base_layers,
        tuned_layers,
        pooling=pooling,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    return match_layers(cka_matrix(xs, ys, debiased=debiased), monotone=monotone)


def capture_each(
    base: nn.Module,
    tuned: nn.Module,
    batches_fn: Callable,
    base_layers,
    tuned_layers,
    *,
    pooling: str,
    batch_size: int,
    device: str | None,
    progress: bool,
    name: str = "tuned",
) -> tuple[dict, dict]:
    """The pooled rows ``({base layer: (n, p)}, {tuned layer: (n, q)})`` of each model's own
    layers, each model captured by itself on a fresh ``batches_fn()``; one row per sample on
    both sides, or a one-line error naming the checkpoint."""
    from repspace.capture import capture

    xs, ys = (
        capture(
            model,
            batches_fn(),
            layers,
            pooling=pooling,
            batch_size=batch_size,
            device=device,
            progress=progress,
        ).tensors["base"]
        for model, layers in ((base, base_layers), (tuned, tuned_layers))
    )
    n_x, n_y = next(iter(xs.values())).shape[0], next(iter(ys.values())).shape[0]
    if n_x != n_y:
        raise ValueError(
            f"{name} checkpoint: {n_y} pooled rows against the base's {n_x}; layer matching "
            "needs one row per probe sample (--pooling mean, first, cls or last) and "
            "batches_fn returning the same inputs each call"
        )
    return xs, ys


def matching_record(m: LayerMatching) -> dict:
    """``m`` as report.json records it: the matching, both layer lists, the CKA matrix and
    whether the depths and the pairing are the identity."""
    import numpy as np

    d = m.as_dict()
    d.update(
        base_layers=list(m.base_names),
        tuned_layers=list(m.tuned_names),
        matrix=np.asarray(m.matrix, dtype=np.float64).tolist(),
        same_depth=len(m.base_names) == len(m.tuned_names),
        identity=list(m.mapping) == list(range(len(m.tuned_names))),
    )
    return d
