"""Spectrum of one representation: singular values and the ranks derived from them.

The conventions (σ of the column-centred features, the resolution ``tol``, which
eigen-route is taken) and the references are in :mod:`repspace.closed_forms.spectrum`;
the functions here accept arrays, tensors, accumulators or centred moments.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from repspace._validation import as_matrix, check_finite, check_min_rows
from repspace.closed_forms.centred import CentredFeature, CentredRows
from repspace.closed_forms.rows import spectrum_of_rows
from repspace.closed_forms.spectrum import (
    Spectrum,
    effective_rank_of,
    numerical_rank_of,
    participation_ratio_of,
    resolved_or_nan,
    spectrum_from_scatter,
    spectrum_of_centred,
    stable_rank_of,
)
from repspace.statistics.moments import FeatureMoments
from repspace.statistics.rows import FeatureRows

__all__ = [
    "Spectrum",
    "spectrum",
    "singular_values",
    "numerical_rank",
    "stable_rank",
    "effective_rank",
    "participation_ratio",
    "explained_variance",
    "n_components",
]

THRESHOLDS = (0.90, 0.95, 0.99)


def spectrum(x) -> Spectrum:
    """Compute the :class:`Spectrum` of ``x``.

    ``x``: array/tensor of shape (n, p) (rows = samples), a
    :class:`~repspace.statistics.FeatureMoments` accumulator, a
    :class:`~repspace.statistics.CentredFeature`, or a :class:`Spectrum` (returned as is).
    """
    if isinstance(x, Spectrum):
        return x
    if isinstance(x, (FeatureMoments, FeatureRows)):
        x = x.centred()
    if isinstance(x, CentredFeature):
        return spectrum_of_centred(x)
    if isinstance(x, CentredRows):
        return spectrum_of_rows(x)
    t = as_matrix(x, "x")
    check_finite(t, "x")
    n, p = t.shape
    check_min_rows(n, 2, "a spectrum")
    eps_in = float(torch.finfo(t.dtype).eps)
    xc = t.double()
    xc = xc - xc.mean(0)
    constant = bool((t.max(0).values == t.min(0).values).all())
    if n > p:
        # The scatter matrix is formed in float64, so its resolution is float64's.
        return spectrum_from_scatter(xc.T @ xc, n, float(np.finfo(np.float64).eps), constant)
    sv = torch.linalg.svdvals(xc).cpu().numpy()
    if constant:
        sv = np.zeros_like(sv)
    return Spectrum(sv, n, p, "svd", max(eps_in, float(np.finfo(np.float64).eps)), constant)


def singular_values(x) -> np.ndarray:
    """Singular values σ of the column-centred features, descending (length min(n, p))."""
    return spectrum(x).singular_values.copy()


def numerical_rank(x, tol: float | None = None) -> int:
    """#{σᵢ > tol}; default tol as in ``numpy.linalg.matrix_rank`` (see
    :mod:`repspace.closed_forms.spectrum`)."""
    return numerical_rank_of(spectrum(x), tol)


def stable_rank(x, tol: float | None = None) -> float:
    """Stable rank Σσᵢ² / σ₁² (Rudelson & Vershynin); 1 ≤ stable rank ≤ rank."""
    return stable_rank_of(spectrum(x), tol)


def effective_rank(x, tol: float | None = None) -> float:
    """Effective rank (Roy & Vetterli 2007) of the centred features.

    With pᵢ = σᵢ / Σⱼσⱼ over the numerically non-zero singular values,
    erank = exp(−Σ pᵢ log pᵢ), so 1 ≤ erank ≤ numerical rank.  This is the quantity
    the PT-PEFT paper reports.  RankMe (Garrido et al. 2023) is the same up to its
    +1e-7 smoothing of pᵢ.
    """
    return effective_rank_of(spectrum(x), tol)


def participation_ratio(x, tol: float | None = None) -> float:
    """Participation ratio (Σλᵢ)² / Σλᵢ² of the covariance eigenvalues λᵢ = σᵢ²/(n−1)."""
    return participation_ratio_of(spectrum(x), tol)


def explained_variance(x) -> np.ndarray:
    """Cumulative explained-variance ratio: element k−1 is Σᵢ≤k λᵢ / Σλ (ends at 1)."""
    sv, nan = resolved_or_nan(spectrum(x), "explained variance", 0.0)
    if sv is None:
        return np.array([nan])
    lam = sv.astype(np.float64) ** 2
    return np.cumsum(lam) / lam.sum()


def n_components(x, thresholds=THRESHOLDS) -> dict[float, float]:
    """Smallest number of principal components explaining each variance fraction.

    Returns ``{0.9: k90, 0.95: k95, 0.99: k99}`` by default (whole numbers as floats;
    NaN, with a warning, for a constant representation).
    """
    ths = tuple(float(t) for t in thresholds)
    for t in ths:
        if not 0.0 < t <= 1.0:
            raise ValueError(f"thresholds must lie in (0, 1]; got {t!r}")
    cum = explained_variance(x)
    if not np.isfinite(cum).all():
        return {t: math.nan for t in ths}
    # A fraction of exactly 1 is reached at the last non-zero component; tiny round-off
    # in the cumulative sum must not push it past the end.
    return {t: float(min(np.searchsorted(cum, t - 1e-12, side="left") + 1, cum.size)) for t in ths}
