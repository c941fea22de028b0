"""Intrinsic dimension of one representation from nearest-neighbour distances.

Sample-based (n × n distances in row tiles, never stored): run it on a bounded row sample,
base and tuned alike, and compare them as a ratio tuned / base like the ranks.  Euclidean
distances; a neighbour's distance is recomputed as ‖xᵢ − xⱼ‖ once the neighbours are chosen,
so close pairs do not lose digits to the ‖a‖² + ‖b‖² − 2a·b form.

* :func:`twonn_dimension` — TwoNN (Facco, d'Errico, Rodriguez, Laio, Sci. Rep. 2017): with
  r₁ ≤ r₂ a point's two nearest-neighbour distances, μ = r₂/r₁ follows a Pareto law
  F(μ) = 1 − μ^{−d}.  Sort the N ratios, keep the smallest ⌊N(1 − discard_fraction)⌋
  (default: drop the largest 10 %, the paper's heuristic) and fit the line through the
  origin of −log(1 − F_emp(μ₍ᵢ₎)) = d·log μ₍ᵢ₎ with F_emp(μ₍ᵢ₎) = i/N (``fit="linear"``,
  the paper's estimator and scikit-dimension's default; the largest ratio, F_emp = 1, is never
  on the line, so ``discard_fraction=0`` fits N − 1 points), or take the maximum-likelihood
  d = (k − 1)/(Σ_{i≤k} log μ₍ᵢ₎ + (N − k) log μ₍ₖ₎) of the censored sample (``fit="mle"``,
  scikit-dimension's ``method="mle"``; with no discard, (N − 1)/Σ log μ, DADApy's ``ml``).
* :func:`mle_dimension` — Levina & Bickel (NeurIPS 2004) with the MacKay & Ghahramani
  (2005) correction, as scikit-dimension's ``MLE()`` defaults compute it: per point, with
  T₁ ≤ … ≤ T_k its k nearest-neighbour distances,
  m̂ᵢ = (k − 1) / Σ_{j<k} log(T_k / T_j) (``unbiased=True``: k − 2), and the estimate
  averages the *inverses*, d = 1 / mean(1/m̂ᵢ) (MacKay–Ghahramani), not m̂ᵢ (Levina–Bickel's
  plain average, biased upwards).  Default k = 20 (scikit-dimension's).

Points with a zero nearest-neighbour distance (duplicates) have no defined ratio: they are
dropped, counted in the result's ``dropped`` and announced with a ``RepspaceWarning``.
Both estimates are invariant to translation, orthogonal maps and isotropic scaling of the
representation and to permuting its samples; not to anisotropic scaling.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from repspace._validation import RepspaceWarning, as_matrix, check_finite
from repspace.closed_forms.kernels import sq_distances

__all__ = [
    "ESTIMATORS",
    "IntrinsicDimension",
    "mle_dimension",
    "neighbour_distances",
    "report_jobs",
    "twonn_dimension",
]


@dataclass(frozen=True)
class IntrinsicDimension:
    """An intrinsic-dimension estimate: ``dimension``, the ``method`` (``"twonn"`` /
    ``"mle"``) and its settings (``fit``, ``discard_fraction`` or ``k``), the points used
    (``n_used``) and the duplicates ``dropped``."""

    dimension: float
    method: str
    n_used: int
    dropped: int
    k: int | None = None
    fit: str | None = None
    discard_fraction: float | None = None

    def __float__(self) -> float:
        return self.dimension


def neighbour_distances(t: torch.Tensor, k: int, tile_size: int = 1024) -> np.ndarray:
    """Distances (n, k) from each row to its k nearest other rows, ascending, float64."""
    t = t.double()
    t = t - t.mean(0)
    n = t.shape[0]
    out = []
    for i in range(0, n, tile_size):
        block = t[i : i + tile_size]
        d2 = sq_distances(block, t)
        rows = torch.arange(block.shape[0], device=t.device)
        d2[rows, rows + i] = math.inf  # a point is not its own neighbour
        idx = d2.topk(k, dim=1, largest=False).indices
        exact = torch.linalg.vector_norm(block[:, None, :] - t[idx], dim=2)
        out.append(exact.sort(dim=1).values)
    return torch.cat(out).cpu().numpy()


def _checked(x, minimum: int, what: str) -> torch.Tensor:
    t = as_matrix(x, "x")
    check_finite(t, "x")
    if t.shape[0] < minimum:
        raise ValueError(f"{what} needs at least {minimum} samples (rows); got {t.shape[0]}")
    return t


def _drop_duplicates(r1: np.ndarray, what: str) -> np.ndarray:
    dup = r1 == 0
    if dup.any():
        warnings.warn(
            f"{what}: dropped {int(dup.sum())} point(s) whose nearest neighbour is at "
            "distance 0 (duplicate samples)",
            RepspaceWarning,
            stacklevel=3,
        )
    return ~dup


def twonn_dimension(
    x, *, discard_fraction: float = 0.1, fit: str = "linear", tile_size: int = 1024
) -> IntrinsicDimension:
    """TwoNN intrinsic dimension (Facco et al. 2017) of x (n, p); see the module docstring.

    ``discard_fraction`` in [0, 1): the share of largest ratios μ left out of the fit;
    ``fit``: ``"linear"`` (the paper's) or ``"mle"``.
    """
    if fit not in ("linear", "mle"):
        raise ValueError(f"fit must be 'linear' or 'mle'; got {fit!r}")
    if (
        isinstance(discard_fraction, bool)
        or not isinstance(discard_fraction, (int, float))
        or not 0.0 <= discard_fraction < 1.0
    ):
        raise ValueError(f"discard_fraction must be in [0, 1); got {discard_fraction!r}")
    t = _checked(x, 3, "TwoNN")
    d = neighbour_distances(t, 2, tile_size)
    keep = _drop_duplicates(d[:, 0], "TwoNN")
    mu = np.sort(d[keep, 1] / d[keep, 0])
    n_pts = mu.size
    n_keep = int(n_pts * (1.0 - discard_fraction))
    if n_keep < 2:
        raise ValueError(
            f"TwoNN needs at least 2 ratios after discarding; {n_pts} point(s) "
            f"and discard_fraction={discard_fraction} leave {n_keep}"
        )
    log_mu = np.log(mu[:n_keep])
    if fit == "mle":
        dim = (n_keep - 1) / (log_mu.sum() + (n_pts - n_keep) * log_mu[-1])
    else:
        # the largest ratio has F_emp = 1, an infinite ordinate: never on the line
        fit_n = min(n_keep, n_pts - 1)
        y = -np.log(1.0 - np.arange(1, fit_n + 1) / n_pts)
        dim = float(log_mu[:fit_n] @ y / (log_mu[:fit_n] @ log_mu[:fit_n]))
    return IntrinsicDimension(
        float(dim), "twonn", n_pts, int((~keep).sum()), None, fit, float(discard_fraction)
    )


def mle_dimension(
    x, k: int = 20, *, unbiased: bool = False, tile_size: int = 1024
) -> IntrinsicDimension:
    """Levina–Bickel MLE of the intrinsic dimension of x (n, p) with the MacKay–Ghahramani
    average of inverses (see the module docstring); ``k`` neighbours per point (≥ 2, or ≥ 3
    with ``unbiased``), k < n."""
    minimum = 3 if unbiased else 2
    t = _checked(x, minimum + 1, "MLE intrinsic dimension")
    n = t.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not minimum <= k < n:
        raise ValueError(
            f"k must be an integer in [{minimum}, n_samples − 1] = [{minimum}, {n - 1}]; got {k!r}"
        )
    d = neighbour_distances(t, k, tile_size)
    keep = _drop_duplicates(d[:, 0], "MLE intrinsic dimension")
    d = d[keep]
    logs = np.log(d[:, -1:] / d[:, :-1]).sum(1)  # Σ_{j<k} log(T_k / T_j)
    inverse = logs / (k - 2 if unbiased else k - 1)  # 1 / m̂ᵢ
    dim = 1.0 / inverse.mean() if inverse.mean() > 0 else math.inf
    return IntrinsicDimension(float(dim), "mle", int(d.shape[0]), int((~keep).sum()), k)


# the report's estimators (registry keys ``<name>_dimension_{base,tuned,ratio}``), defaults as above
ESTIMATORS = {"twonn": twonn_dimension, "mle": mle_dimension}


def report_jobs(x, y) -> dict:
    """``{report key: callable}`` for the intrinsic dimensions of a compare's row samples x
    (base) and y (tuned): each estimator's base and tuned values and their ratio tuned / base
    (read like the effective-rank ratio: 1 = unchanged).  Each side is estimated once, however
    many keys ask for it; a side that cannot be estimated raises its ``ValueError`` from every
    key that needs it, so the caller records each such key as undefined."""
    done: dict[tuple[str, str], float] = {}

    def side(est: str, name: str) -> float:
        if (est, name) not in done:
            done[est, name] = ESTIMATORS[est](x if name == "base" else y).dimension
        return done[est, name]

    def ratio(est: str) -> float:
        b, t = side(est, "base"), side(est, "tuned")
        if not (math.isfinite(b) and math.isfinite(t) and b > 0):
            raise ValueError(
                f"{est} dimension ratio needs finite positive dimensions; got "
                f"base {b!r}, tuned {t!r}"
            )
        return t / b

    jobs = {}
    for est in ESTIMATORS:
        for name in ("base", "tuned"):
            jobs[f"{est}_dimension_{name}"] = lambda e=est, s=name: side(e, s)
        jobs[f"{est}_dimension_ratio"] = lambda e=est: ratio(e)
    return jobs
