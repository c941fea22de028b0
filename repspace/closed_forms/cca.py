"""Canonical correlation analysis (CCA) and its family from centred moments or held rows.

Every quantity here is a function of each side's whitened basis and of the cross block
between them, and both are exact on both routes of :mod:`repspace.statistics.routes`:

    Xc = Uₓ Sₓ Vₓᵀ  (thin SVD; Sₓ = diag(s₁ ≥ … ≥ s_r), r = the rank kept)
    Q  = Uₓᵀ U_y                                     (rₓ × r_y)

    moments route:  Sxx = XcᵀXc = Vₓ Sₓ² Vₓᵀ (eigh of the p × p scatter), and
                    Q = Sₓ⁻¹ Vₓᵀ (XcᵀYc) V_y S_y⁻¹          — no row is needed;
    rows route:     the thin SVD of the held Xc (n × p), Q = Uₓᵀ U_y  — no p × p matrix.

The canonical correlations ρ₁ ≥ … ≥ ρ_m (m = min(rₓ, r_y)) are the singular values of Q,
i.e. the cosines of the principal angles between the column spaces of Xc and Yc
(Björck & Golub 1973): the exact CCA of Hotelling (1936) restricted to the directions kept.

Summaries (Kornblith et al. 2019, §2 "CCA"; Raghu et al. 2017; Morcos et al. 2018)::

    mean CCA    ρ̄  = (1/m) Σ ρᵢ
    R²_CCA      R² = (1/m) Σ ρᵢ²              (Yanai's generalised coefficient of determination)
    SVCCA       ρ̄ after keeping, on each side, the top-k principal directions (k given, or the
                fewest explaining ``variance`` of the total, 0.99 as in Raghu et al.)
    PWCCA       Σ αᵢ ρᵢ with αᵢ ∝ Σⱼ |⟨hᵢ, xⱼ⟩|: hᵢ the i-th canonical variate of X (unit
                norm, n-dimensional), xⱼ the j-th centred feature (column) of X

PWCCA's weights need no rows: Xcᵀhᵢ = Vₓ Sₓ aᵢ with aᵢ the i-th left singular vector of
Q, so αᵢ ∝ ‖Vₓ Sₓ aᵢ‖₁ from the eigendecomposition of XᵀX and from XᵀY.

**Rank.**  By default each side keeps its *numerical rank*: the singular values above
σ₁·√(p·ε), the resolution of an eigendecomposition of the scatter (the rule of
:mod:`repspace.closed_forms.spectrum`, applied on both routes so they keep the same directions).
Dropping directions below the resolution is not regularisation: they are round-off of exact
zeros (collinear features, p > n), which CCA would otherwise whiten into noise.  ε is that of
the GEMMs that built the scatter (float64: ≈4e-7·σ₁ at p = 768; float32 GEMMs ≈1e-2·σ₁, so
accumulate with ``precision="float64"`` for CCA, as ``repspace compare`` does).  ``rank=k``
keeps the top k principal directions of each side instead (which makes CCA into SVCCA).

**Saturation.**  CCA is invariant to any invertible linear map, so when rₓ + r_y > n − 1 the
two column spaces (inside the (n − 1)-dimensional space of centred samples) must share
rₓ + r_y − (n − 1) directions: that many correlations are exactly 1 whatever the data.  The
result counts them (``saturated``) and a :class:`~repspace._validation.RepspaceWarning` says
so; use fewer directions (``rank``, SVCCA) or ``ridge`` where n is not ≫ p + q.

**Ridge.**  ``ridge = c ≥ 0`` adds κ = c · tr(Sxx)/p to every eigenvalue of the scatter
(c times the mean feature variance: a scale- and n-free number; Vinod's canonical ridge).
The correlations are then the singular values of (Sxx + κₓI)^{-½} Sxy (Syy + κ_yI)^{-½} =
diag(wₓ) Q diag(w_y), wᵢ = sᵢ/√(sᵢ² + κ): each direction of variance s² is shrunk by w, so
ρ(c) ≤ ρ(0) and ρ → 0 as c → ∞.  Default c = 0: no regularisation.  Every result records
the ranks, the selection rule and the ridge it used, so a report can say what it computed.

References: Hotelling, Relations between two sets of variates, Biometrika 1936.
Raghu, Gilmer, Yosinski, Sohl-Dickstein, SVCCA, NeurIPS 2017.  Morcos, Raghu, Bengio,
Insights on representational similarity in neural networks with canonical correlation,
NeurIPS 2018 (PWCCA).  Kornblith, Norouzi, Lee, Hinton, ICML 2019 (ρ̄, R²_CCA).  Vinod,
Canonical ridge and econometrics of joint production, J. Econometrics 1976.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from repspace._validation import RepspaceWarning, check_min_rows, warn_undefined
from repspace.closed_forms.centred import CentredCross, CentredFeature, CentredRows, cross_of_rows
from repspace.closed_forms.drift import resolved_count
from repspace.closed_forms.rows import sample_space

__all__ = [
    "CCAResult",
    "PWCCAResult",
    "Basis",
    "basis_of_moments",
    "basis_of_rows",
    "bases_of_moments",
    "whitened_cross_of_moments",
    "whitened_cross_of_rows",
    "cca_from_moments",
    "cca_from_rows",
    "svcca_from_moments",
    "svcca_from_rows",
    "pwcca_from_moments",
    "pwcca_from_rows",
    "pair_of_rows",
    "kept_rank",
    "kept_pair",
    "ridge_weights",
    "check_cca_args",
]

WEIGHTS_FROM = ("x", "y", "smaller")


@dataclass(frozen=True)
class CCAResult:
    """Canonical correlations and what was used to get them.

    ``correlations``: ρ₁ ≥ … ≥ ρ_m, m = min(rank_x, rank_y), in [0, 1]; ``rank_x`` /
    ``rank_y``: directions kept per side; ``selection``: the rule that kept them
    (``"numerical rank"``, ``"top-k"``, ``"variance ≥ v"``); ``ridge``: c (0 = none);
    ``saturated``: correlations that are 1 by construction (rank_x + rank_y > n − 1);
    ``n``: samples.  ``mean`` is ρ̄, ``r2`` is R²_CCA; NaN when a side is constant.
    """

    correlations: np.ndarray = field(repr=False)
    rank_x: int
    rank_y: int
    selection: str
    ridge: float
    saturated: int
    n: int

    @property
    def mean(self) -> float:
        """Mean canonical correlation ρ̄ = Σρᵢ / m."""
        return float(self.correlations.mean()) if self.correlations.size else float("nan")

    @property
    def r2(self) -> float:
        """R²_CCA = Σρᵢ² / m (Yanai's generalised coefficient of determination)."""
        c = self.correlations
        return float((c * c).mean()) if c.size else float("nan")

    def __float__(self) -> float:
        return self.mean


@dataclass(frozen=True)
class PWCCAResult:
    """Projection-weighted CCA: ``value`` = Σ αᵢρᵢ, ``weights`` α (sum 1), the side they
    come from (``weights_from``: ``"x"`` or ``"y"``) and the underlying :class:`CCAResult`."""

    value: float
    weights: np.ndarray = field(repr=False)
    weights_from: str
    cca: CCAResult

    def __float__(self) -> float:
        return self.value


@dataclass
class Basis:
    """One side's principal directions: the kept singular values ``s`` of Xc (descending),
    its right singular vectors ``v`` (p × r), the left ones ``u`` (n × r, rows route only),
    ``total`` = ‖Xc‖²_F = tr(XcᵀXc), the numerical rank ``resolved`` and the width ``dim``."""

    s: np.ndarray
    v: np.ndarray
    u: np.ndarray | None
    total: float
    resolved: int
    dim: int

    def kept(self, r: int) -> "Basis":
        return Basis(
            self.s[:r],
            self.v[:, :r],
            None if self.u is None else self.u[:, :r],
            self.total,
            self.resolved,
            self.dim,
        )


def _eps(c) -> float:
    return max(float(c.eps), float(np.finfo(np.float64).eps))


def basis_of_moments(c: CentredFeature) -> Basis:
    """Eigendecomposition of the scatter XcᵀXc (σ = √λ), cut at its resolution."""
    s = c.scatter.double().cpu().numpy()
    lam, vec = np.linalg.eigh((s + s.T) / 2.0)
    lam, vec = lam[::-1], vec[:, ::-1]
    sv = np.sqrt(np.maximum(lam, 0.0))
    if c.is_constant:
        sv = np.zeros_like(sv)
    r = resolved_count(sv, c.dim, _eps(c))
    return Basis(
        sv[:r].copy(), np.ascontiguousarray(vec[:, :r]), None, float(np.trace(s)), r, c.dim
    )


def basis_of_rows(c: CentredRows) -> Basis:
    """Thin SVD of the held rows Xc (n × p), cut at the moments route's resolution."""
    u, sv, vh = np.linalg.svd(c.rows.double().cpu().numpy(), full_matrices=False)
    if c.is_constant:
        sv = np.zeros_like(sv)
    r = resolved_count(sv, c.dim, _eps(c))
    total = float(c.rows.double().square().sum())
    return Basis(
        sv[:r].copy(),
        np.ascontiguousarray(vh[:r].T),
        np.ascontiguousarray(u[:, :r]),
        total,
        r,
        c.dim,
    )


def whitened_cross_of_moments(bx: Basis, by: Basis, cxy: CentredCross) -> np.ndarray:
    """Q = Sₓ⁻¹ Vₓᵀ (XcᵀYc) V_y S_y⁻¹ (rₓ × r_y) from the cross scatter."""
    sxy = cxy.scatter.double().cpu().numpy()
    return (bx.v.T @ sxy @ by.v) / bx.s[:, None] / by.s[None, :]


def whitened_cross_of_rows(bx: Basis, by: Basis) -> np.ndarray:
    """Q = Uₓᵀ U_y (rₓ × r_y) from the left singular vectors of the held rows."""
    return bx.u.T @ by.u


def _check_rank(rank, what: str) -> None:
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        raise ValueError(
            f"{what}: rank must be a positive integer or None (the numerical rank); got {rank!r}"
        )


def _check_ridge(ridge) -> float:
    if (
        isinstance(ridge, bool)
        or not isinstance(ridge, (int, float))
        or not ridge >= 0
        or not math.isfinite(ridge)
    ):
        raise ValueError(
            f"ridge must be a finite number ≥ 0 (a multiple of the mean feature "
            f"variance; 0 = none); got {ridge!r}"
        )
    return float(ridge)


def _check_variance(variance) -> float:
    if (
        isinstance(variance, bool)
        or not isinstance(variance, (int, float))
        or not 0.0 < variance <= 1.0
    ):
        raise ValueError(f"variance must be a fraction in (0, 1]; got {variance!r}")
    return float(variance)


def kept_rank(b: Basis, side: str, rank: int | None = None, variance: float | None = None) -> int:
    """Directions kept on one side: the numerical rank, the top ``rank`` (at most the
    numerical rank, with a warning when capped) or the fewest explaining ``variance``."""
    if rank is not None:
        if rank > b.resolved:
            warnings.warn(
                f"rank={rank} exceeds the numerical rank {b.resolved} of {side}; "
                f"using {b.resolved} (the other directions are round-off)",
                RepspaceWarning,
                stacklevel=4,
            )
        return min(rank, b.resolved)
    if variance is not None and b.resolved:
        frac = np.cumsum(b.s**2) / b.total if b.total > 0 else np.ones_like(b.s)
        # the fewest leading directions whose share reaches `variance` (all resolved ones
        # when round-off keeps the sum a hair below it)
        return int(min(np.searchsorted(frac, variance * (1 - 1e-12)) + 1, b.resolved))
    return b.resolved


def ridge_weights(b: Basis, ridge: float) -> np.ndarray:
    """wᵢ = sᵢ/√(sᵢ² + κ), κ = ridge · tr(Sxx)/p; ones without ridge."""
    if ridge == 0.0:
        return np.ones_like(b.s)
    kappa = ridge * b.total / b.dim
    return b.s / np.sqrt(b.s**2 + kappa)


def check_cca_args(n: int, ridge, rank, what: str) -> float:
    """Validate the common arguments before any decomposition; the ridge as a float."""
    _check_rank(rank, what)
    check_min_rows(n, 2, what)
    return _check_ridge(ridge)


def _selection(rank, variance) -> str:
    if rank is not None:
        return f"top-{rank}"
    if variance is not None:
        return f"variance ≥ {variance:g}"
    return "numerical rank"


def _correlations(
    bx: Basis, by: Basis, q: np.ndarray, n: int, ridge: float, selection: str, what: str
):
    """(CCAResult, left and right singular vectors of the weighted Q, weights)."""
    rx, ry = bx.s.size, by.s.size
    m = min(rx, ry)
    if m == 0:
        side = "x (base)" if rx == 0 else "y (tuned)"
        warn_undefined(
            f"{what} is undefined: {side} is constant (no direction above the "
            "resolution); check that the layer produces varying outputs"
        )
        empty = np.zeros(0)
        return CCAResult(empty, rx, ry, selection, ridge, 0, n), None, None, None, None
    wx, wy = ridge_weights(bx, ridge), ridge_weights(by, ridge)
    a, rho, bt = np.linalg.svd(wx[:, None] * q * wy[None, :], full_matrices=False)
    rho = np.clip(rho[:m], 0.0, 1.0)  # cosines: round-off can pass 1 by ~1e-15
    saturated = max(0, rx + ry - (n - 1))
    if saturated and ridge == 0.0:
        warnings.warn(
            f"{what} is saturated: the ranks kept ({rx} + {ry}) exceed n − 1 = {n - 1}, so "
            f"{saturated} canonical correlation(s) are 1 whatever the data; keep fewer "
            "directions (rank=, SVCCA) or set ridge=",
            RepspaceWarning,
            stacklevel=4,
        )
    res = CCAResult(rho, rx, ry, selection, ridge, saturated, n)
    return res, a[:, :m], bt[:m].T, wx, wy


def _cca(bx: Basis, by: Basis, q_of, n: int, ridge: float, rank, variance, what: str):
    bx, by, q = kept_pair(bx, by, q_of, rank, variance)
    return (bx, by) + _correlations(bx, by, q, n, ridge, _selection(rank, variance), what)


def bases_of_moments(cx: CentredFeature, cy: CentredFeature) -> tuple[Basis, Basis]:
    """Both sides' :class:`Basis` (one eigendecomposition of each scatter, O(p³ + q³)):
    compute once per layer pair and pass as ``bases=`` to every ``*_from_moments`` measure."""
    return basis_of_moments(cx), basis_of_moments(cy)


def _bases(cx, cy, bases):
    if bases is None:
        return bases_of_moments(cx, cy)
    bx, by = bases
    if bx.dim != cx.dim or by.dim != cy.dim:
        raise ValueError(
            f"bases are for widths ({bx.dim}, {by.dim}), the moments for ({cx.dim}, {cy.dim})"
        )
    return bx, by


def _moments_q(cxy):
    return lambda bx, by: whitened_cross_of_moments(bx, by, cxy)


def cca_from_moments(
    cx: CentredFeature,
    cy: CentredFeature,
    cxy: CentredCross,
    *,
    ridge: float = 0.0,
    rank: int | None = None,
    bases: tuple[Basis, Basis] | None = None,
) -> CCAResult:
    """Canonical correlations of X and Y from their centred moments (exact at any n).

    ``ridge`` (default 0: none) and ``rank`` (default None: each side's numerical rank) are
    described in the module docstring; the result records both.  ``bases``: the two sides'
    :func:`bases_of_moments`, to share one eigendecomposition per side between the measures
    of this module and :mod:`repspace.closed_forms.shape` (computed here when None).
    """
    ridge = check_cca_args(cx.n, ridge, rank, "CCA")
    return _cca(*_bases(cx, cy, bases), _moments_q(cxy), cx.n, ridge, rank, None, "CCA")[2]


def pair_of_rows(cx: CentredRows, cy: CentredRows):
    """``(bx, by, q_of)`` on the cheaper route for held rows: the n-dimensional forms when
    n is small against the widths, else the exact moments of the rows."""
    if sample_space(cx.n, cx.dim, cy.dim):
        return basis_of_rows(cx), basis_of_rows(cy), whitened_cross_of_rows
    return (
        basis_of_moments(cx.to_feature()),
        basis_of_moments(cy.to_feature()),
        _moments_q(cross_of_rows(cx, cy)),
    )


def cca_from_rows(
    cx: CentredRows, cy: CentredRows, *, ridge: float = 0.0, rank: int | None = None
) -> CCAResult:
    """:func:`cca_from_moments` on held rows: the same number (see the module docstring)."""
    ridge = check_cca_args(cx.n, ridge, rank, "CCA")
    return _cca(*pair_of_rows(cx, cy), cx.n, ridge, rank, None, "CCA")[2]


def _svcca_args(k, variance):
    _check_rank(k, "SVCCA")
    if k is None:
        if variance is None:
            raise ValueError("SVCCA needs k (directions per side) or variance (a fraction)")
        variance = _check_variance(variance)
    return k, (None if k is not None else variance)


def svcca_from_moments(
    cx: CentredFeature,
    cy: CentredFeature,
    cxy: CentredCross,
    *,
    k: int | None = None,
    variance: float | None = 0.99,
    ridge: float = 0.0,
    bases: tuple[Basis, Basis] | None = None,
) -> CCAResult:
    """SVCCA (Raghu et al. 2017): CCA of the top principal directions of each side.

    ``k`` directions per side when given, else the fewest explaining ``variance`` of each
    side's total variance (default 0.99, Raghu et al.'s choice); ``result.mean`` is the
    SVCCA similarity, ``rank_x`` / ``rank_y`` the directions kept.  ``bases``: as in
    :func:`cca_from_moments`.
    """
    k, variance = _svcca_args(k, variance)
    ridge = check_cca_args(cx.n, ridge, k, "SVCCA")
    return _cca(*_bases(cx, cy, bases), _moments_q(cxy), cx.n, ridge, k, variance, "SVCCA")[2]


def svcca_from_rows(
    cx: CentredRows,
    cy: CentredRows,
    *,
    k: int | None = None,
    variance: float | None = 0.99,
    ridge: float = 0.0,
) -> CCAResult:
    """:func:`svcca_from_moments` on held rows (the same number)."""
    k, variance = _svcca_args(k, variance)
    ridge = check_cca_args(cx.n, ridge, k, "SVCCA")
    return _cca(*pair_of_rows(cx, cy), cx.n, ridge, k, variance, "SVCCA")[2]


def _pwcca(parts, weights_from: str, p: int, q: int) -> PWCCAResult:
    bx, by, res, a, b, wx, wy = parts
    side = weights_from if weights_from != "smaller" else ("x" if p <= q else "y")
    if a is None:
        return PWCCAResult(float("nan"), np.zeros(0), side, res)
    basis, vecs, w = (bx, a, wx) if side == "x" else (by, b, wy)
    # Canonical variate hᵢ ∝ U diag(w) vecᵢ (unit norm); Xcᵀhᵢ = V diag(s w) vecᵢ / ‖w∘vecᵢ‖.
    proj = basis.v @ ((basis.s * w)[:, None] * vecs)
    alpha = np.abs(proj).sum(0) / np.linalg.norm(w[:, None] * vecs, axis=0)
    alpha = alpha / alpha.sum()
    return PWCCAResult(float(alpha @ res.correlations), alpha, side, res)


def _check_weights_from(weights_from) -> None:
    if weights_from not in WEIGHTS_FROM:
        raise ValueError(
            f"weights_from must be one of {', '.join(WEIGHTS_FROM)}; got {weights_from!r}"
        )


def pwcca_from_moments(
    cx: CentredFeature,
    cy: CentredFeature,
    cxy: CentredCross,
    *,
    weights_from: str = "x",
    ridge: float = 0.0,
    rank: int | None = None,
    bases: tuple[Basis, Basis] | None = None,
) -> PWCCAResult:
    """Projection-weighted CCA (Morcos et al. 2018) from centred moments.

    αᵢ ∝ Σⱼ |⟨hᵢ, xⱼ⟩| over the centred features xⱼ of the side named by ``weights_from``
    (``"x"``, the base, by default: how much of the base representation each canonical
    direction carries; ``"y"``; or ``"smaller"``, the narrower side, as Google's
    ``pwcca.py`` chooses).  Not symmetric in X and Y.  ``bases``: as in
    :func:`cca_from_moments`.
    """
    _check_weights_from(weights_from)
    ridge = check_cca_args(cx.n, ridge, rank, "PWCCA")
    parts = _cca(*_bases(cx, cy, bases), _moments_q(cxy), cx.n, ridge, rank, None, "PWCCA")
    return _pwcca(parts, weights_from, cx.dim, cy.dim)


def pwcca_from_rows(
    cx: CentredRows,
    cy: CentredRows,
    *,
    weights_from: str = "x",
    ridge: float = 0.0,
    rank: int | None = None,
) -> PWCCAResult:
    """:func:`pwcca_from_moments` on held rows (the same number)."""
    _check_weights_from(weights_from)
    ridge = check_cca_args(cx.n, ridge, rank, "PWCCA")
    parts = _cca(*pair_of_rows(cx, cy), cx.n, ridge, rank, None, "PWCCA")
    return _pwcca(parts, weights_from, cx.dim, cy.dim)


def kept_pair(bx: Basis, by: Basis, q_of, rank: int | None = None, variance: float | None = None):
    """Each side cut to its kept rank, and the whitened cross block Q between them (for
    :mod:`repspace.closed_forms.shape`; arguments already checked by :func:`check_cca_args`)."""
    rx = kept_rank(bx, "x (base)", rank, variance)
    ry = kept_rank(by, "y (tuned)", rank, variance)
    bx, by = bx.kept(rx), by.kept(ry)
    return bx, by, (q_of(bx, by) if rx and ry else np.zeros((rx, ry)))
