"""Representational similarity analysis (RSA): correlate the two representational
dissimilarity matrices (RDMs) of paired representations.

Sample-based (n × n): run it on a bounded row sample.  For samples i < j (the upper
triangle, each pair once, the diagonal left out)::

    RDM_X[i, j] = d(xᵢ, xⱼ),   RSA = corr(RDM_X[i<j], RDM_Y[i<j])

with d one of

* ``"correlation"``: 1 − Pearson r of the two samples' activation patterns (each row
  centred across its features; rsatoolbox's and ReSi's ``correlation``);
* ``"euclidean"``: ‖xᵢ − xⱼ‖ (scipy's ``pdist`` convention; rsatoolbox's ``euclidean`` is
  the squared distance divided by p, which leaves Spearman unchanged but not Pearson);
* ``"cosine"``: 1 − cos(xᵢ, xⱼ);

and corr Spearman's ρ (Pearson of the average ranks, ties averaged as in
``scipy.stats.spearmanr``; Kriegeskorte et al. 2008's choice, the default) or Pearson's r.

Invariances: permutation of the samples (both sides together), permutation of the features,
isotropic scaling of either side (all three distances), orthogonal maps of either side
(``euclidean``, ``cosine``), translation of either side (``euclidean``).  ``correlation``
is not invariant to rotations, nor ``cosine`` to translations.  Spearman's ρ is also
invariant to any increasing transform of the dissimilarities.

``permutations=k`` adds a permutation test of H₀: no relation between the RDMs, permuting the
samples of y (rows and columns of its RDM together, Mantel 1967)::

    p = (1 + #{RSA_perm ≥ RSA_obs}) / (1 + k)

one-sided (similarity is the alternative) and never 0 (Phipson & Smyth 2010); its
resolution, the smallest p it can give, is 1/(1 + k).  Seeded: ``seed`` fixes the
permutations.

References: Kriegeskorte, Mur, Bandettini. Representational similarity analysis —
connecting the branches of systems neuroscience. Front. Syst. Neurosci. 2008.
Mantel. The detection of disease clustering and a generalized regression approach. Cancer
Research 1967.  Nili et al. A toolbox for representational similarity analysis (rsatoolbox).
PLoS Comput. Biol. 2014.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata

from repspace._validation import (
    as_matrix,
    check_finite,
    check_min_rows,
    check_paired,
    warn_undefined,
)
from repspace.closed_forms.distances import distances

__all__ = ["DISTANCES", "RSA_METHODS", "RSAResult", "rdm", "rsa"]

DISTANCES = ("correlation", "euclidean", "cosine")
RSA_METHODS = ("spearman", "pearson")


@dataclass(frozen=True)
class RSAResult:
    """RSA ``value`` (a correlation in [−1, 1]), its permutation ``p_value`` (None without
    permutations), ``permutations``, the p-value's ``resolution`` 1/(1 + permutations),
    ``method``, ``distance`` and ``n`` (samples)."""

    value: float
    p_value: float | None
    permutations: int
    resolution: float | None
    method: str
    distance: str
    n: int

    def __float__(self) -> float:
        return self.value


def _unit_rows(t: torch.Tensor, name: str, what: str) -> torch.Tensor:
    norms = t.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        bad = int((norms == 0).sum())
        why = "no variance across features" if what == "correlation" else "zero norm"
        raise ValueError(
            f"the {what} distance is undefined for {bad} row(s) of {name} with "
            f"{why}; use distance='euclidean'"
        )
    return t / norms


def _rdm(t: torch.Tensor, distance: str, name: str) -> torch.Tensor:
    t = t.double()
    if distance == "euclidean":
        t = t - t.mean(0)  # distances are shift-free; this helps round-off
        d = distances(t, t)
    else:
        if distance == "correlation":
            t = t - t.mean(1, keepdim=True)
        u = _unit_rows(t, name, distance)
        d = 1.0 - u @ u.T
    d.fill_diagonal_(0.0)
    return d


def _check_distance(distance) -> None:
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {', '.join(DISTANCES)}; got {distance!r}")


def rdm(x, distance: str = "correlation") -> np.ndarray:
    """The n × n representational dissimilarity matrix of x (n, p), float64, zero diagonal."""
    _check_distance(distance)
    t = as_matrix(x, "x")
    check_finite(t, "x")
    return _rdm(t, distance, "x").cpu().numpy()


def _standardised(v: np.ndarray) -> np.ndarray | None:
    v = v - v.mean()
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else None


def rsa(
    x,
    y,
    *,
    distance: str = "correlation",
    method: str = "spearman",
    permutations: int = 0,
    seed: int = 0,
) -> RSAResult:
    """Correlation of the RDMs of paired representations x (n, p) and y (n, q).

    See the module docstring for the distances, the correlation and the permutation test.
    Needs n ≥ 3 (at least two distinct pairs).  NaN with an ``UndefinedMetricWarning`` when
    all dissimilarities of a side are equal.  Time O(n²(p + q) + permutations · n²).
    """
    _check_distance(distance)
    if method not in RSA_METHODS:
        raise ValueError(f"method must be one of {', '.join(RSA_METHODS)}; got {method!r}")
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 0:
        raise ValueError(f"permutations must be a non-negative integer; got {permutations!r}")
    xt, yt = as_matrix(x, "x"), as_matrix(y, "y")
    check_paired(xt, yt)
    check_finite(xt, "x")
    check_finite(yt, "y")
    n = xt.shape[0]
    check_min_rows(n, 3, "RSA")
    iu = np.triu_indices(n, 1)
    dx = _rdm(xt, distance, "x").cpu().numpy()
    dy = _rdm(yt, distance, "y").cpu().numpy()
    vx, vy = dx[iu], dy[iu]
    if method == "spearman":
        vx, vy = rankdata(vx), rankdata(vy)
    a, b = _standardised(vx), _standardised(vy)
    resolution = 1.0 / (1 + permutations) if permutations else None
    if a is None or b is None:
        side = "x" if a is None else "y"
        nan = warn_undefined(f"RSA is undefined: every dissimilarity of {side} is the same")
        return RSAResult(nan, None, permutations, resolution, method, distance, n)
    value = float(np.clip(a @ b, -1.0, 1.0))
    p_value = None
    if permutations:
        # Permuting y's samples permutes its RDM's rows and columns: the (ranked,
        # standardised) entries move, their mean and norm do not, so each permuted
        # correlation is one gather and one dot product.
        full = np.zeros((n, n))
        full[iu] = b
        full = full + full.T
        gen = np.random.default_rng(seed)
        exceed = 0
        for _ in range(permutations):
            perm = gen.permutation(n)
            exceed += int(a @ full[perm[iu[0]], perm[iu[1]]] >= value - 1e-12)
        p_value = (1 + exceed) / (1 + permutations)
    return RSAResult(value, p_value, permutations, resolution, method, distance, n)
