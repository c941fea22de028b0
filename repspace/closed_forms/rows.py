"""The closed forms of :mod:`repspace.closed_forms` on held rows: cost bounded by n, not d.

A layer on the rows route (:mod:`repspace.statistics.routes`) holds its centred rows
Xc (n × p) and Yc (n × q).  Each metric below is the *same number* as its moments form,
computed in the n-dimensional sample space when that is cheaper (n small against the
widths) and from the exact moments XcᵀXc, XcᵀYc otherwise:

    linear CKA    ‖XcᵀYc‖²_F = tr(K L),  ‖XcᵀXc‖²_F = tr(K²),  K = XcXcᵀ, L = YcYcᵀ (n × n)
                  kᵢ = Kᵢᵢ: the debiased estimator's row norms
    spectrum      σ(Xc) from the thin SVD of Xc (n × p), O(n²p)
    Fréchet       tr((ΣxΣy)^{1/2}) = ‖Xc Ycᵀ‖_* / (n − 1): the non-zero eigenvalues of
                  XcᵀXc·YcᵀYc are those of (XcYcᵀ)(XcYcᵀ)ᵀ
    Procrustes    σ(XcᵀYc) = σ(Rx Ryᵀ) with Xcᵀ = Qx Rx, Ycᵀ = Qy Ry (thin QR, n × n factors)
    angles        top-k right singular vectors of Xc and Yc from their thin SVDs
    linear MMD    traces only: ‖Xc‖²_F, ‖Yc‖²_F, Σᵢ xcᵢ·ycᵢ

No d × d matrix is formed on the sample-space side, so a 2048-wide layer probed with 32
samples costs milliseconds, where one eigendecomposition of its 2048² moments costs seconds.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from repspace._validation import check_min_rows, warn_undefined
from repspace.closed_forms.centred import CentredRows, cross_of_rows
from repspace.closed_forms.cka import constant_side, linear_cka_from_moments, linear_cka_from_sums
from repspace.closed_forms.drift import (
    angles_between,
    check_k,
    frechet_distance_from_moments,
    principal_angles_from_moments,
    procrustes_distance_from_moments,
    resolved_count,
    same_width,
    undetermined_angles,
)
from repspace.closed_forms.spectrum import Spectrum, spectrum_of_centred

__all__ = [
    "sample_space",
    "linear_cka_from_rows",
    "spectrum_of_rows",
    "frechet_distance_from_rows",
    "mmd_linear_from_rows",
    "procrustes_distance_from_rows",
    "principal_angles_from_rows",
]


def sample_space(n: int, *widths: int) -> bool:
    """True when the n × n forms cost less than the width × width ones (n ≤ the mean width)."""
    return n * sum(widths) <= sum(w * w for w in widths) + math.prod(widths[:2])


def linear_cka_from_rows(cx: CentredRows, cy: CentredRows, debiased: bool = False) -> float:
    """Linear CKA (biased or debiased) of two held row sets; see the module docstring."""
    if not sample_space(cx.n, cx.dim, cy.dim):
        return linear_cka_from_moments(
            cx.to_feature(), cy.to_feature(), cross_of_rows(cx, cy), debiased
        )
    undefined = constant_side(cx, cy, "debiased linear CKA" if debiased else "linear CKA")
    if undefined is not None:
        return undefined
    k, l = cx.rows @ cx.rows.T, cy.rows @ cy.rows.T
    kd, ld = k.diagonal(), l.diagonal()
    return linear_cka_from_sums(
        float((k * l).sum()),
        float((k * k).sum()),
        float((l * l).sum()),
        float(kd @ ld),
        float(kd @ kd),
        float(ld @ ld),
        float(kd.sum()),
        float(ld.sum()),
        cx.n,
        debiased,
    )


def spectrum_of_rows(c: CentredRows) -> Spectrum:
    """The :class:`Spectrum` of held rows: σ of Xc (method ``"rows"``), or the scatter's
    eigenvalues when n > p; either way at the moments route's resolution."""
    if c.n > c.dim:
        return spectrum_of_centred(c.to_feature())
    sv = torch.linalg.svdvals(c.rows).cpu().numpy()
    if c.is_constant:
        sv = np.zeros_like(sv)
    eps = max(c.eps, float(np.finfo(np.float64).eps))
    return Spectrum(sv, c.n, c.dim, "rows", eps, c.is_constant)


def frechet_distance_from_rows(cx: CentredRows, cy: CentredRows) -> float:
    """Fréchet distance (unbiased covariances) of two held row sets of equal width."""
    same_width(cx.dim, cy.dim, "Fréchet distance")
    check_min_rows(cx.n, 2, "Fréchet distance")
    if not sample_space(cx.n, cx.dim, cy.dim):
        return frechet_distance_from_moments(cx.to_feature(), cy.to_feature())
    n1 = cx.n - 1
    diff = cx.mean - cy.mean
    tr_x, tr_y = float(cx.rows.square().sum()) / n1, float(cy.rows.square().sum()) / n1
    cross = float(torch.linalg.svdvals(cx.rows @ cy.rows.T).sum()) / n1
    return float(diff @ diff) + tr_x + tr_y - 2.0 * cross


def mmd_linear_from_rows(cx: CentredRows, cy: CentredRows) -> float:
    """Unbiased paired linear-kernel MMD² of two held row sets (rows are the same inputs)."""
    same_width(cx.dim, cy.dim, "MMD")
    check_min_rows(cx.n, 2, "unbiased MMD")
    n = cx.n
    diff = cx.mean - cy.mean
    tr_d = cx.rows.square().sum() + cy.rows.square().sum() - 2 * (cx.rows * cy.rows).sum()
    return float(diff @ diff - tr_d / (n * (n - 1)))


def procrustes_distance_from_rows(cx: CentredRows, cy: CentredRows) -> float:
    """Orthogonal Procrustes distance 2 − 2‖XcᵀYc‖_* / (‖Xc‖_F ‖Yc‖_F) of held rows."""
    if not sample_space(cx.n, cx.dim, cy.dim):
        return procrustes_distance_from_moments(
            cx.to_feature(), cy.to_feature(), cross_of_rows(cx, cy)
        )
    norm = math.sqrt(float(cx.rows.square().sum()) * float(cy.rows.square().sum()))
    if norm == 0.0:
        return warn_undefined("Procrustes distance is undefined: a representation is constant")
    rx = torch.linalg.qr(cx.rows.T, mode="r").R
    ry = torch.linalg.qr(cy.rows.T, mode="r").R
    return 2.0 - 2.0 * float(torch.linalg.svdvals(rx @ ry.T).sum()) / norm


def _top_right_vectors(c: CentredRows, k: int) -> tuple[np.ndarray, int]:
    _, sv, vh = torch.linalg.svd(c.rows, full_matrices=False)
    eps = max(c.eps, float(np.finfo(np.float64).eps))
    return vh[:k].T.cpu().numpy(), resolved_count(sv.cpu().numpy(), c.dim, eps)


def principal_angles_from_rows(cx: CentredRows, cy: CentredRows, k: int) -> np.ndarray:
    """Principal angles between the top-k PCA subspaces of two held row sets."""
    same_width(cx.dim, cy.dim, "principal angles")
    check_k(k, cx.dim, cx.n)
    if not sample_space(cx.n, cx.dim, cy.dim):
        return principal_angles_from_moments(cx.to_feature(), cy.to_feature(), k)
    (ux, rx), (uy, ry) = _top_right_vectors(cx, k), _top_right_vectors(cy, k)
    undetermined = undetermined_angles(k, rx, ry)
    return undetermined if undetermined is not None else angles_between(ux, uy)
