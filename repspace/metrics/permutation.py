"""Calibrated similarity: a permutation null for linear CKA.

CKA between a base and a tuned representation is high for almost any pair of models that
share an input (a random network's features already correlate with the input), so the raw
value says little about *correspondence*.  The permutation test asks how large CKA would be
if the pairing of rows carried no information: Y's rows are shuffled, y_i → y_π(i), and
CKA is recomputed for ``n_permutations`` random π.

Exactness and cost.  With centred rows Xc (n×p), Yc (n×q), kᵢ = ‖xcᵢ‖², lᵢ = ‖ycᵢ‖² and the
linear Grams K = XcXcᵀ, L = YcYcᵀ, permuting the rows of Y (P the permutation matrix)
leaves Yc centred and changes only two quantities:

    s(π)  = ‖Xcᵀ P Yc‖²_F = tr(K P L Pᵀ) = Σᵢⱼ Kᵢⱼ L_π(i)π(j)
    kl(π) = Σᵢ kᵢ l_π(i)

The self terms (‖XcᵀXc‖_F, ‖YcᵀYc‖_F, Σk, Σk², …) are permutation invariant and computed
once.  Biased CKA(π) = s(π) / (‖XcᵀXc‖_F‖YcᵀYc‖_F); debiased CKA(π) has the numerator
n(n−3)·HSIC₁ = s(π) − kl(π) + ΣkΣl/((n−1)(n−2)) − 2·kl(π)/(n−2) (with centred rows
1ᵀK̃1 = −Σk and K̃1 = −k), over the unchanged HSIC₁ self terms.  Each permutation costs
either one gather of the n×n Gram L (``method="gram"``, O(n²)) or one (n×p)ᵀ(n×q) product
(``method="features"``, O(npq)); ``"auto"`` takes the cheaper, counting a gathered Gram
entry as ~300 GEMM multiply-adds (measured on CPU: n = 1000, p = q = 384 runs the GEMM
route twice as fast), so the Gram route is used when 300·n < p·q and n ≤ 8192 (where L
takes 512 MiB).  Everything is float64.

Under the null the mean is known exactly: for centred Grams, E_π[s(π)] = tr K · tr L / (n − 1),
so the biased null mean is tr K tr L / ((n − 1)‖K‖_F‖L‖_F); the sampled ``null_mean``
estimates it (the tests check that).

p-value (Phipson & Smyth 2010; the permutation p-value never 0):

    p = (1 + #{b : CKA(π_b) ≥ CKA_obs}) / (1 + B)

Null values within 1e-10 of the observed value count as ≥ (ties, e.g. the identity
permutation, are not lost to round-off).  z = (CKA_obs − mean_null) / std_null with the
B − 1 standard deviation.  Invariant, like CKA itself, to orthogonal transforms, isotropic
scaling and translation of either side (the null distribution is the same for the same
``seed``, to round-off).

References: Kornblith et al. (ICML 2019) for CKA; Phipson & Smyth, "Permutation P-values
Should Never Be Zero", SAGMB 2010.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from repspace._validation import (
    UndefinedMetricWarning,
    as_matrix,
    check_finite,
    check_min_rows,
    check_paired,
)

__all__ = ["CKAPermutationResult", "cka_permutation_test", "GRAM_MAX_ROWS", "TIE_TOLERANCE"]

GRAM_MAX_ROWS = 8192  # the Gram route keeps one n×n float64 matrix (and one gathered copy)
TIE_TOLERANCE = 1e-10  # null values this close to the observed CKA count as ties (≥)
_METHODS = ("auto", "gram", "features")


@dataclass(frozen=True)
class CKAPermutationResult:
    """Linear CKA with its permutation null.

    ``observed``: CKA of the given pairing; ``null``: CKA under ``n_permutations`` random
    re-pairings (array, in the order drawn); ``null_mean``, ``null_std`` (B − 1);
    ``p_value`` = (1 + #{null ≥ observed}) / (1 + B); ``z_score`` = (observed − mean) / std
    (NaN when the null has no spread).  ``method``: "gram" or "features" (the route used).
    """

    observed: float
    null_mean: float
    null_std: float
    p_value: float
    z_score: float
    n_permutations: int
    debiased: bool
    method: str
    null: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, float]:
        """The scalar fields (for tables and JSON)."""
        return {
            "observed": self.observed,
            "null_mean": self.null_mean,
            "null_std": self.null_std,
            "p_value": self.p_value,
            "z_score": self.z_score,
            "n_permutations": self.n_permutations,
        }


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}; got {value!r}")
    return int(value)


def _undefined(what: str, n_permutations: int, debiased: bool, method: str) -> CKAPermutationResult:
    warnings.warn(what, UndefinedMetricWarning, stacklevel=3)
    nan = math.nan
    return CKAPermutationResult(
        nan, nan, nan, nan, nan, n_permutations, debiased, method, np.full(n_permutations, nan)
    )


def cka_permutation_test(
    x, y, n_permutations: int = 1000, seed: int = 0, debiased: bool = False, method: str = "auto"
) -> CKAPermutationResult:
    """Linear CKA of paired rows and its null distribution under shuffled pairing.

    Parameters
    ----------
    x : array or tensor, shape (n, p) — base features
    y : array or tensor, shape (n, q) — tuned features of the same n inputs, same order
    n_permutations : int ≥ 1
        B, the number of random re-pairings (the smallest attainable p-value is 1/(B+1)).
    seed : int
        Seeds ``numpy.random.default_rng``; the b-th permutation is the b-th
        ``rng.permutation(n)``, so the same seed gives the same null for any ``method``.
    debiased : bool
        Debiased CKA (HSIC₁; needs n ≥ 4) for the observed value and the null alike.
    method : {"auto", "gram", "features"}
        How each permuted cross term is computed (see the module notes); same numbers.

    Returns
    -------
    :class:`CKAPermutationResult`; all NaN with an ``UndefinedMetricWarning`` when either
    side is constant.
    """
    n_permutations = _check_int("n_permutations", n_permutations, 1)
    seed = _check_int("seed", seed, 0)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(_METHODS)}; got {method!r}")
    xt, yt = as_matrix(x, "x"), as_matrix(y, "y")
    check_paired(xt, yt)
    what = "debiased linear CKA" if debiased else "linear CKA"
    check_min_rows(xt.shape[0], 4 if debiased else 3, f"a permutation test of {what}")
    check_finite(xt, "x")
    check_finite(yt, "y")
    n, p, q = xt.shape[0], xt.shape[1], yt.shape[1]
    if method == "auto":
        method = "gram" if n <= GRAM_MAX_ROWS and 300 * n < p * q else "features"
    if method == "gram" and n > GRAM_MAX_ROWS:
        raise ValueError(
            f"method='gram' keeps an n×n Gram matrix; n = {n} > {GRAM_MAX_ROWS} rows: "
            "use method='features' (or 'auto')"
        )
    xc = xt.double().cpu()
    yc = yt.double().cpu()
    xc = xc - xc.mean(0)
    yc = yc - yc.mean(0)
    k = (xc * xc).sum(1)
    l = (yc * yc).sum(1)
    sxx = float(((xc.T @ xc) ** 2).sum())
    syy = float(((yc.T @ yc) ** 2).sum())
    if sxx == 0.0 or syy == 0.0:
        side = "x (base)" if sxx == 0.0 else "y (tuned)"
        return _undefined(
            f"{what} is undefined: {side} is constant (zero variance in every "
            "feature); check that the layer produces varying outputs",
            n_permutations,
            debiased,
            method,
        )

    if method == "gram":
        kg, lg = xc @ xc.T, yc @ yc.T

        def cross(perm: torch.Tensor) -> float:
            return float((kg * lg[perm][:, perm]).sum())
    else:

        def cross(perm: torch.Tensor) -> float:
            return float(((xc.T @ yc[perm]) ** 2).sum())

    if debiased:
        k1, l1 = float(k.sum()), float(l.sum())
        k2, l2 = float((k * k).sum()), float((l * l).sum())
        const = k1 * l1 / ((n - 1) * (n - 2))

        def hsic(s2: float, kl: float, c: float) -> float:  # n(n−3)·HSIC₁
            return (s2 - kl) + c - 2.0 * kl / (n - 2)

        hxx = hsic(sxx, k2, k1 * k1 / ((n - 1) * (n - 2)))
        hyy = hsic(syy, l2, l1 * l1 / ((n - 1) * (n - 2)))
        if not hxx > 0 or not hyy > 0:
            return _undefined(
                f"{what} is undefined: an HSIC₁ self term is not positive "
                f"(n = {n} rows of a nearly constant representation)",
                n_permutations,
                debiased,
                method,
            )
        denom = math.sqrt(hxx * hyy)

        def cka(perm: torch.Tensor | None) -> float:
            if perm is None:
                return hsic(cross_identity, float((k * l).sum()), const) / denom
            return hsic(cross(perm), float((k * l[perm]).sum()), const) / denom
    else:
        denom = math.sqrt(sxx * syy)

        def cka(perm: torch.Tensor | None) -> float:
            return (cross_identity if perm is None else cross(perm)) / denom

    cross_identity = float(((xc.T @ yc) ** 2).sum())
    observed = cka(None)
    rng = np.random.default_rng(seed)
    null = np.empty(n_permutations)
    for b in range(n_permutations):
        null[b] = cka(torch.from_numpy(rng.permutation(n)))
    exceed = int(np.count_nonzero(null >= observed - TIE_TOLERANCE))
    p_value = (1 + exceed) / (1 + n_permutations)
    mean = float(null.mean())
    std = float(null.std(ddof=1)) if n_permutations > 1 else math.nan
    if math.isfinite(std) and std > 0:
        z = (observed - mean) / std
    else:
        warnings.warn(
            f"the z-score of the {what} permutation test is undefined: the null "
            f"distribution has no spread ({n_permutations} permutation(s)); use more "
            "permutations or more rows",
            UndefinedMetricWarning,
            stacklevel=2,
        )
        z = math.nan
    return CKAPermutationResult(
        observed, mean, std, p_value, z, n_permutations, debiased, method, null
    )
