"""Generalized shape metrics (Williams et al., NeurIPS 2021): the array-level API.

See :mod:`repspace.closed_forms.shape` for the formula and the conventions (each side scaled
to unit Frobenius norm before partial whitening; angular and Euclidean forms).
"""

from __future__ import annotations

from repspace.closed_forms.shape import (
    ShapeResult,
    shape_metric_from_moments,
    shape_metric_from_rows,
)
from repspace.metrics.cca import centred_pair

__all__ = ["ShapeResult", "shape_metric"]


def shape_metric(
    x, y, alpha: float = 1.0, *, ridge: float = 0.0, rank: int | None = None
) -> ShapeResult:
    """Generalized shape distance between paired representations x (n, p) and y (n, q).

    ``alpha`` ∈ [0, 1] interpolates between CCA (0: full whitening, invariant to any
    invertible linear map) and Procrustes (1, the default: invariant to orthogonal maps and
    isotropic scaling).  Returns a :class:`~repspace.closed_forms.shape.ShapeResult` with the
    angular distance θ = arccos(cos θ) ∈ [0, π/2] and the Euclidean one √(2 − 2cos θ); at
    α = 1 the latter squared is :func:`~repspace.metrics.procrustes_distance`.  ``ridge``
    and ``rank`` as in :func:`~repspace.metrics.cca.cca` (defaults: none, numerical rank).
    θ near 0 resolves to about √ε ≈ 1.5e-8 (an arccos of a cosine near 1).
    """
    cx, cy, cxy = centred_pair(x, y, "shape metric")
    if cxy is None:
        return shape_metric_from_rows(cx, cy, alpha=alpha, ridge=ridge, rank=rank)
    return shape_metric_from_moments(cx, cy, cxy, alpha=alpha, ridge=ridge, rank=rank)
