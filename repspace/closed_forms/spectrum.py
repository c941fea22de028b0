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

The rows route of a compare (:mod:`repspace.statistics.routes`, method ``"rows"``) takes the
SVD of the held rows (n ≤ p) but applies the scatter route's resolution σ₁·√(p·ε): a layer's
ranks must not depend on whether its n crossed the break-even, so both routes cut at the
same σ.

References: Roy & Vetterli, The effective rank, EUSIPCO 2007; Rudelson & Vershynin,
Sampling from large matrices, JACM 2007 (stable rank); Gao et al. 2017 / Recanatesi et
al. 2019 (participation ratio); Garrido et al., RankMe, ICML 2023.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from repspace._validation import warn_undefined
from repspace.closed_forms.centred import CentredFeature

__all__ = [
    "Spectrum",
    "spectrum_from_scatter",
    "spectrum_of_centred",
    "numerical_rank_of",
    "stable_rank_of",
    "effective_rank_of",
    "participation_ratio_of",
    "resolved_or_nan",
]


@dataclass(frozen=True)
class Spectrum:
    """Singular values of a centred representation and how they were obtained."""

    singular_values: np.ndarray = field(repr=False)  # descending, ≥ 0, length min(n, p)
    n_samples: int
    n_features: int
    method: str  # "svd", "covariance" or "rows" (SVD of held rows at the covariance's resolution)
    eps: float  # unit round-off of the computation (see module docstring)
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


def spectrum_from_scatter(scatter: torch.Tensor, n: int, eps: float, constant: bool) -> Spectrum:
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


def spectrum_of_centred(c: CentredFeature) -> Spectrum:
    """The :class:`Spectrum` of a representation from its centred moments (scatter route)."""
    return spectrum_from_scatter(c.scatter, c.n, c.eps, c.is_constant)


def numerical_rank_of(sp: Spectrum, tol: float | None = None) -> int:
    """#{σᵢ > tol}; default tol as in ``numpy.linalg.matrix_rank`` (module docstring)."""
    if tol is not None and not tol >= 0:
        raise ValueError(f"tol must be ≥ 0; got {tol!r}")
    return int(sp.resolved(tol).size)


def resolved_or_nan(sp: Spectrum, what: str, tol: float | None):
    """``(σ > tol, None)``, or ``(None, NaN)`` with a warning when nothing is resolved."""
    sv = sp.resolved(tol)
    if sv.size == 0:
        return None, warn_undefined(
            f"{what} is undefined: the representation is constant (no variance); check "
            "that the layer produces varying outputs"
        )
    return sv, None


def stable_rank_of(sp: Spectrum, tol: float | None = None) -> float:
    """Stable rank Σσᵢ² / σ₁² (Rudelson & Vershynin); 1 ≤ stable rank ≤ rank."""
    sv, nan = resolved_or_nan(sp, "stable rank", tol)
    if sv is None:
        return nan
    s2 = sv.astype(np.float64) ** 2
    return float(s2.sum() / s2[0])


def effective_rank_of(sp: Spectrum, tol: float | None = None) -> float:
    """Effective rank (Roy & Vetterli 2007) of the centred features.

    With pᵢ = σᵢ / Σⱼσⱼ over the numerically non-zero singular values,
    erank = exp(−Σ pᵢ log pᵢ), so 1 ≤ erank ≤ numerical rank.  This is the quantity
    the PT-PEFT paper reports.  RankMe (Garrido et al. 2023) is the same up to its
    +1e-7 smoothing of pᵢ.
    """
    sv, nan = resolved_or_nan(sp, "effective rank", tol)
    if sv is None:
        return nan
    p = sv / sv.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def participation_ratio_of(sp: Spectrum, tol: float | None = None) -> float:
    """Participation ratio (Σλᵢ)² / Σλᵢ² of the covariance eigenvalues λᵢ = σᵢ²/(n−1)."""
    sv, nan = resolved_or_nan(sp, "participation ratio", tol)
    if sv is None:
        return nan
    lam = sv.astype(np.float64) ** 2
    return float(lam.sum() ** 2 / (lam**2).sum())
