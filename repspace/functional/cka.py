"""Linear CKA from centred moments (closed forms; see :func:`repspace.metrics.linear_cka`)."""
from __future__ import annotations

from repspace._validation import check_min_rows, warn_undefined
from repspace.functional.centred import CentredCross, CentredFeature
from repspace.functional.kernels import cka_from_hsic

__all__ = ["linear_cka_from_moments"]


def _hsic1_times_norm(s2: float, kl: float, k1: float, l1: float, n: int) -> float:
    """n(n−3)·HSIC₁ for the linear kernel from moments about the mean (see module notes).

    With centred rows (Σx = Σy = 0), kᵢ = ‖xᵢ‖², lᵢ = ‖yᵢ‖²:
    tr(K̃L̃) = ‖XᵀY‖²_F − Σkl, 1ᵀK̃1 = −Σk, 1ᵀL̃1 = −Σl, 1ᵀK̃L̃1 = Σkl.
    """
    return (s2 - kl) + k1 * l1 / ((n - 1) * (n - 2)) - 2.0 * kl / (n - 2)


def linear_cka_from_moments(cx: CentredFeature, cy: CentredFeature, cxy: CentredCross,
                            debiased: bool = False) -> float:
    """Linear CKA from centred streaming statistics (exact; see :func:`linear_cka`)."""
    what = "debiased linear CKA" if debiased else "linear CKA"
    if cx.is_constant or cy.is_constant:
        side = "x (base)" if cx.is_constant else "y (tuned)"
        return warn_undefined(f"{what} is undefined: {side} is constant (zero variance in "
                              "every feature); check that the layer produces varying outputs")
    sxy = float((cxy.scatter ** 2).sum())
    sxx = float((cx.scatter ** 2).sum())
    syy = float((cy.scatter ** 2).sum())
    if not debiased:
        return cka_from_hsic(sxy, sxx, syy, what)
    n = cx.n
    check_min_rows(n, 4, what)
    hxy = _hsic1_times_norm(sxy, float(cxy.kl), float(cx.k1), float(cy.k1), n)
    hxx = _hsic1_times_norm(sxx, float(cx.k2), float(cx.k1), float(cx.k1), n)
    hyy = _hsic1_times_norm(syy, float(cy.k2), float(cy.k1), float(cy.k1), n)
    return cka_from_hsic(hxy, hxx, hyy, what)
