"""CCA, SVCCA and PWCCA (issue 29): against cca-zoo and independent formulas, moments ==
rows == array == streaming, their invariances and what they are not invariant to."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repspace._validation import RepspaceWarning, UndefinedMetricWarning
from repspace.closed_forms.cca import (
    cca_from_moments,
    cca_from_rows,
    pwcca_from_moments,
    pwcca_from_rows,
    svcca_from_moments,
    svcca_from_rows,
)
from repspace.metrics.cca import cca, pwcca, svcca
from repspace.statistics import LayerwiseMoments
from tests.metrics import reference as ref


# -- independent references (plain numpy, sample space) -----------------------------------
def orthonormal_basis(a, rank=None):
    """Orthonormal basis of the column space of the centred a (its top `rank` PCs)."""
    ac = a - a.mean(0)
    u, s, _ = np.linalg.svd(ac, full_matrices=False)
    r = int((s > s[0] * 1e-10).sum()) if rank is None else rank
    return u[:, :r], s[:r]


def canonical_correlations(x, y, rank=None):
    ux, _ = orthonormal_basis(x, rank)
    uy, _ = orthonormal_basis(y, rank)
    return np.linalg.svd(ux.T @ uy, compute_uv=False)


def inv_sqrt(m):
    w, v = np.linalg.eigh(m)
    return (v / np.sqrt(w)) @ v.T


def ridge_correlations(x, y, c):
    """Singular values of (Sxx + κI)^{-½} Sxy (Syy + κI)^{-½}, κ = c·tr(S)/p, written out."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    sxx, syy, sxy = xc.T @ xc, yc.T @ yc, xc.T @ yc
    kx, ky = c * np.trace(sxx) / x.shape[1], c * np.trace(syy) / y.shape[1]
    m = inv_sqrt(sxx + kx * np.eye(len(sxx))) @ sxy @ inv_sqrt(syy + ky * np.eye(len(syy)))
    return np.linalg.svd(m, compute_uv=False)


def pwcca_google_style(x, y):
    """Morcos et al.'s weighting as Google's pwcca.py computes it (covariances, pinv square
    roots, canonical directions orthonormalised by QR, |projections| summed over neurons),
    written independently, on centred inputs and with the weights from x."""
    xc, yc = (x - x.mean(0)).T, (y - y.mean(0)).T  # neurons × datapoints, as theirs
    p = xc.shape[0]
    cov = np.cov(xc, yc)
    sxx, sxy, syy = cov[:p, :p], cov[:p, p:], cov[p:, p:]
    ix, iy = inv_sqrt(sxx), inv_sqrt(syy)
    u, s, _ = np.linalg.svd(ix @ sxy @ iy)
    m = min(p, yc.shape[0])
    dirns = u.T[:m] @ ix @ xc  # canonical variates of x, (m × datapoints)
    pq, _ = np.linalg.qr(dirns.T)
    weights = np.abs(pq.T @ xc.T).sum(1)
    weights /= weights.sum()
    return float(weights @ s[:m])


def well_conditioned_pair(rng, n, p, q, noise=0.5, offset=0.0):
    """x with condition number ~1–3 and y a noisy linear image of it: route agreement is
    ε·κ² of the kept directions, so the 1e-10 checks use conditioned data."""
    a = np.eye(p) + 0.3 * rng.standard_normal((p, p)) / math.sqrt(p)
    x = rng.standard_normal((n, p)) @ a
    y = (x - x.mean(0)) @ rng.standard_normal((p, q)) / math.sqrt(p) + noise * rng.standard_normal(
        (n, q)
    )
    return x + offset, y - offset


def streamed(x, y, route, cuts):
    acc = LayerwiseMoments(precision="float64", route=route)
    for a, b in zip(cuts[:-1], cuts[1:]):
        acc.update({"l": x[a:b]}, {"l": y[a:b]})
    bx, ty = acc.base["l"], acc.tuned["l"]
    if route == "rows":
        return bx.centred(), ty.centred(), None
    return bx.centred(), ty.centred(), acc.cross["l", "l"].centred(bx, ty)


# -- peers and references ------------------------------------------------------------------
def test_canonical_correlations_match_cca_zoo():
    cca_zoo = pytest.importorskip("cca_zoo.linear")
    rng = np.random.default_rng(0)
    worst = 0.0
    for n, p, q in ((300, 6, 4), (120, 5, 5), (80, 3, 7)):
        x, y = ref.correlated_pair(rng, n, p, q, noise=0.8)
        m = min(p, q)
        model = cca_zoo.CCA(n_components=m).fit([x, y])
        zx, zy = model.transform([x, y])
        theirs = np.array([np.corrcoef(zx[:, i], zy[:, i])[0, 1] for i in range(m)])
        ours = cca(x, y).correlations
        worst = max(worst, float(np.abs(ours - np.abs(theirs)).max()))
    assert worst < 1e-10, worst  # cca-zoo whitens on its own: 4e-14 here


