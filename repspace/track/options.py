"""The tracker's arguments, checked once at the public boundary, before any training step.

Every check fails with a one-line ``ValueError`` that starts with the argument's name (the
name the API uses; ``repspace train --track-every`` maps onto ``every_n_steps``).  Metric
names are checked against the keys :meth:`~repspace.statistics.LayerwiseMoments.compute`
really returns (read off a tiny accumulator, so the list cannot drift from the code), as
prefixes the way ``compute(metrics=...)`` reads them: ``"linear_cka"`` selects
``linear_cka`` and ``linear_cka_debiased``, ``"effective_rank"`` the base's, the tuned
model's and their ratio.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

__all__ = ["DEFAULT_METRICS", "RATIOS", "check_every_n_steps", "check_positive", "check_metrics",
           "check_pooling", "check_layers", "closed_form_metrics", "computed_metrics", "kept"]

# Linear CKA (and its debiased estimator), the effective rank of either side and their
# ratio, and the per-sample drift (mean cosine similarity and relative shift of each
# probe sample's pooled feature).
DEFAULT_METRICS = ("linear_cka", "effective_rank", "cosine_similarity_mean", "relative_shift_mean")

# Derived per layer from a pair of computed keys: tuned / base.
RATIOS = {f"{r}_ratio": (f"{r}_tuned", f"{r}_base")
          for r in ("effective_rank", "stable_rank", "numerical_rank", "participation_ratio")}

_ACCUMULATED_POOLING = ("mean", "first", "cls", "last", "tokens")


def check_positive(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int ≥ ``minimum`` (bools and floats refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}; got {value!r}")
    return value


def check_every_n_steps(value) -> int:
    return check_positive("every_n_steps", value)


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
    """The metric names (prefixes) as a tuple; unknown or sample-based names are refused."""
    if isinstance(metrics, str) or not isinstance(metrics, Sequence) or not metrics \
            or not all(isinstance(m, str) and m for m in metrics):
        raise ValueError(f"metrics must be a non-empty list of metric names (e.g. "
                         f"{list(DEFAULT_METRICS)}); got {metrics!r}")
    known = (*closed_form_metrics(), *RATIOS)
    unknown = [m for m in metrics if not any(k.startswith(m) for k in known)]
    if unknown:
        raise ValueError(f"metrics: {', '.join(map(repr, unknown))} not tracked (the tracker "
                         "computes closed-form metrics of the streaming statistics only); "
                         f"choose from {', '.join(known)}")
    return tuple(dict.fromkeys(metrics))


def kept(key: str, metrics: Sequence[str]) -> bool:
    """Whether an output key is one of ``metrics`` (names or prefixes)."""
    return any(key.startswith(m) for m in metrics)


def computed_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """What ``compute(metrics=...)`` must produce: the asked keys, plus the two sides of every
    asked ratio."""
    extra = [side for ratio, sides in RATIOS.items() if kept(ratio, metrics) for side in sides]
    return tuple(dict.fromkeys([m for m in metrics if m not in RATIOS] + extra))


def check_pooling(pooling) -> object:
    from repspace.capture.pooling import Pooling

    try:
        pool = Pooling.of(pooling)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"pooling: {exc}") from None
    if pool.mode not in _ACCUMULATED_POOLING:
        raise ValueError(f"pooling must be one of {', '.join(_ACCUMULATED_POOLING)} (the "
                         f"statistics need one row per sample or token); got {pool.mode!r}")
    return pooling


def check_layers(layers) -> object:
    """The layer selection's shape (names, globs, ``re:`` regexes or a preset); whether it
    matches anything is checked on the model (:func:`repspace.capture.selection.resolve_layers`)."""
    import re

    ok = isinstance(layers, (str, re.Pattern)) and bool(getattr(layers, "pattern", layers)) or (
        isinstance(layers, Sequence) and not isinstance(layers, str) and bool(layers)
        and all(isinstance(x, (str, re.Pattern)) and x for x in layers))
    if not ok:
        raise ValueError("layers must be a preset (blocks, vision, text, embeddings), a layer "
                         f"name, a glob, 're:REGEX' or a non-empty list of them; got {layers!r}")
    return layers if isinstance(layers, (str, re.Pattern)) else list(layers)
