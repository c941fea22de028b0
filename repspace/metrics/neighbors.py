"""Neighbourhood similarity of paired representations: Jaccard k-NN and CKNNA.

Sample-based (n × n similarities, computed in row tiles, never stored): run them on a
bounded row sample.  A sample is never its own neighbour; ties between equal similarities
are broken by ``torch.topk``.

* :func:`jaccard_knn` (Klabunde et al. 2023 survey; ReSi's ``JaccardSimilarity``): the
  mean over samples of |N_X(i) ∩ N_Y(i)| / |N_X(i) ∪ N_Y(i)| for the k nearest neighbours;
  in [0, 1].  :func:`repspace.metrics.mutual_knn_overlap` is |∩| / k of the same sets.
* :func:`cknna` (Huh et al. 2024, "Platonic Representation Hypothesis", their ``cknna``):
  CKA restricted to mutual neighbours.  With K = XXᵀ, L = YYᵀ (rows scaled to unit norm
  first, as platonic-rep's ``compute_score(normalize=True)`` does), Mᵢⱼ = 1 when j is among
  the k nearest (largest Kᵢⱼ, j ≠ i) of i in X *and* in Y, and HSIC₁ Song et al.'s unbiased
  estimator (with platonic-rep's Σ K̃ ∘ L̃ᵀ for the trace term; the masked kernels are not
  symmetric)::

      CKNNA = HSIC₁(M∘K, M∘L) / √(HSIC₁(M_K∘K, M_K∘K) · HSIC₁(M_L∘L, M_L∘L))

  (M_K, M_L: each side's own k-NN mask).  platonic-rep adds 1e-6 to the denominator; repspace
  does not (NaN with a warning when it is not positive).  Not symmetric in x and y: the
  masked kernels are not symmetric, so 1ᵀÃB̃1 ≠ 1ᵀB̃Ã1.  M has at most k entries a row, so
  the HSIC terms are sums over n·k entries.

Invariances (cosine neighbourhoods): orthogonal maps and isotropic scaling of either side,
feature permutations, and a permutation of the samples applied to both sides; not
translation (cosines change).  ``jaccard_knn(metric="euclidean")`` is also translation
invariant.
"""

from __future__ import annotations

import math

import torch

from repspace._validation import as_matrix, check_finite, check_paired, warn_undefined
from repspace.closed_forms.kernels import sq_distances

__all__ = ["cknna", "jaccard_knn", "knn_indices"]

KNN_METRICS = ("cosine", "euclidean")