@pytest.mark.parametrize("n,p,q", [(200, 5, 4), (60, 12, 9), (30, 4, 20)])
def test_cca_matches_principal_angles_of_the_column_spaces(n, p, q):
    rng = np.random.default_rng(n + p)
    x, y = ref.correlated_pair(rng, n, p, q, noise=0.5)
    got = cca(x, y)
    want = canonical_correlations(x, y)
    np.testing.assert_allclose(got.correlations, want, atol=1e-10)
    assert got.mean == pytest.approx(want.mean(), abs=1e-12)
    assert got.r2 == pytest.approx((want**2).mean(), abs=1e-12)
    assert (got.rank_x, got.rank_y, got.selection, got.ridge, got.saturated) == (
        p,
        q,
        "numerical rank",
        0.0,
        0,
    )


@pytest.mark.parametrize("c", [0.01, 0.5, 10.0])
def test_ridge_is_the_canonical_ridge_and_shrinks(c):
    rng = np.random.default_rng(3)
    x, y = ref.correlated_pair(rng, 100, 6, 5, noise=0.5)
    got = cca(x, y, ridge=c)
    np.testing.assert_allclose(got.correlations, ridge_correlations(x, y, c)[:5], atol=1e-12)
    assert got.ridge == c
    assert np.all(got.correlations <= cca(x, y).correlations + 1e-12)


def test_svcca_is_cca_of_the_top_principal_directions():
    rng = np.random.default_rng(4)
    x, y = ref.correlated_pair(rng, 150, 10, 8, noise=0.3)
    got = svcca(x, y, k=4)
    want = canonical_correlations(x, y, rank=4)
    np.testing.assert_allclose(got.correlations, want, atol=1e-10)
    assert (got.rank_x, got.rank_y, got.selection) == (4, 4, "top-4")
    # by explained variance: the fewest leading directions reaching the share, per side
    for v in (0.5, 0.9, 0.99):
        res = svcca(x, y, variance=v)
        for a, r in ((x, res.rank_x), (y, res.rank_y)):
            s2 = np.linalg.svd(a - a.mean(0), compute_uv=False) ** 2
            share = np.cumsum(s2) / s2.sum()
            assert r == int(np.argmax(share >= v)) + 1
        ux, uy = orthonormal_basis(x, res.rank_x)[0], orthonormal_basis(y, res.rank_y)[0]
        assert res.mean == pytest.approx(
            np.linalg.svd(ux.T @ uy, compute_uv=False).mean(), abs=1e-10
        )
    assert svcca(x, y, k=4).mean == cca(x, y, rank=4).mean


def test_pwcca_matches_googles_weighting_and_its_definition():
    rng = np.random.default_rng(5)
    worst = 0.0
    for n, p, q in ((200, 4, 6), (90, 6, 6), (150, 3, 9)):
        x, y = ref.correlated_pair(rng, n, p, q, noise=0.7)
        got = pwcca(x, y)
        worst = max(worst, abs(got.value - pwcca_google_style(x, y)))
        # the definition: αᵢ ∝ Σⱼ |⟨hᵢ, xⱼ⟩| with hᵢ the unit canonical variates of x
        ux, _ = orthonormal_basis(x)
        uy, _ = orthonormal_basis(y)
        a, rho, _ = np.linalg.svd(ux.T @ uy, full_matrices=False)
        h = ux @ a[:, : len(rho)]
        alpha = np.abs(h.T @ (x - x.mean(0))).sum(1)
        np.testing.assert_allclose(got.weights, alpha / alpha.sum(), atol=1e-10)
        assert got.weights_from == "x" and got.weights.sum() == pytest.approx(1.0)
    assert worst < 1e-10, worst
    # from y, and "smaller" picks the narrower side
    x, y = ref.correlated_pair(rng, 100, 7, 4, noise=0.7)
    assert pwcca(x, y, weights_from="smaller").weights_from == "y"
    assert pwcca(x, y, weights_from="smaller").value == pwcca(x, y, weights_from="y").value
    assert pwcca(x, y, weights_from="y").value == pytest.approx(pwcca_google_style(y, x), abs=1e-10)


# -- routes: moments == rows == array == streaming ----------------------------------------
@st.composite
def pairs(draw):
    n = draw(st.integers(5, 40))
    p, q = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x, y = well_conditioned_pair(
        rng,
        n,
        p,
        q,
        noise=draw(st.sampled_from([0.1, 1.0])),
        offset=draw(st.sampled_from([0.0, 7.0, -300.0])),
    )
    cuts = sorted({0, n, *rng.integers(1, n, size=draw(st.integers(0, 3))).tolist()})
    return x, y, cuts


