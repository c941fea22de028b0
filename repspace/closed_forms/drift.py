"""Drift between two representations from their centred moments (closed forms).

Fréchet distance, linear-kernel MMD², orthogonal Procrustes distance and principal
angles of top-k PCA subspaces; the array-level functions and their references are in
:mod:`repspace.metrics.drift`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from repspace._validation import check_min_rows, warn_undefined
from repspace.closed_forms.centred import CentredCross, CentredFeature

__all__ = [
    "frechet_distance_from_moments",
    "mmd_linear_from_moments",
    "procrustes_distance_from_moments",
    "principal_angles_from_moments",
    "overlap_of_angles",
    "resolved_count",
    "undetermined_angles",
    "same_width",
    "check_k",
    "angles_between",
    "trace_sqrt_product",
]


def same_width(x: torch.Tensor | int, y: torch.Tensor | int, what: str) -> None:
    p = x if isinstance(x, int) else x.shape[1]
    q = y if isinstance(y, int) else y.shape[1]
    if p != q:
        raise ValueError(
            f"{what} compares coordinates, so x and y need the same number of "
            f"features; got {p} and {q} (use CKA for different widths)"
        )


def _psd_eigvals_resolved(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with round-off zeros set to 0.

    Eigenvalues at or below λ_max · p · ε (numpy's ``matrix_rank`` rule) are round-off
    of exact zeros, e.g. of a covariance from fewer samples than features; their square
    roots (~1e-8 relative each) would otherwise add up to a visible error.
    """
    floor = max(float(w.max()), 0.0) * w.size * np.finfo(np.float64).eps
    return np.where(w > floor, w, 0.0)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2.0)
    return (v * np.sqrt(_psd_eigvals_resolved(w))) @ v.T


def trace_sqrt_product(cov_x: np.ndarray, cov_y: np.ndarray) -> float:
    """tr((Σx Σy)^{1/2}) without ``sqrtm`` of a non-symmetric matrix.

    The eigenvalues of Σx Σy are those of the PSD matrix Σx^{1/2} Σy Σx^{1/2} =
    MᵀM with M = Σy^{1/2} Σx^{1/2}, so tr((ΣxΣy)^{1/2}) = Σ √λᵢ(MᵀM) = ‖M‖_*.  Taking the
    singular values of M directly (rather than square roots of the eigenvalues of MᵀM)
    keeps small terms accurate to ε·σ_max instead of √ε: the Fréchet distance of a
    sample to itself is then ~1e-15 rather than ~1e-8.
    """
    m = _sqrt_psd(cov_y) @ _sqrt_psd(cov_x)
    return float(np.linalg.svd(m, compute_uv=False).sum())


def frechet_distance_from_moments(cx: CentredFeature, cy: CentredFeature) -> float:
    """Fréchet distance from streaming moments (unbiased covariances, ddof = 1)."""
    same_width(cx.dim, cy.dim, "Fréchet distance")
    check_min_rows(min(cx.n, cy.n), 2, "Fréchet distance")
    cov_x = cx.covariance().cpu().numpy()
    cov_y = cy.covariance().cpu().numpy()
    diff = (cx.mean - cy.mean).cpu().numpy()
    return float(
        diff @ diff + np.trace(cov_x) + np.trace(cov_y) - 2.0 * trace_sqrt_product(cov_x, cov_y)
    )


