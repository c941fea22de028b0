"""Euclidean distances between rows, at GEMM speed and exact where it matters.

‖a − b‖² = ‖a‖² + ‖b‖² − 2a·b costs one GEMM but loses its digits when a and b are close:
the error of the square is ε·(‖a‖² + ‖b‖²), so a distance near 0 comes out near
√ε·‖a‖ ≈ 1e-8‖a‖ instead of 0.  The pairs closer than ``RECOMPUTE`` of their norms are
recomputed as ‖a − b‖ directly (few pairs: near-duplicates, or the same input through two
nearly equal layers), so identical rows are at distance exactly 0 and the rest keep the
GEMM's speed.
"""

from __future__ import annotations

import torch

__all__ = ["distances", "RECOMPUTE"]

RECOMPUTE = 1e-4  # relative squared distance below which a pair is recomputed directly
CHUNK_VALUES = 1 << 22  # differences held at once while recomputing (32 MiB in float64)


def distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """‖aᵢ − bⱼ‖ (len(a) × len(b)), float64; inputs should be mean-shifted (float64)."""
    na, nb = (a * a).sum(1), (b * b).sum(1)
    scale = na[:, None] + nb[None, :]
    d2 = scale - 2.0 * (a @ b.T)
    close = d2 <= RECOMPUTE * scale
    if bool(close.any()):
        i, j = close.nonzero(as_tuple=True)
        step = max(1, CHUNK_VALUES // max(1, a.shape[1]))  # bounded memory for many pairs
        for s in range(0, i.numel(), step):
            ii, jj = i[s : s + step], j[s : s + step]
            d2[ii, jj] = (a[ii] - b[jj]).square().sum(1)
    return d2.clamp_min_(0.0).sqrt_()
