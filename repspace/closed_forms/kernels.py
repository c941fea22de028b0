"""Tiled kernel sums: HSIC terms and RBF bandwidths without ever storing an n×n matrix.

Kernel methods need sums over all n² pairs.  They are accumulated tile by tile
(``tile_size`` rows × ``tile_size`` columns, float64), exploiting symmetry, so memory is
O(n + tile_size²) and nothing like H = I − 11ᵀ/n or K @ L is ever formed:

    tr(K̃ L̃) = Σ K̃ ∘ L̃,   1ᵀ K̃ L̃ 1 = (K̃ 1) · (L̃ 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "GramSums",
    "rbf_gram_sums",
    "median_distance",
    "hsic_from_sums",
    "sq_distances",
    "tiled_label_sums",
]

MEDIAN_MAX_ROWS = 2048


def sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between rows (float64; inputs should be mean-shifted)."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    # ‖a‖² + ‖b‖² − 2a·b can round to a tiny negative for (near-)identical rows; a squared
    # distance is non-negative by definition, so this is round-off, not a hidden error.
    return d.clamp_min_(0.0)


def tiled_label_sums(
    z: torch.Tensor, labels: torch.Tensor, pair_tile, tile_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(aᵀK̃a per column of labels, K̃1)`` for the n × n matrix K̃ = ``pair_tile(zᵢ, zⱼ)``
    with its diagonal zeroed, one ``tile_size``² tile at a time over the upper triangle.

    The one loop of the MMD (an RBF kernel) and the energy distance (Euclidean distances),
    which differ only in ``pair_tile``: memory O(n · P + tile_size²), never n².  float64
    like ``z``.
    """
    n = z.shape[0]
    quad = torch.zeros(labels.shape[1], dtype=torch.float64, device=z.device)
    rows = torch.zeros(n, dtype=torch.float64, device=z.device)
    for i in range(0, n, tile_size):
        zi, ai = z[i : i + tile_size], labels[i : i + tile_size]
        for j in range(i, n, tile_size):
            kt = pair_tile(zi, z[j : j + tile_size])
            if j == i:
                kt.fill_diagonal_(0.0)
            w = 1.0 if j == i else 2.0  # an off-diagonal tile also stands for its transpose
            quad += w * (ai * (kt @ labels[j : j + tile_size])).sum(0)
            rows[i : i + tile_size] += kt.sum(1)
            if j != i:
                rows[j : j + tile_size] += kt.sum(0)
    return quad, rows


def median_distance(x: torch.Tensor, seed: int = 0) -> float:
    """Median Euclidean distance over distinct pairs i < j (the median heuristic).

    Exact for n ≤ 2048; above that on a seeded random subset of 2048 rows (documented
    approximation: the bandwidth is a heuristic, so its sampling error is immaterial).
    Unlike Kornblith et al.'s code, the n zero self-distances are excluded.
    """
    n = x.shape[0]
    if n > MEDIAN_MAX_ROWS:
        g = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(n, generator=g)[:MEDIAN_MAX_ROWS].to(x.device)]
        n = MEDIAN_MAX_ROWS
    x = x.double()
    x = x - x.mean(0)
    iu = torch.triu_indices(n, n, offset=1, device=x.device)
    d = torch.sqrt(sq_distances(x, x)[iu[0], iu[1]])
    return float(np.median(d.cpu().numpy()))  # numpy's median averages the middle pair


@dataclass
class GramSums:
    """Sums of two Gram matrices K, L (n×n) needed by HSIC / CKA estimators."""

    n: int
    kl: float  # Σ K∘L
    kk: float  # Σ K∘K
    ll: float  # Σ L∘L
    k_rows: np.ndarray  # K 1
    l_rows: np.ndarray  # L 1
    k_diag: np.ndarray  # diag K
    l_diag: np.ndarray  # diag L


def rbf_gram_sums(
    x: torch.Tensor, y: torch.Tensor, sigma_x: float, sigma_y: float, tile_size: int = 1024
) -> GramSums:
    """Accumulate :class:`GramSums` of RBF kernels exp(−‖a−b‖² / (2σ²)) tile by tile."""
    n = x.shape[0]
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    gx, gy = 1.0 / (2.0 * sigma_x**2), 1.0 / (2.0 * sigma_y**2)
    kl = kk = ll = 0.0
    k_rows = torch.zeros(n, dtype=torch.float64, device=x.device)
    l_rows = torch.zeros(n, dtype=torch.float64, device=x.device)
    for i in range(0, n, tile_size):
        xi, yi = x[i : i + tile_size], y[i : i + tile_size]
        for j in range(i, n, tile_size):
            kt = torch.exp(-gx * sq_distances(xi, x[j : j + tile_size]))
            lt = torch.exp(-gy * sq_distances(yi, y[j : j + tile_size]))
            w = 1.0 if j == i else 2.0  # off-diagonal tiles stand for their transpose too
            kl += w * float((kt * lt).sum())
            kk += w * float((kt * kt).sum())
            ll += w * float((lt * lt).sum())
            k_rows[i : i + tile_size] += kt.sum(1)
            l_rows[i : i + tile_size] += lt.sum(1)
            if j != i:
                k_rows[j : j + tile_size] += kt.sum(0)
                l_rows[j : j + tile_size] += lt.sum(0)
    ones = np.ones(n)
    return GramSums(
        n=n,
        kl=kl,
        kk=kk,
        ll=ll,
        k_rows=k_rows.cpu().numpy(),
        l_rows=l_rows.cpu().numpy(),
        k_diag=ones,
        l_diag=ones,
    )


def hsic_from_sums(
    s_kl: float,
    k_rows: np.ndarray,
    l_rows: np.ndarray,
    k_diag: np.ndarray,
    l_diag: np.ndarray,
    n: int,
    debiased: bool,
) -> float:
    """HSIC of two Grams from their sums.

    Biased (Gretton et al. 2005, as in Kornblith et al. 2019)::

        HSIC₀ = tr(K H L H) / (n−1)²,  tr(KHLH) = Σ K∘L − (2/n)(K1)·(L1) + (1ᵀK1)(1ᵀL1)/n²

    Debiased (Song et al. 2012), with K̃, L̃ the Grams with zeroed diagonals::

        HSIC₁ = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2/(n−2) · 1ᵀK̃L̃1] / (n(n−3))
    """
    if not debiased:
        t = s_kl - 2.0 / n * float(k_rows @ l_rows) + k_rows.sum() * l_rows.sum() / n**2
        return t / (n - 1) ** 2
    kt_rows, lt_rows = k_rows - k_diag, l_rows - l_diag
    tr = s_kl - float(k_diag @ l_diag)
    t = (
        tr
        + kt_rows.sum() * lt_rows.sum() / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * float(kt_rows @ lt_rows)
    )
    return t / (n * (n - 3))


def cka_from_hsic(hxy: float, hxx: float, hyy: float, what: str) -> float:
    """CKA = HSIC(K,L) / √(HSIC(K,K)·HSIC(L,L)); NaN with a warning if a self term ≤ 0."""
    from repspace._validation import warn_undefined

    if not (hxx > 0 and hyy > 0):
        return warn_undefined(
            f"{what} is undefined: a self-HSIC is {min(hxx, hyy):.3g} (≤ 0); a representation "
            "is constant, or too few samples for the debiased estimator"
        )
    return hxy / math.sqrt(hxx * hyy)
