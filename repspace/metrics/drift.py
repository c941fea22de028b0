"""Drift between the base and the tuned representation.

Distribution drift (samples need not be paired; same feature space): Fréchet distance,
MMD².  Paired drift (the same inputs through both models): per-sample cosine
similarity and relative shift, orthogonal Procrustes distance, mutual k-NN overlap,
principal angles between top-k PCA subspaces.

Shapes: ``x`` (n_x, p) base features, ``y`` (n_y, q) tuned features; paired metrics
need n_x = n_y, and those that compare coordinates need p = q.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from repspace._validation import (
    as_matrix,
    check_finite,
    check_min_rows,
    check_paired,
    warn_undefined,
)
from repspace.closed_forms.drift import (
    angles_between,
    check_k,
    frechet_distance_from_moments,
    mmd_linear_from_moments,
    overlap_of_angles,
    principal_angles_from_moments,
    procrustes_distance_from_moments,
    same_width,
    trace_sqrt_product,
    undetermined_angles,
)
from repspace.closed_forms.kernels import median_distance, sq_distances, tiled_label_sums
from repspace.metrics.spectrum import numerical_rank
from repspace.statistics.drift_stats import per_sample_drift, summarize
from repspace.statistics.moments import FeatureMoments

__all__ = [
    "frechet_distance",
    "frechet_distance_from_moments",
    "MMDResult",
    "mmd",
    "mmd_linear_from_moments",
    "paired_drift",
    "procrustes_distance",
    "procrustes_distance_from_moments",
    "mutual_knn_overlap",
    "principal_angles",
    "principal_angles_from_moments",
    "subspace_overlap",
    "overlap_of_angles",
]


def _checked(a, name: str) -> torch.Tensor:
    t = as_matrix(a, name)
    check_finite(t, name)
    return t.double()


# -- Fréchet distance ------------------------------------------------------------------
def frechet_distance(x, y) -> float:
    """Fréchet (2-Wasserstein between Gaussians) distance, as in FID::

        FD = ‖μx − μy‖² + tr(Σx + Σy − 2 (Σx Σy)^{1/2})

    with unbiased covariances (ddof = 1, as ``numpy.cov`` and pytorch-fid).  No
    ``scipy.linalg.sqrtm``: tr((ΣxΣy)^{1/2}) is the sum of √eigenvalues of the symmetric
    PSD matrix Σx^{1/2} Σy Σx^{1/2}; when min(n_x, n_y) < p it is the nuclear norm
    ‖Xc Ycᵀ‖_* / √((n_x − 1)(n_y − 1)), which avoids p × p matrices altogether.

    ``x``, ``y``: arrays (n_x, p), (n_y, p) — unpaired samples are fine — or
    :class:`~repspace.statistics.FeatureMoments` accumulators.  May be a tiny negative
    number (round-off) for identical distributions; it is not clamped.
    """
    if isinstance(x, FeatureMoments) and isinstance(y, FeatureMoments):
        return frechet_distance_from_moments(x.centred(), y.centred())
    xt, yt = _checked(x, "x"), _checked(y, "y")
    same_width(xt, yt, "Fréchet distance")
    check_min_rows(min(xt.shape[0], yt.shape[0]), 2, "Fréchet distance")
    mx, my = xt.mean(0), yt.mean(0)
    xc, yc = xt - mx, yt - my
    nx, ny, p = xt.shape[0], yt.shape[0], xt.shape[1]
    tr_x = float((xc * xc).sum()) / (nx - 1)
    tr_y = float((yc * yc).sum()) / (ny - 1)
    if min(nx, ny) < p:
        tr_sqrt = float(torch.linalg.svdvals(xc @ yc.T).sum()) / math.sqrt((nx - 1) * (ny - 1))
    else:
        cov_x = (xc.T @ xc / (nx - 1)).cpu().numpy()
        cov_y = (yc.T @ yc / (ny - 1)).cpu().numpy()
        tr_sqrt = trace_sqrt_product(cov_x, cov_y)
    diff = float(((mx - my) ** 2).sum())
    return diff + tr_x + tr_y - 2.0 * tr_sqrt


# -- MMD ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MMDResult:
    """MMD² estimate, permutation-test p-value (None without permutations) and settings."""

    mmd2: float
    p_value: float | None
    kernel: str
    sigma: float | None
    permutations: int
    unbiased: bool

    def __float__(self) -> float:
        return self.mmd2


def _within_sums(z: torch.Tensor, labels: torch.Tensor, kernel: str, gamma: float, tile_size: int):
    """For label columns A (N × P, 1 = "x"): aᵀK̃a per column, K̃1, 1ᵀK̃1 and diag K.

    K̃ is the kernel matrix with its diagonal zeroed (the U-statistic leaves out i = j).
    """
    n = z.shape[0]
    if kernel == "linear":
        sq = (z * z).sum(1)
        za = z.T @ labels
        quad = (za * za).sum(0) - sq @ labels
        rows = z @ z.sum(0) - sq
        return quad, rows, float(rows.sum()), sq
    quad, rows = tiled_label_sums(
        z, labels, lambda a, b: torch.exp(-gamma * sq_distances(a, b)), tile_size
    )
    return quad, rows, float(rows.sum()), torch.ones(n, dtype=torch.float64, device=z.device)


def _mmd2_from_sums(
    quad, rows, total, diag, labels, m: int, n: int, unbiased: bool, pair_sum: float | None = None
):
    """MMD² for every label column from the within-sample sums (U- or V-statistic).

    ``pair_sum`` = Σᵢ k(xᵢ, yᵢ) selects the paired U-statistic, which also leaves out the
    cross terms of the same input (they are dependent).
    """
    r_a = rows @ labels
    s_xx = quad  # Σ_{i≠j ∈ X} k
    s_yy = total - 2.0 * r_a + quad  # Σ_{i≠j ∈ Y} k, since 1 − a marks Y
    s_xy = r_a - quad  # Σ_{i ∈ X, j ∈ Y} k
    if unbiased and pair_sum is not None:
        return (s_xx + s_yy - 2.0 * (s_xy - pair_sum)) / (n * (n - 1))
    if unbiased:
        return s_xx / (m * (m - 1)) + s_yy / (n * (n - 1)) - 2.0 * s_xy / (m * n)
    d_x = diag @ labels
    d_y = diag.sum() - d_x
    return (s_xx + d_x) / m**2 + (s_yy + d_y) / n**2 - 2.0 * s_xy / (m * n)


def mmd(
    x,
    y,
    kernel: str = "rbf",
    *,
    sigma: float | None = None,
    sigma_factor: float = 1.0,
    permutations: int = 0,
    unbiased: bool = True,
    paired: bool = False,
    seed: int = 0,
    tile_size: int = 1024,
) -> MMDResult:
    """Maximum mean discrepancy MMD² between the distributions of ``x`` and ``y``.

    Unbiased U-statistic (Gretton et al., JMLR 2012, eq. 3)::

        MMD²ᵤ = Σᵢ≠ⱼ k(xᵢ,xⱼ)/(m(m−1)) + Σᵢ≠ⱼ k(yᵢ,yⱼ)/(n(n−1)) − 2 Σᵢⱼ k(xᵢ,yⱼ)/(mn)

    (can be negative; not clamped), or the biased V-statistic with ``unbiased=False``.
    ``kernel="linear"``: k(a, b) = aᵀb, i.e. ‖μx − μy‖² − tr Σx/m − tr Σy/n (unbiased)
    or ‖μx − μy‖² (biased).  ``kernel="rbf"``: exp(−‖a − b‖²/(2σ²)) with σ =
    ``sigma_factor`` × median pairwise distance of the pooled sample (median heuristic),
    summed in float64 tiles without storing the (m+n)² kernel matrix.

    ``paired=True`` (row i of x and y come from the same input, e.g. base and tuned
    features): the U-statistic of Gretton et al. (Lemma 6) with
    h(zᵢ, zⱼ) = k(xᵢ,xⱼ) + k(yᵢ,yⱼ) − k(xᵢ,yⱼ) − k(xⱼ,yᵢ) over i ≠ j, which leaves out the
    dependent same-input cross terms k(xᵢ, yᵢ); it is exactly 0 for identical features,
    where the unpaired estimator is negative.  Its permutation test swaps x and y within
    random pairs.

    ``permutations=k`` adds a permutation test of H₀: same distribution, reusing each
    kernel tile for all permutations; p = (1 + #{MMD²_perm ≥ MMD²_obs}) / (1 + k).
    """
    if kernel not in ("linear", "rbf"):
        raise ValueError(f"kernel must be 'linear' or 'rbf'; got {kernel!r}")
    if not isinstance(permutations, int) or permutations < 0:
        raise ValueError(f"permutations must be a non-negative integer; got {permutations!r}")
    xt, yt = _checked(x, "x"), _checked(y, "y")
    same_width(xt, yt, "MMD")
    if paired:
        check_paired(xt, yt)
    m, n = xt.shape[0], yt.shape[0]
    check_min_rows(min(m, n), 2, "MMD")
    z = torch.cat([xt, yt])
    z = z - z.mean(0)  # distances and dot-product differences are shift-free; this helps round-off
    gamma, sig = 0.0, None
    if kernel == "rbf":
        if sigma is not None:
            if not sigma > 0:
                raise ValueError(f"sigma must be > 0; got {sigma!r}")
            sig = float(sigma)
        else:
            if not sigma_factor > 0:
                raise ValueError(f"sigma_factor must be > 0; got {sigma_factor!r}")
            sig = sigma_factor * median_distance(z, seed=seed)
            if sig == 0.0:
                raise ValueError(
                    "the median pairwise distance of the pooled samples is 0; pass "
                    "sigma= explicitly or use kernel='linear'"
                )
        gamma = 1.0 / (2.0 * sig**2)
    pair_sum = None
    if paired:
        zx, zy = z[:m], z[m:]
        pair_sum = float(
            (zx * zy).sum()
            if kernel == "linear"
            else torch.exp(-gamma * ((zx - zy) ** 2).sum(1)).sum()
        )
    observed = torch.zeros(m + n, 1, dtype=torch.float64, device=z.device)
    observed[:m] = 1.0
    gen = torch.Generator().manual_seed(seed)
    stats = []
    chunk = 128
    for start in range(0, permutations + 1, chunk):
        cols = []
        for c in range(start, min(start + chunk, permutations + 1)):
            if c == 0:
                cols.append(observed[:, 0])
                continue
            if paired:  # swap the two members of random pairs: pairs stay pairs
                swap = torch.randint(0, 2, (m,), generator=gen).double()
                a = torch.cat([1.0 - swap, swap])
            else:
                a = torch.zeros(m + n, dtype=torch.float64)
                a[torch.randperm(m + n, generator=gen)[:m]] = 1.0
            cols.append(a.to(z.device))
        labels = torch.stack(cols, 1)
        stats.append(
            _mmd2_from_sums(
                *_within_sums(z, labels, kernel, gamma, tile_size), labels, m, n, unbiased, pair_sum
            )
        )
    stats = torch.cat(stats).cpu().numpy()
    p_value = None
    if permutations:
        p_value = float((1 + np.sum(stats[1:] >= stats[0])) / (1 + permutations))
    return MMDResult(float(stats[0]), p_value, kernel, sig, permutations, unbiased)


# -- paired drift ------------------------------------------------------------------------
def paired_drift(x, y) -> dict:
    """Per-sample drift of paired rows (raw, uncentred features, p = q).

    Returns ``{"cosine_similarity": summary, "relative_shift": summary}`` where each
    summary has exact mean, std, min, max, quantiles q05…q95, n and n_undefined (rows
    with a zero norm).  cos(xᵢ, yᵢ) = xᵢ·yᵢ/(‖xᵢ‖‖yᵢ‖); relative shift
    ‖yᵢ − xᵢ‖/‖xᵢ‖ (LDIFS-style feature-space distance, Mukhoti et al. 2023).
    """
    xt, yt = _checked(x, "x"), _checked(y, "y")
    check_paired(xt, yt)
    same_width(xt, yt, "paired drift")
    cos, rel = per_sample_drift(xt, yt)
    return {
        "cosine_similarity": summarize(cos.cpu().numpy()),
        "relative_shift": summarize(rel.cpu().numpy()),
    }


def procrustes_distance(x, y) -> float:
    """Orthogonal Procrustes distance (Ding, Denain & Steinhardt, NeurIPS 2021).

    With Xc, Yc centred and scaled to unit Frobenius norm::

        d = min_{Q orthogonal} ‖Xc − Yc Q‖²_F = 2 − 2 ‖Xcᵀ Yc‖_*

    in [0, 2] (a squared distance, as Ding et al. report it); p ≠ q is handled as
    zero-padding.  Invariant to orthogonal transforms, isotropic scaling, translation.
    """
    xt, yt = _checked(x, "x"), _checked(y, "y")
    check_paired(xt, yt)
    check_min_rows(xt.shape[0], 2, "Procrustes distance")
    xc, yc = xt - xt.mean(0), yt - yt.mean(0)
    nx, ny = float(xc.norm()), float(yc.norm())
    if nx == 0.0 or ny == 0.0:
        return warn_undefined("Procrustes distance is undefined: a representation is constant")
    if xc.shape[0] < min(xc.shape[1], yc.shape[1]):
        # With Xcᵀ = Qx Rx and Ycᵀ = Qy Ry (reduced QR), XcᵀYc = Qx (Rx Ryᵀ) Qyᵀ has the
        # singular values of the small n × n matrix Rx Ryᵀ.
        rx, ry = torch.linalg.qr(xc.T)[1], torch.linalg.qr(yc.T)[1]
        nuc = torch.linalg.svdvals(rx @ ry.T)
    else:
        nuc = torch.linalg.svdvals(xc.T @ yc)
    return 2.0 - 2.0 * float(nuc.sum()) / (nx * ny)


def mutual_knn_overlap(x, y, k: int = 10, metric: str = "cosine", tile_size: int = 1024) -> float:
    """Mean fraction of shared k nearest neighbours (Huh et al., ICML 2024).

    For each sample i, N_X(i) and N_Y(i) are its k nearest other samples in each space;
    the score is mean_i |N_X(i) ∩ N_Y(i)| / k ∈ [0, 1].  ``metric``: ``"cosine"`` (as in
    the Platonic Representation paper) or ``"euclidean"``.  Time O(n²(p + q)), memory
    O(tile_size · n).
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean'; got {metric!r}")
    xt, yt = _checked(x, "x"), _checked(y, "y")
    check_paired(xt, yt)
    n = xt.shape[0]
    if not isinstance(k, int) or not 1 <= k < n:
        raise ValueError(f"k must be an integer in [1, n_samples − 1] = [1, {n - 1}]; got {k!r}")

    def prep(t):
        if metric == "cosine":
            norms = t.norm(dim=1, keepdim=True)
            if bool((norms == 0).any()):
                raise ValueError(
                    "cosine k-NN needs non-zero rows; some rows are all zeros "
                    "(use metric='euclidean')"
                )
            return t / norms
        return t - t.mean(0)

    xs, ys = prep(xt), prep(yt)
    total = 0.0
    for i in range(0, n, tile_size):
        idx = []
        for t in (xs, ys):
            score = (
                t[i : i + tile_size] @ t.T
                if metric == "cosine"
                else -sq_distances(t[i : i + tile_size], t)
            )
            rows = torch.arange(score.shape[0])
            score[rows, rows + i] = -math.inf  # a sample is not its own neighbour
            idx.append(score.topk(k, dim=1).indices)
        total += float((idx[0][:, :, None] == idx[1][:, None, :]).any(-1).sum())
    return total / (n * k)


def principal_angles(x, y, k: int = 10) -> np.ndarray:
    """Principal angles (radians, ascending) between the top-k PCA subspaces of x and y.

    The top-k principal directions of each centred representation span U_X, U_Y
    (p × k, orthonormal); cos θᵢ are the singular values of U_Xᵀ U_Y (Björck & Golub
    1973).  Needs p = q (the same coordinate system, e.g. one layer before and after
    fine-tuning).  Accepts arrays or :class:`~repspace.statistics.FeatureMoments`.
    When a side's numerical rank is below k its top-k subspace is not determined (some of
    its directions are round-off): the angles are NaN with an ``UndefinedMetricWarning``.
    """
    if isinstance(x, FeatureMoments) and isinstance(y, FeatureMoments):
        return principal_angles_from_moments(x.centred(), y.centred(), k)
    xt, yt = _checked(x, "x"), _checked(y, "y")
    same_width(xt, yt, "principal angles")
    check_k(k, xt.shape[1], min(xt.shape[0], yt.shape[0]))

    def top(t):
        tc = (t - t.mean(0)).cpu().numpy()
        return np.linalg.svd(tc, full_matrices=False)[2][:k].T

    undetermined = undetermined_angles(k, numerical_rank(xt), numerical_rank(yt))
    return undetermined if undetermined is not None else angles_between(top(xt), top(yt))


def subspace_overlap(x, y, k: int = 10) -> float:
    """Mean cos² of the principal angles between top-k PCA subspaces, in [0, 1].

    1 = same subspace, k/p ≈ chance for random subspaces.  Equals ‖U_Xᵀ U_Y‖²_F / k.
    """
    return overlap_of_angles(principal_angles(x, y, k))