def _checked_pair(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    xt, yt = as_matrix(x, "x"), as_matrix(y, "y")
    check_paired(xt, yt)
    check_finite(xt, "x")
    check_finite(yt, "y")
    return xt.double(), yt.double()


def _check_k(k, n: int, minimum: int = 1) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not minimum <= k < n:
        raise ValueError(
            f"k must be an integer in [{minimum}, n_samples − 1] = [{minimum}, {n - 1}]; got {k!r}"
        )


def _unit_rows(t: torch.Tensor, name: str) -> torch.Tensor:
    norms = t.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError(
            f"cosine neighbours need non-zero rows; {int((norms == 0).sum())} row(s) "
            f"of {name} are all zeros (use metric='euclidean')"
        )
    return t / norms


def knn_indices(
    t: torch.Tensor, k: int, metric: str = "cosine", tile_size: int = 1024, name: str = "x"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(indices, scores)``, both (n, k): each row's k nearest other rows, nearest first.

    ``scores`` are the cosine similarities (``"cosine"``), minus the squared Euclidean
    distances (``"euclidean"``) or the raw inner products (``"inner"``: neighbours by the
    largest xᵢ·xⱼ, CKNNA's rule); float64 tiles of ``tile_size`` rows.
    """
    t = t.double()
    if metric == "cosine":
        t = _unit_rows(t, name)
    elif metric == "euclidean":
        t = t - t.mean(0)
    n = t.shape[0]
    idx, val = [], []
    for i in range(0, n, tile_size):
        score = (
            -sq_distances(t[i : i + tile_size], t)
            if metric == "euclidean"
            else (t[i : i + tile_size] @ t.T)
        )
        rows = torch.arange(score.shape[0], device=t.device)
        score[rows, rows + i] = -math.inf  # a sample is not its own neighbour
        top = score.topk(k, dim=1)
        idx.append(top.indices)
        val.append(top.values)
    return torch.cat(idx), torch.cat(val)


def jaccard_knn(x, y, k: int = 10, metric: str = "cosine", tile_size: int = 1024) -> float:
    """Mean Jaccard index of the k-NN sets of each sample in x (n, p) and y (n, q).

    mean_i |N_X(i) ∩ N_Y(i)| / |N_X(i) ∪ N_Y(i)| ∈ [0, 1] (1: the same neighbourhoods);
    ``metric`` ``"cosine"`` (ReSi's default) or ``"euclidean"``.  Time O(n²(p + q)).
    """
    if metric not in KNN_METRICS:
        raise ValueError(f"metric must be one of {', '.join(KNN_METRICS)}; got {metric!r}")
    xt, yt = _checked_pair(x, y)
    n = xt.shape[0]
    _check_k(k, n)
    ix, _ = knn_indices(xt, k, metric, tile_size, "x")
    iy, _ = knn_indices(yt, k, metric, tile_size, "y")
    shared = (ix[:, :, None] == iy[:, None, :]).any(-1).sum(1).double()
    return float((shared / (2 * k - shared)).mean())


def _masked_hsic(
    rows: torch.Tensor, cols: torch.Tensor, kv: torch.Tensor, lv: torch.Tensor, n: int
) -> float:
    """Unbiased HSIC₁ (Song et al. 2012, eq. 5) of A = M∘K and B = M∘L given M's entries
    (rows, cols) with K and L there; diagonal entries are absent (never neighbours).

    tr(ÃB̃ᵀ) = Σ over entries whose transpose is also an entry; 1ᵀÃB̃1 = (Ãᵀ1)·(B̃1).
    """
    keys = rows * n + cols
    mutual = torch.isin(keys, cols * n + rows)
    trace = float((kv * lv)[mutual].sum())
    col_a = torch.zeros(n, dtype=torch.float64, device=kv.device).index_add_(0, cols, kv)
    row_b = torch.zeros(n, dtype=torch.float64, device=kv.device).index_add_(0, rows, lv)
    value = (
        trace
        + float(kv.sum()) * float(lv.sum()) / ((n - 1) * (n - 2))
        - 2.0 * float(col_a @ row_b) / (n - 2)
    )
    return value / (n * (n - 3))


def _entries(mask: torch.Tensor, idx: torch.Tensor):
    rows = torch.arange(idx.shape[0], device=idx.device)[:, None].expand_as(idx)
    return rows[mask], idx[mask]


def _pair_values(t: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    return (t[rows] * t[cols]).sum(1)


def cknna(x, y, k: int = 10, *, normalize: bool = True, tile_size: int = 1024) -> float:
    """CKNNA (Huh et al. 2024): CKA on the mutual k-nearest-neighbour graph.

    x (n, p), y (n, q) paired rows; ``normalize`` scales each row to unit norm first (as
    platonic-rep's scoring does; neighbours are then cosine neighbours).  See the module
    docstring for the formula.  Needs n ≥ 4 and 2 ≤ k < n (platonic-rep's bounds).
    Returns a float ≤ 1 (it can be negative); NaN with an ``UndefinedMetricWarning`` when a
    self term is not positive.
    """
    xt, yt = _checked_pair(x, y)
    n = xt.shape[0]
    if n < 4:
        raise ValueError(f"CKNNA needs at least 4 samples (rows); got {n}")
    _check_k(k, n, minimum=2)
    if normalize:
        xt, yt = _unit_rows(xt, "x"), _unit_rows(yt, "y")
    # neighbours by the largest inner product Kᵢⱼ (cosine once the rows are unit norm)
    ix, kx = knn_indices(xt, k, "inner", tile_size, "x")
    iy, ly = knn_indices(yt, k, "inner", tile_size, "y")
    all_k = torch.ones_like(ix, dtype=torch.bool)
    rk, ck = _entries(all_k, ix)
    rl, cl = _entries(all_k, iy)
    h_kk = _masked_hsic(rk, ck, kx.flatten(), kx.flatten(), n)
    h_ll = _masked_hsic(rl, cl, ly.flatten(), ly.flatten(), n)
    common = (ix[:, :, None] == iy[:, None, :]).any(-1)
    r, c = _entries(common, ix)
    h_kl = _masked_hsic(r, c, kx[common], _pair_values(yt, r, c), n)
    if not h_kk * h_ll > 0:
        return warn_undefined(
            "CKNNA is undefined: a self term HSIC(M∘K, M∘K) is not positive "
            "(too few neighbours or a degenerate representation)"
        )
    return h_kl / math.sqrt(h_kk * h_ll)
