"""Spectrum of one representation: singular values and the ranks derived from them.

Convention (stated because papers differ): σ₁ ≥ σ₂ ≥ … are the singular values of the
**column-centred** feature matrix Xc (n × p); λᵢ = σᵢ² are the eigenvalues of the
scatter matrix XcᵀXc (the covariance times n − 1).  Ranks built on σ (effective rank)
and on λ (participation ratio) therefore differ on purpose.

Route: with the rows at hand and n ≤ p, an SVD of Xc (float64); otherwise (n > p, or a
streaming accumulator) ``eigvalsh`` of the p × p scatter matrix, σ = √λ.  The scatter
route squares the condition number, so singular values below its resolution are
indistinguishable from zero; every quantity below is computed over the *numerically
non-zero* singular values σ > tol, with the default tolerance of
``numpy.linalg.matrix_rank`` applied to the matrix actually decomposed:

    SVD of Xc:        tol = σ₁ · max(n, p) · ε
    eig of XcᵀXc:     λ-tol = λ₁ · p · ε   (i.e. σ-tol = σ₁ · √(p · ε))

where ε is the unit round-off of the data or of the GEMMs that built the scatter matrix,
whichever is coarser (float32 GEMMs: σ-tol ≈ 1e-2 σ₁ at p = 768; float64: ≈ 4e-7 σ₁).
Accumulate with ``precision="float64"`` where fine spectral detail matters.

References: Roy & Vetterli, The effective rank, EUSIPCO 2007; Rudelson & Vershynin,
Sampling from large matrices, JACM 2007 (stable rank); Gao et al. 2017 / Recanatesi et
al. 2019 (participation ratio); Garrido et al., RankMe, ICML 2023.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from repspace._validation import as_matrix, check_finite, check_min_rows, warn_undefined
from repspace.statistics.moments import CentredFeature, FeatureMoments

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


@dataclass(frozen=True)
class Spectrum:
    """Singular values of a centred representation and how they were obtained."""

    singular_values: np.ndarray = field(repr=False)  # descending, ≥ 0, length min(n, p)
    n_samples: int
    n_features: int
    method: str  # "svd" or "covariance"
    eps: float   # unit round-off of the computation (see module docstring)
    is_constant: bool = False

    @property
    def tol(self) -> float:
        """Default resolution: singular values ≤ tol are numerically zero."""
        s1 = float(self.singular_values[0]) if self.singular_values.size else 0.0
        if self.method == "svd":
            return s1 * max(self.n_samples, self.n_features) * self.eps
        return s1 * math.sqrt(self.n_features * self.eps)

    def resolved(self, tol: float | None = None) -> np.ndarray:
        """Singular values above ``tol`` (default :attr:`tol`)."""
        t = self.tol if tol is None else tol
        return self.singular_values[self.singular_values > t]


def spectrum(x) -> Spectrum:
    """Compute the :class:`Spectrum` of ``x``.

    ``x``: array/tensor of shape (n, p) (rows = samples), a
    :class:`~repspace.statistics.FeatureMoments` accumulator, a
    :class:`~repspace.statistics.CentredFeature`, or a :class:`Spectrum` (returned as is).
    """
    if isinstance(x, Spectrum):
        return x
    if isinstance(x, FeatureMoments):
        x = x.centred()
    if isinstance(x, CentredFeature):
        return _from_scatter(x.scatter, x.n, x.eps, x.is_constant)
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
        return _from_scatter(xc.T @ xc, n, float(np.finfo(np.float64).eps), constant)
    sv = torch.linalg.svdvals(xc).cpu().numpy()
    if constant:
        sv = np.zeros_like(sv)
    return Spectrum(sv, n, p, "svd", max(eps_in, float(np.finfo(np.float64).eps)), constant)


def _from_scatter(scatter: torch.Tensor, n: int, eps: float, constant: bool) -> Spectrum:
    p = scatter.shape[0]
    s = scatter.double().cpu().numpy()
    lam = np.linalg.eigvalsh((s + s.T) / 2.0)[::-1]
    lam = lam[: min(n, p)]
    # A scatter matrix is PSD: eigenvalues below zero are round-off of a zero eigenvalue
    # (they lie far below the resolution `tol`), so they map to σ = 0.
    sv = np.sqrt(np.maximum(lam, 0.0))
    if constant:
        sv = np.zeros_like(sv)
    eps = max(eps, float(np.finfo(np.float64).eps))
    return Spectrum(sv, n, p, "covariance", eps, constant)


def singular_values(x) -> np.ndarray:
    """Singular values σ of the column-centred features, descending (length min(n, p))."""
    return spectrum(x).singular_values.copy()


def numerical_rank(x, tol: float | None = None) -> int:
    """#{σᵢ > tol}; default tol as in ``numpy.linalg.matrix_rank`` (module docstring)."""
    if tol is not None and not tol >= 0:
        raise ValueError(f"tol must be ≥ 0; got {tol!r}")
    return int(spectrum(x).resolved(tol).size)


def _resolved_or_nan(x, what: str, tol: float | None):
    sp = spectrum(x)
    sv = sp.resolved(tol)
    if sv.size == 0:
        return None, warn_undefined(
            f"{what} is undefined: the representation is constant (no variance); check "
            "that the layer produces varying outputs")
    return sv, None


def stable_rank(x, tol: float | None = None) -> float:
    """Stable rank Σσᵢ² / σ₁² (Rudelson & Vershynin); 1 ≤ stable rank ≤ rank."""
    sv, nan = _resolved_or_nan(x, "stable rank", tol)
    if sv is None:
        return nan
    s2 = sv.astype(np.float64) ** 2
    return float(s2.sum() / s2[0])


def effective_rank(x, tol: float | None = None) -> float:
    """Effective rank (Roy & Vetterli 2007) of the centred features.

    With pᵢ = σᵢ / Σⱼσⱼ over the numerically non-zero singular values,
    erank = exp(−Σ pᵢ log pᵢ), so 1 ≤ erank ≤ numerical rank.  This is the quantity
    the PT-PEFT paper reports.  RankMe (Garrido et al. 2023) is the same up to its
    +1e-7 smoothing of pᵢ.
    """
    sv, nan = _resolved_or_nan(x, "effective rank", tol)
    if sv is None:
        return nan
    p = sv / sv.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def participation_ratio(x, tol: float | None = None) -> float:
    """Participation ratio (Σλᵢ)² / Σλᵢ² of the covariance eigenvalues λᵢ = σᵢ²/(n−1)."""
    sv, nan = _resolved_or_nan(x, "participation ratio", tol)
    if sv is None:
        return nan
    lam = sv.astype(np.float64) ** 2
    return float(lam.sum() ** 2 / (lam ** 2).sum())


def explained_variance(x) -> np.ndarray:
    """Cumulative explained-variance ratio: element k−1 is Σᵢ≤k λᵢ / Σλ (ends at 1)."""
    sv, nan = _resolved_or_nan(x, "explained variance", 0.0)
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
    return {t: float(min(np.searchsorted(cum, t - 1e-12, side="left") + 1, cum.size))
            for t in ths}