def mmd_linear_from_moments(
    cx: CentredFeature, cy: CentredFeature, cxy: CentredCross | None = None
) -> float:
    """Unbiased linear-kernel MMD² from moments.

    Unpaired: ‖μx − μy‖² − tr(Σx)/n_x − tr(Σy)/n_y.  Paired (``cxy`` given, rows are the
    same inputs): with dᵢ = xᵢ − yᵢ, ‖d̄‖² − tr(S_d)/(n(n−1)) where
    tr S_d = tr Sxx + tr Syy − 2 tr Sxy (scatter matrices) — zero for identical features.
    """
    same_width(cx.dim, cy.dim, "MMD")
    check_min_rows(min(cx.n, cy.n), 2, "unbiased MMD")
    diff = cx.mean - cy.mean
    if cxy is not None:
        n = cx.n
        tr_d = torch.trace(cx.scatter) + torch.trace(cy.scatter) - 2 * torch.trace(cxy.scatter)
        return float(diff @ diff - tr_d / (n * (n - 1)))
    return float(
        diff @ diff
        - torch.trace(cx.scatter) / (cx.n * (cx.n - 1))
        - torch.trace(cy.scatter) / (cy.n * (cy.n - 1))
    )


def procrustes_distance_from_moments(
    cx: CentredFeature, cy: CentredFeature, cxy: CentredCross
) -> float:
    nuc = float(torch.linalg.svdvals(cxy.scatter).sum())
    norm = math.sqrt(float(torch.trace(cx.scatter)) * float(torch.trace(cy.scatter)))
    if norm == 0.0:
        return warn_undefined("Procrustes distance is undefined: a representation is constant")
    return 2.0 - 2.0 * nuc / norm


def _top_components(c: CentredFeature, k: int) -> tuple[np.ndarray, int]:
    """Top-k eigenvectors of the scatter and its numerical rank (the spectrum's resolution)."""
    s = c.scatter.cpu().numpy()
    w, v = np.linalg.eigh((s + s.T) / 2.0)
    sv = np.sqrt(np.maximum(w[::-1], 0.0))
    eps = max(c.eps, float(np.finfo(np.float64).eps))
    return v[:, ::-1][:, :k], resolved_count(sv, c.dim, eps)


def resolved_count(sv: np.ndarray, p: int, eps: float) -> int:
    """#{σᵢ > σ₁·√(p·ε)}: the numerical rank at the scatter route's resolution."""
    return int((sv > (sv[0] if sv.size else 0.0) * math.sqrt(p * eps)).sum()) if sv.size else 0


def undetermined_angles(k: int, rank_x: int, rank_y: int) -> np.ndarray | None:
    """NaN angles (with a warning) when a top-k subspace is not determined by the data:
    a side of numerical rank r < k has k − r directions chosen by round-off."""
    low = min(rank_x, rank_y)
    if low >= k:
        return None
    side = "base (x)" if rank_x <= rank_y else "tuned (y)"
    return np.full(
        k,
        warn_undefined(
            f"principal angles of the top-{k} subspaces are undefined: the {side} representation "
            f"has numerical rank {low} < {k}, so {k - low} of its directions are arbitrary; "
            f"use k ≤ {low}"
        ),
    )


def principal_angles_from_moments(cx: CentredFeature, cy: CentredFeature, k: int) -> np.ndarray:
    same_width(cx.dim, cy.dim, "principal angles")
    check_k(k, cx.dim, min(cx.n, cy.n))
    (ux, rx), (uy, ry) = _top_components(cx, k), _top_components(cy, k)
    undetermined = undetermined_angles(k, rx, ry)
    return undetermined if undetermined is not None else angles_between(ux, uy)


def check_k(k, p: int, n: int) -> None:
    if not isinstance(k, int) or not 1 <= k <= min(p, n - 1):
        raise ValueError(
            f"k must be an integer in [1, min(n_features, n_samples − 1)] = "
            f"[1, {min(p, n - 1)}]; got {k!r}"
        )


def angles_between(ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    cos = np.linalg.svd(ux.T @ uy, compute_uv=False)
    # Cosines of principal angles lie in [0, 1]; round-off can exceed 1 by ~1e-16.
    return np.arccos(np.minimum(cos, 1.0))


def overlap_of_angles(angles: np.ndarray) -> float:
    """Mean cos² of principal angles: the summary :func:`subspace_overlap` reports."""
    return float(np.mean(np.cos(angles) ** 2))