@settings(max_examples=12, deadline=None)
@given(pairs())
def test_moments_rows_array_and_streaming_agree(data):
    """n below, at and above the widths, p ≠ q, any batch split, large offsets: the moments
    streamed in batches, the held rows and the one-call array form give the same numbers."""
    x, y, cuts = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepspaceWarning)
        mx, my, mxy = streamed(x, y, "moments", cuts)
        rx, ry, _ = streamed(x, y, "rows", cuts)
        k = min(3, x.shape[1], y.shape[1])
        for kw in ({}, {"ridge": 0.1}, {"rank": k}):
            a, b = cca_from_moments(mx, my, mxy, **kw), cca_from_rows(rx, ry, **kw)
            c = cca(x, y, **kw)
            assert (a.rank_x, a.rank_y) == (b.rank_x, b.rank_y) == (c.rank_x, c.rank_y)
            for u, v in ((a, b), (a, c)):
                np.testing.assert_allclose(u.correlations, v.correlations, rtol=0, atol=1e-10)
                assert u.r2 == pytest.approx(v.r2, abs=1e-10)
        for kw in ({"k": k}, {"variance": 0.9}):
            vals = (
                svcca_from_moments(mx, my, mxy, **kw).mean,
                svcca_from_rows(rx, ry, **kw).mean,
                svcca(x, y, **kw).mean,
            )
            assert max(vals) - min(vals) <= 1e-10, (kw, vals)
        pw = (pwcca_from_moments(mx, my, mxy), pwcca_from_rows(rx, ry), pwcca(x, y))
        if pw[0].cca.saturated == 0:  # saturated: a block of equal ρ = 1, weights ambiguous
            assert max(r.value for r in pw) - min(r.value for r in pw) <= 1e-10


# -- invariances ---------------------------------------------------------------------------
@st.composite
def full_rank_pair(draw):
    n = draw(st.integers(30, 60))
    p, q = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x, y = well_conditioned_pair(rng, n, p, q, noise=1.0)
    return x, y, rng


@settings(max_examples=15, deadline=None)
@given(full_rank_pair())
def test_cca_invariant_to_invertible_maps_translation_and_sample_order(data):
    x, y, rng = data
    base = cca(x, y)
    a = ref.random_orthogonal(x.shape[1], rng) @ np.diag(rng.uniform(0.3, 3.0, x.shape[1]))
    moved = 50.0 * x @ a + rng.standard_normal(x.shape[1]) * 100
    np.testing.assert_allclose(cca(moved, y - 3.0).correlations, base.correlations, atol=1e-9)
    perm = rng.permutation(len(x))
    assert cca(x[perm], y[perm]).mean == pytest.approx(base.mean, abs=1e-10)
    assert cca(y, x).mean == pytest.approx(base.mean, abs=1e-10)
    assert 0.0 <= base.mean <= 1.0 and base.r2 <= base.mean + 1e-12
    assert cca(x, x).mean == pytest.approx(1.0, abs=1e-10)


def test_cca_is_not_invariant_to_breaking_the_pairing():
    rng = np.random.default_rng(6)
    x, y = well_conditioned_pair(rng, 80, 3, 3, noise=0.2)
    assert cca(x, y).mean > 0.9
    assert cca(x, y[rng.permutation(80)]).mean < 0.5


@settings(max_examples=10, deadline=None)
@given(full_rank_pair())
def test_svcca_with_fixed_k_invariant_to_rotation_scale_and_translation(data):
    x, y, rng = data
    p = x.shape[1]
    k = max(1, min(p, y.shape[1]) - 1)
    base = svcca(x, y, k=k).mean
    q = ref.random_orthogonal(p, rng)
    assert svcca(7.0 * x @ q + 1.0, y, k=k).mean == pytest.approx(base, abs=1e-9)


def test_svcca_not_invariant_to_anisotropic_scaling():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((200, 4)) * np.array([5.0, 4.0, 1.0, 0.5])
    y = x[:, 2:] + 0.1 * rng.standard_normal((200, 2))  # y follows x's weak directions
    stretched = x * np.array([1.0, 1.0, 20.0, 20.0])  # ... which now lead x's spectrum
    assert svcca(x, y, k=2).mean < 0.2
    assert svcca(stretched, y, k=2).mean > 0.95
    assert cca(x, y).mean == pytest.approx(cca(stretched, y).mean, abs=1e-12)


