"""The tracker's settings (:class:`TrackSettings`), checked once at the public boundary,
before any model is touched or any training step runs.

Every check fails with a one-line :class:`~repspace._constraints.SettingError` naming the
argument as the API spells it (``repspace train --track-every`` maps onto ``every_n_steps``;
:func:`repspace.training.train` names it ``track_every``).  Metric
names are checked against the keys :meth:`~repspace.statistics.LayerwiseMoments.compute`
really returns (read off a tiny accumulator, so the list cannot drift from the code), as
prefixes the way ``compute(metrics=...)`` reads them: ``"linear_cka"`` selects
``linear_cka`` and ``linear_cka_debiased``, ``"effective_rank"`` the base's, the tuned
model's and their ratio.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from repspace._constraints import MAX_SEED, SEED, Check, Interval, Options, SettingError, Validated

__all__ = [
    "DEFAULT_METRICS",
    "RATIOS",
    "MAX_SEED",
    "PRECISIONS",
    "TrackSettings",
    "check_metrics",
    "closed_form_metrics",
    "computed_metrics",
    "kept",
]

# Linear CKA (and its debiased estimator), the effective rank of either side and their
# ratio, and the per-sample drift (mean cosine similarity and relative shift of each
# probe sample's pooled feature).
DEFAULT_METRICS = ("linear_cka", "effective_rank", "cosine_similarity_mean", "relative_shift_mean")

# Derived per layer from a pair of computed keys: tuned / base.
RATIOS = {
    f"{r}_ratio": (f"{r}_tuned", f"{r}_base")
    for r in ("effective_rank", "stable_rank", "numerical_rank", "participation_ratio")
}

PRECISIONS = ("float64", "auto")
_ACCUMULATED_POOLING = ("mean", "first", "cls", "last", "tokens")


def _accumulated_pooling(value) -> bool:
    from repspace.capture.pooling import Pooling

    return Pooling.of(value).mode in _ACCUMULATED_POOLING


def _layer_selection(layers) -> bool:
    def one(x) -> bool:
        return isinstance(x, (str, re.Pattern)) and bool(getattr(x, "pattern", x))

    return one(layers) or (
        isinstance(layers, Sequence)
        and not isinstance(layers, str)
        and bool(layers)
        and all(one(x) for x in layers)
    )


def _metric_names(metrics) -> bool:
    return (
        not isinstance(metrics, str)
        and isinstance(metrics, Sequence)
        and bool(metrics)
        and all(isinstance(m, str) and m for m in metrics)
    )


@dataclass(frozen=True)
class TrackSettings(Validated):
    """What a :class:`~repspace.track.Tracker` (or :class:`~repspace.track.DistortionCallback`)
    measures, as the API spells it; ``metrics`` becomes a tuple of unique names and
    ``layers`` a string, pattern or list.  Whether the layers match anything is checked on
    the model (:func:`repspace.capture.selection.resolve_layers`)."""

    every_n_steps: int = 50
    batch_size: int = 32
    max_length: int = 64
    seed: int = 0
    num_samples: int | None = None
    metrics: Sequence[str] = DEFAULT_METRICS
    layers: object = "blocks"
    pooling: object = "mean"
    precision: str = "float64"

    _command: ClassVar = "track"
    _constraints: ClassVar = {
        "every_n_steps": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "max_length": [Interval(int, 1, None)],
        "seed": [SEED],
        "num_samples": [Interval(int, 1, None), None],  # None: the whole probe
        "metrics": [
            Check(_metric_names, f"a non-empty list of metric names (e.g. {list(DEFAULT_METRICS)})")
        ],
        "layers": [
            Check(
                _layer_selection,
                "a preset (blocks, vision, text, embeddings), a layer "
                "name, a glob, 're:REGEX' or a non-empty list of them",
            )
        ],
        # the statistics need one row per sample or token
        "pooling": [
            Check(
                _accumulated_pooling,
                f"one of {', '.join(_ACCUMULATED_POOLING)} "
                "(the statistics need one row per sample or token)",
            )
        ],
        "precision": [Options(*PRECISIONS)],
    }

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "metrics", check_metrics(self.metrics))
        if not isinstance(self.layers, (str, re.Pattern)):
            object.__setattr__(self, "layers", list(self.layers))


@functools.cache
def closed_form_metrics() -> tuple[str, ...]:
    """Every key ``LayerwiseMoments.compute()`` returns for a pair of equal widths."""
    import torch

    from repspace.statistics import LayerwiseMoments

    gen = torch.Generator().manual_seed(0)  # its own generator: no global RNG state is drawn
    x = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    acc = LayerwiseMoments(precision="float64")
    acc.update({"x": x}, {"x": y})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple(acc.compute()["x", "x"])


def check_metrics(metrics) -> tuple[str, ...]:
    """The metric names (prefixes) as a tuple of unique names; a name no closed-form metric
    starts with (a sample-based one, a typo) is refused."""
    if not _metric_names(metrics):
        raise SettingError("metrics", metrics, TrackSettings._constraints["metrics"][0].describe())
    known = (*closed_form_metrics(), *RATIOS)
    unknown = [m for m in metrics if not any(k.startswith(m) for k in known)]
    if unknown:
        raise SettingError(
            "metrics",
            unknown,
            "metrics the tracker computes (closed-form metrics "
            f"of the streaming statistics only): {', '.join(known)}",
        )
    return tuple(dict.fromkeys(metrics))


def kept(key: str, metrics: Sequence[str]) -> bool:
    """Whether an output key is one of ``metrics`` (names or prefixes)."""
    return any(key.startswith(m) for m in metrics)


def computed_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """What ``compute(metrics=...)`` must produce: the asked keys, plus the two sides of every
    asked ratio."""
    extra = [side for ratio, sides in RATIOS.items() if kept(ratio, metrics) for side in sides]
    return tuple(dict.fromkeys([m for m in metrics if m not in RATIOS] + extra))
