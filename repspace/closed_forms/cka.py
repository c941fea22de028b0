"""Linear CKA from centred moments (closed forms; see :func:`repspace.metrics.linear_cka`)."""

from __future__ import annotations

from repspace._validation import check_min_rows, warn_undefined
from repspace.closed_forms.centred import CentredCross, CentredFeature
from repspace.closed_forms.kernels import cka_from_hsic

__all__ = ["linear_cka_from_moments", "linear_cka_from_sums", "constant_side"]


def _hsic1_times_norm(s2: float, kl: float, k1: float, l1: float, n: int) -> float:
    """n(n−3)·HSIC₁ for the linear kernel from moments about the mean (see module notes).

    With centred rows (Σx = Σy = 0), kᵢ = ‖xᵢ‖², lᵢ = ‖yᵢ‖²:
    tr(K̃L̃) = ‖XᵀY‖²_F − Σkl, 1ᵀK̃1 = −Σk, 1ᵀL̃1 = −Σl, 1ᵀK̃L̃1 = Σkl.
    """
    return (s2 - kl) + k1 * l1 / ((n - 1) * (n - 2)) - 2.0 * kl / (n - 2)


def linear_cka_from_sums(
    sxy: float,
    sxx: float,
    syy: float,
    kl: float,
    kk: float,
    ll: float,
    k1: float,
    l1: float,
    n: int,
    debiased: bool = False,
) -> float:
    """Linear CKA from the sums both routes produce (``what`` the moments or the Grams hold).

    ``sxy = ‖XcᵀYc‖²_F = tr(K L)``, ``sxx = ‖XcᵀXc‖²_F = tr(K K)``, ``syy``; with
    kᵢ = ‖xcᵢ‖², lᵢ = ‖ycᵢ‖²: ``kl = Σkl``, ``kk = Σk²``, ``ll = Σl²``, ``k1 = Σk``, ``l1 = Σl``.
    """
    what = "debiased linear CKA" if debiased else "linear CKA"
    if not debiased:
        return cka_from_hsic(sxy, sxx, syy, what)
    check_min_rows(n, 4, what)
    hxy = _hsic1_times_norm(sxy, kl, k1, l1, n)
    hxx = _hsic1_times_norm(sxx, kk, k1, k1, n)
    hyy = _hsic1_times_norm(syy, ll, l1, l1, n)
    return cka_from_hsic(hxy, hxx, hyy, what)


def constant_side(cx, cy, what: str) -> float | None:
    """NaN with a warning when a side is constant (CKA undefined), else None."""
    if cx.is_constant or cy.is_constant:
        side = "x (base)" if cx.is_constant else "y (tuned)"
        return warn_undefined(
            f"{what} is undefined: {side} is constant (zero variance in "
            "every feature); check that the layer produces varying outputs"
        )
    return None


def linear_cka_from_moments(
    cx: CentredFeature, cy: CentredFeature, cxy: CentredCross, debiased: bool = False
) -> float:
    """Linear CKA from centred streaming statistics (exact; see :func:`linear_cka`)."""
    undefined = constant_side(cx, cy, "debiased linear CKA" if debiased else "linear CKA")
    if undefined is not None:
        return undefined
    return linear_cka_from_sums(
        float((cxy.scatter**2).sum()),
        float((cx.scatter**2).sum()),
        float((cy.scatter**2).sum()),
        float(cxy.kl),
        float(cx.k2),
        float(cy.k2),
        float(cx.k1),
        float(cy.k1),
        cx.n,
        debiased,
    )
