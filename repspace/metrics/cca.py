"""CCA, SVCCA and PWCCA between paired representations (the array-level API).

Shapes: ``x`` is (n, p) features of the base model, ``y`` is (n, q) features of the tuned
model for the *same* n inputs in the same order.  The numbers are the closed forms of
:mod:`repspace.closed_forms.cca` (see there for the formulas, the rank rule and the ridge):
computed in float64 whatever the input dtype, from the held rows when n is small against the
widths and from the exact centred moments (accumulated in row chunks, memory flat in n)
otherwise — the same number either way, and the same as streaming the rows through
:class:`~repspace.statistics.LayerwiseMoments` and calling
:func:`~repspace.closed_forms.cca.cca_from_moments`.

Invariances (of ρ̄, R²_CCA and SVCCA with the default numerical rank): translation, any
invertible linear map of either side (so orthogonal maps, isotropic scaling and feature
permutations too), and a permutation of the samples applied to both sides.  SVCCA with a
fixed k or a variance threshold is invariant to orthogonal maps and isotropic scaling but not
to every invertible map (it changes which principal directions are kept); PWCCA's weights
are ℓ₁ norms over features, so it is invariant to feature permutations and isotropic scaling
but not to rotations.

References: Hotelling 1936; Raghu et al., NeurIPS 2017; Morcos et al., NeurIPS 2018;
Kornblith et al., ICML 2019 — see :mod:`repspace.closed_forms.cca`.
"""

from __future__ import annotations

import numpy as np
import torch

from repspace._validation import as_matrix, check_finite, check_min_rows, check_paired
from repspace.closed_forms.cca import (
    CCAResult,
    PWCCAResult,
    cca_from_moments,
    cca_from_rows,
    pwcca_from_moments,
    pwcca_from_rows,
    svcca_from_moments,
    svcca_from_rows,
)
from repspace.closed_forms.centred import CentredRows
from repspace.closed_forms.rows import sample_space
from repspace.metrics.cka import one_call_chunk_rows
from repspace.statistics.layerwise import PairedMoments

__all__ = ["CCAResult", "PWCCAResult", "cca", "centred_pair", "pwcca", "svcca"]


def _rows(t: torch.Tensor) -> CentredRows:
    d = t.double()
    mean = d.mean(0)
    return CentredRows(
        n=d.shape[0],
        mean=mean,
        rows=d - mean,
        constant=d.amax(0) == d.amin(0),
        eps=float(np.finfo(np.float64).eps),
    )


def centred_pair(x, y, what: str):
    """Validated ``(cx, cy, cxy)``: centred rows and ``cxy = None`` when n is small against
    the widths, else the exact centred moments in float64 (rows streamed in chunks)."""
    xt, yt = as_matrix(x, "x"), as_matrix(y, "y")
    check_paired(xt, yt)
    check_finite(xt, "x")
    check_finite(yt, "y")
    n, p, q = xt.shape[0], xt.shape[1], yt.shape[1]
    check_min_rows(n, 2, what)
    if sample_space(n, p, q):
        return _rows(xt), _rows(yt), None
    acc = PairedMoments(precision="float64", paired_drift=False, route="moments")
    chunk = one_call_chunk_rows(max(p, q), 8)
    for start in range(0, n, chunk):
        acc.update(xt[start : start + chunk], yt[start : start + chunk])
    return acc.x.centred(), acc.y.centred(), acc.xy.centred(acc.x, acc.y)


def cca(x, y, *, ridge: float = 0.0, rank: int | None = None) -> CCAResult:
    """Canonical correlations of paired representations (Hotelling 1936).

    Returns a :class:`~repspace.closed_forms.cca.CCAResult`: ``.mean`` is the mean CCA ρ̄,
    ``.r2`` is R²_CCA (Kornblith et al. 2019), ``.correlations`` all m = min(rank_x, rank_y)
    canonical correlations, and the ranks, selection rule and ridge used.

    Parameters
    ----------
    x : array or tensor, shape (n, p)
    y : array or tensor, shape (n, q)
    ridge : float ≥ 0, default 0 (no regularisation)
        Adds ``ridge`` × the mean feature variance to every eigenvalue of each side's
        covariance (canonical ridge): shrinks the correlations, ρ(ridge) ≤ ρ(0).
    rank : int, optional
        Keep the top ``rank`` principal directions of each side; default: each side's
        numerical rank (singular values above σ₁·√(p·ε)), which drops only round-off.

    When rank_x + rank_y > n − 1 (n not ≫ p + q) some correlations are 1 by construction:
    the result's ``saturated`` counts them and a ``RepspaceWarning`` says so.
    """
    cx, cy, cxy = centred_pair(x, y, "CCA")
    if cxy is None:
        return cca_from_rows(cx, cy, ridge=ridge, rank=rank)
    return cca_from_moments(cx, cy, cxy, ridge=ridge, rank=rank)


def svcca(
    x, y, *, k: int | None = None, variance: float | None = 0.99, ridge: float = 0.0
) -> CCAResult:
    """SVCCA (Raghu et al. 2017): CCA of each side's top principal directions.

    ``k`` directions per side when given, else the fewest explaining ``variance`` (default
    0.99) of each side's variance.  ``.mean`` is the SVCCA similarity; ``rank_x`` /
    ``rank_y`` the directions kept.
    """
    cx, cy, cxy = centred_pair(x, y, "SVCCA")
    if cxy is None:
        return svcca_from_rows(cx, cy, k=k, variance=variance, ridge=ridge)
    return svcca_from_moments(cx, cy, cxy, k=k, variance=variance, ridge=ridge)


def pwcca(
    x, y, *, weights_from: str = "x", ridge: float = 0.0, rank: int | None = None
) -> PWCCAResult:
    """Projection-weighted CCA (Morcos et al. 2018): Σ αᵢ ρᵢ.

    αᵢ ∝ Σⱼ |⟨hᵢ, xⱼ⟩|, hᵢ the unit canonical variates of the side ``weights_from``
    (``"x"``, default: the base; ``"y"``; ``"smaller"``: the narrower side, as Google's
    reference code), xⱼ its centred features.  Not symmetric in x and y.
    """
    cx, cy, cxy = centred_pair(x, y, "PWCCA")
    if cxy is None:
        return pwcca_from_rows(cx, cy, weights_from=weights_from, ridge=ridge, rank=rank)
    return pwcca_from_moments(cx, cy, cxy, weights_from=weights_from, ridge=ridge, rank=rank)
