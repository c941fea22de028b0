"""Energy distance (Székely) between the distributions of two representations, with a
permutation test.

Sample-based (pairwise distances in float64 tiles, never stored): run it on a bounded row
sample.  With x (m, p) and y (n, p) in the same coordinates (p = q)::

    E = 2/(mn) Σᵢⱼ ‖xᵢ − yⱼ‖ − 1/m² Σᵢⱼ ‖xᵢ − xⱼ‖ − 1/n² Σᵢⱼ ‖yᵢ − yⱼ‖

the V-statistic of 2E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖ (Székely & Rizzo 2004/2013): ≥ 0,
and 0 only for identical samples; ``dcor.energy_distance``'s value.  ``scipy.stats.
energy_distance`` (1-D only) returns its square root, the result's ``distance``.
Székely's test statistic mn/(m + n)·E orders the permutations the same way.

``permutations=k`` tests H₀: one distribution, p = (1 + #{E_perm ≥ E_obs}) / (1 + k),
resolution 1/(1 + k): by relabelling the pooled samples, or with ``paired=True`` (row i of x
and y are the same input through two models) by swapping x and y within random pairs, which
keeps the pairing.  Seeded.

Invariances: the same translation or orthogonal map applied to both sides, and a permutation
of each side's samples; E scales with |c| under a common isotropic scaling.  A map applied to
one side only moves it (a drift measure, not a similarity up to a transform).

References: Székely, Rizzo. Testing for equal distributions in high dimension. InterStat
2004.  Székely, Rizzo. Energy statistics: a class of statistics based on distances. J. Stat.
Planning and Inference 2013.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from repspace._validation import as_matrix, check_finite, check_min_rows, check_paired
from repspace.closed_forms.distances import distances
from repspace.closed_forms.drift import same_width
from repspace.closed_forms.kernels import tiled_label_sums

__all__ = ["EnergyResult", "energy_distance"]


@dataclass(frozen=True)
class EnergyResult:
    """``energy`` E (the V-statistic, ≥ 0), its permutation ``p_value`` (None without
    permutations), ``permutations``, the p-value's ``resolution`` 1/(1 + permutations),
    ``paired`` and the sample sizes ``m``, ``n``."""

    energy: float
    p_value: float | None
    permutations: int
    resolution: float | None
    paired: bool
    m: int
    n: int

    @property
    def distance(self) -> float:
        """√E, the convention of ``scipy.stats.energy_distance``."""
        return math.sqrt(max(self.energy, 0.0))

    def __float__(self) -> float:
        return self.energy


def _labels(m: int, n: int, permutations: int, paired: bool, seed: int) -> torch.Tensor:
    """(m + n, 1 + permutations) 0/1 columns, 1 = "x": the observed split, then permuted."""
    cols = [torch.cat([torch.ones(m), torch.zeros(n)])]
    gen = torch.Generator().manual_seed(seed)
    for _ in range(permutations):
        if paired:
            swap = torch.randint(0, 2, (m,), generator=gen).double()
            cols.append(torch.cat([1.0 - swap, swap]))
        else:
            a = torch.zeros(m + n)
            a[torch.randperm(m + n, generator=gen)[:m]] = 1.0
            cols.append(a)
    return torch.stack(cols, 1).double()


def energy_distance(
    x, y, *, permutations: int = 0, paired: bool = False, seed: int = 0, tile_size: int = 1024
) -> EnergyResult:
    """Energy distance E between the samples x (m, p) and y (n, p); see the module docstring.

    Time O((m + n)² (p + permutations)), memory O(tile_size² + (m + n)·permutations).
    """
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 0:
        raise ValueError(f"permutations must be a non-negative integer; got {permutations!r}")
    if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 1:
        raise ValueError(f"tile_size must be a positive integer; got {tile_size!r}")
    xt, yt = as_matrix(x, "x"), as_matrix(y, "y")
    check_finite(xt, "x")
    check_finite(yt, "y")
    same_width(xt, yt, "energy distance")
    if paired:
        check_paired(xt, yt)
    m, n = xt.shape[0], yt.shape[0]
    check_min_rows(min(m, n), 1, "energy distance")
    z = torch.cat([xt.double(), yt.double().to(xt.device)])
    z = z - z.mean(0)  # distances are shift-free; this helps round-off
    labels = _labels(m, n, permutations, paired, seed).to(z.device)
    total_n = m + n
    quad, rows = tiled_label_sums(z, labels, distances, tile_size)  # aᵀDa, D1
    total = rows.sum()
    r_a = rows @ labels
    s_xx, s_yy, s_xy = quad, total - 2.0 * r_a + quad, r_a - quad
    stats = (2.0 * s_xy / (m * n) - s_xx / m**2 - s_yy / n**2).cpu().numpy()
    p_value = resolution = None
    if permutations:
        # ties with the observed split (e.g. a permutation that reproduces it) count, up to
        # round-off of the sums
        tol = 1e-12 * max(abs(float(stats[0])), float(total) / total_n**2)
        p_value = float((1 + np.sum(stats[1:] >= stats[0] - tol)) / (1 + permutations))
        resolution = 1.0 / (1 + permutations)
    return EnergyResult(float(stats[0]), p_value, permutations, resolution, paired, m, n)