def test_pwcca_invariant_to_feature_permutation_and_scale_not_to_rotation():
    rng = np.random.default_rng(8)
    x, y = ref.correlated_pair(rng, 200, 5, 4, noise=1.0)
    base = pwcca(x, y).value
    assert pwcca(3.0 * x[:, rng.permutation(5)] + 2.0, y).value == pytest.approx(base, abs=1e-10)
    rotated = pwcca(x @ ref.random_orthogonal(5, rng), y).value
    assert abs(rotated - base) > 1e-4  # ℓ₁ weights over neurons depend on the basis


# -- rank handling: no silent regularisation ----------------------------------------------
def test_saturation_is_counted_and_announced():
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((12, 30)), rng.standard_normal((12, 20))  # independent, p > n
    with pytest.warns(
        RepspaceWarning,
        match=r"saturated: the ranks kept \(11 \+ 11\) exceed "
        r"n − 1 = 11, so 11 canonical",
    ):
        res = cca(x, y)
    assert res.saturated == 11 and res.mean == pytest.approx(1.0, abs=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RepspaceWarning)
        small = svcca(x, y, k=3)  # 3 + 3 ≤ 11: no warning, a real number
        ridged = cca(x, y, ridge=1.0)  # counted, not announced: the ridge is the remedy
    assert small.saturated == 0 and small.mean < 0.9
    assert ridged.saturated == 11 and ridged.mean < 1.0 and ridged.ridge == 1.0


def test_collinear_features_keep_the_numerical_rank():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((100, 3))
    wide = np.hstack([x, x @ rng.standard_normal((3, 5))])  # 8 features of rank 3
    y = x @ rng.standard_normal((3, 4)) + rng.standard_normal((100, 4))
    res = cca(wide, y)
    assert res.rank_x == 3
    np.testing.assert_allclose(res.correlations, cca(x, y).correlations, atol=1e-10)
    with pytest.warns(RepspaceWarning, match="rank=4 exceeds the numerical rank 3 of x"):
        capped = cca(wide, y, rank=4)
    assert (capped.rank_x, capped.rank_y, capped.selection) == (3, 4, "top-4")


def test_constant_side_is_undefined():
    rng = np.random.default_rng(11)
    with pytest.warns(UndefinedMetricWarning, match="CCA is undefined: x"):
        res = cca(np.ones((10, 3)), rng.standard_normal((10, 2)))
    assert math.isnan(res.mean) and math.isnan(res.r2) and res.rank_x == 0
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(pwcca(np.ones((10, 3)), rng.standard_normal((10, 2))).value)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"ridge": -1.0}, "ridge must be a finite number ≥ 0"),
        ({"ridge": float("nan")}, "ridge must be"),
        ({"rank": 0}, "rank must be a positive integer"),
        ({"rank": 2.5}, "rank must be a positive integer"),
    ],
)
def test_arguments_are_checked(kwargs, match):
    x = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match=match):
        cca(x, x, **kwargs)


def test_svcca_and_pwcca_arguments_are_checked():
    x = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match=r"variance must be a fraction in \(0, 1\]"):
        svcca(x, x, variance=1.5)
    with pytest.raises(ValueError, match="SVCCA needs k"):
        svcca(x, x, variance=None)
    with pytest.raises(ValueError, match="weights_from must be one of x, y, smaller"):
        pwcca(x, x, weights_from="z")
    with pytest.raises(ValueError, match="5 rows but y has 6"):
        cca(x[:5], x[:6])


def test_one_eigendecomposition_per_side_can_serve_every_measure():
    from repspace.closed_forms.cca import bases_of_moments
    from repspace.closed_forms.shape import shape_metric_from_moments

    rng = np.random.default_rng(12)
    x, y = ref.correlated_pair(rng, 120, 6, 5, noise=0.5)
    cx, cy, cxy = streamed(x, y, "moments", [0, 50, 120])
    bases = bases_of_moments(cx, cy)
    np.testing.assert_array_equal(
        cca_from_moments(cx, cy, cxy, bases=bases).correlations,
        cca_from_moments(cx, cy, cxy).correlations,
    )
    assert (
        svcca_from_moments(cx, cy, cxy, k=3, bases=bases).mean
        == svcca_from_moments(cx, cy, cxy, k=3).mean
    )
    assert (
        pwcca_from_moments(cx, cy, cxy, bases=bases).value == pwcca_from_moments(cx, cy, cxy).value
    )
    assert shape_metric_from_moments(
        cx, cy, cxy, alpha=0.5, bases=bases
    ) == shape_metric_from_moments(cx, cy, cxy, alpha=0.5)
    with pytest.raises(ValueError, match=r"bases are for widths \(5, 6\)"):
        cca_from_moments(cx, cy, cxy, bases=bases[::-1])
