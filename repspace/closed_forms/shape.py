"""Generalized shape metrics (Williams et al., NeurIPS 2021) from centred moments or rows.

Each side is centred and scaled to unit Frobenius norm, X̃ = Xc/‖Xc‖_F, then *partially
whitened*::

    φ_α(X̃) = X̃ (α I + (1 − α) (X̃ᵀX̃)^{-½}),   α ∈ [0, 1]

rescaled to keep its total variance (‖φ_α(X̃)‖_F = 1, netrep's ``preserve_variance``), and
aligned to the other side by the best orthogonal map.  With X̃ = U diag(s̃) Vᵀ,
φ_α(X̃) = U diag(t) Vᵀ with tᵢ ∝ α s̃ᵢ + (1 − α), so with Q = Uₓᵀ U_y
(:mod:`repspace.closed_forms.cca`, exact on both routes)::

    cos θ = max_T ⟨φ(X̃), φ(Ỹ)T⟩ = ‖diag(tₓ) Q diag(t_y)‖_*        (T orthogonal)
    angular   θ = arccos(cos θ) ∈ [0, π/2]
    Euclidean d = min_T ‖φ(X̃) − φ(Ỹ)T‖_F = √(2 − 2 cos θ) ∈ [0, √2]

α = 1 is Procrustes: d² is the Procrustes distance of
:func:`repspace.metrics.procrustes_distance` (Ding et al. 2021), θ the angular Procrustes
distance.  α = 0 whitens completely: cos θ = Σρᵢ / √(rₓ r_y), the mean canonical correlation
when the ranks agree.  Both forms are metrics on shapes (Williams et al., Prop. 1).

Invariances: translation, orthogonal maps and isotropic scaling of either side, for every
α; at α = 0 also any invertible linear map.  For 0 < α < 1 the value depends on each side's
spectrum shape only through the unit-norm s̃, which is why X̃ is normalised first (netrep
whitens the raw XcᵀXc, so its 0 < α < 1 values change with the units of X and grow with n;
on inputs of unit Frobenius norm the two agree; for p ≠ q netrep zero-pads the narrower side
and its variance-preserving rescale also counts the padded directions, which moves its
Euclidean form for α < 1 but not the angular one; repspace rescales over the kept directions).

Rank and ridge as in :mod:`repspace.closed_forms.cca`: each side keeps its numerical rank (or
``rank`` top directions) and ``ridge = c`` replaces the whitening factor 1 by
s̃ᵢ/√(s̃ᵢ² + c/p) (netrep instead clips eigenvalues at an absolute 1e-7); the result records
what was used.

Reference: Williams, Kunz, Kornblith, Linderman. Generalized Shape Metrics on Neural
Representations. NeurIPS 2021 (and its code, netrep's ``LinearMetric``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from repspace._validation import warn_undefined
from repspace.closed_forms.cca import (
    Basis,
    bases_of_moments,
    check_cca_args,
    kept_pair,
    pair_of_rows,
    ridge_weights,
    whitened_cross_of_moments,
)
from repspace.closed_forms.centred import CentredCross, CentredFeature, CentredRows

__all__ = ["ShapeResult", "shape_metric_from_moments", "shape_metric_from_rows", "shape_from_parts"]


@dataclass(frozen=True)
class ShapeResult:
    """A generalized shape distance and what was used to get it.

    ``angular`` θ ∈ [0, π/2] (radians) and ``euclidean`` √(2 − 2cos θ) ∈ [0, √2] are both
    distances (0 = same shape); ``cosine`` = cos θ; ``alpha`` the whitening (0 = CCA,
    1 = Procrustes); ``rank_x`` / ``rank_y`` the directions kept, ``ridge`` c (0 = none),
    ``n`` the samples.  NaN when a side is constant.
    """

    angular: float
    euclidean: float
    cosine: float
    alpha: float
    rank_x: int
    rank_y: int
    ridge: float
    n: int

    def __float__(self) -> float:
        return self.angular


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (0 = CCA, 1 = Procrustes); got {alpha!r}")
    return float(alpha)


def _spectrum_weights(b: Basis, alpha: float, ridge: float) -> np.ndarray:
    """t ∝ α s̃ + (1 − α) w (w = 1 or the ridge weights), scaled to unit norm."""
    s_unit = b.s / math.sqrt(b.total)
    t = alpha * s_unit + (1.0 - alpha) * ridge_weights(b, ridge)
    return t / np.linalg.norm(t)


def shape_from_parts(
    bx: Basis, by: Basis, q: np.ndarray, n: int, alpha: float, ridge: float
) -> ShapeResult:
    """The shape distances from the kept bases and their whitened cross block Q."""
    rx, ry = bx.s.size, by.s.size
    if rx == 0 or ry == 0:
        side = "x (base)" if rx == 0 else "y (tuned)"
        nan = warn_undefined(
            f"the shape metric is undefined: {side} is constant (no direction above the resolution)"
        )
        return ShapeResult(nan, nan, nan, alpha, rx, ry, ridge, n)
    tx, ty = _spectrum_weights(bx, alpha, ridge), _spectrum_weights(by, alpha, ridge)
    cos = float(np.linalg.svd(tx[:, None] * q * ty[None, :], compute_uv=False).sum())
    cos = min(max(cos, 0.0), 1.0)  # a cosine: round-off can pass 1 by ~1e-15
    return ShapeResult(
        math.acos(cos), math.sqrt(max(2.0 - 2.0 * cos, 0.0)), cos, alpha, rx, ry, ridge, n
    )


def shape_metric_from_moments(
    cx: CentredFeature,
    cy: CentredFeature,
    cxy: CentredCross,
    *,
    alpha: float = 1.0,
    ridge: float = 0.0,
    rank: int | None = None,
    bases: tuple[Basis, Basis] | None = None,
) -> ShapeResult:
    """Generalized shape distance of X and Y from centred moments (exact at any n).

    ``alpha``: 1 (default) Procrustes, 0 CCA, between them partial whitening; ``ridge``
    (default 0: none) and ``rank`` (default None: the numerical rank) as in
    :func:`repspace.closed_forms.cca.cca_from_moments`, and ``bases`` (each side's
    eigendecomposition, :func:`~repspace.closed_forms.cca.bases_of_moments`) to share them.
    """
    alpha = _check_alpha(alpha)
    ridge = check_cca_args(cx.n, ridge, rank, "shape metric")
    bx, by = bases if bases is not None else bases_of_moments(cx, cy)
    bx, by, q = kept_pair(bx, by, lambda a, b: whitened_cross_of_moments(a, b, cxy), rank)
    return shape_from_parts(bx, by, q, cx.n, alpha, ridge)


def shape_metric_from_rows(
    cx: CentredRows,
    cy: CentredRows,
    *,
    alpha: float = 1.0,
    ridge: float = 0.0,
    rank: int | None = None,
) -> ShapeResult:
    """:func:`shape_metric_from_moments` on held rows (the same number)."""
    alpha = _check_alpha(alpha)
    ridge = check_cca_args(cx.n, ridge, rank, "shape metric")
    bx, by, q = kept_pair(*pair_of_rows(cx, cy), rank)
    return shape_from_parts(bx, by, q, cx.n, alpha, ridge)
