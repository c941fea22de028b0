"""RSA (issue 29): against rsatoolbox and scipy, the permutation test against a brute-force
Mantel test, invariances per distance and the non-invariances each distance should show."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist, squareform
from scipy.stats import pearsonr, spearmanr

from repspace._validation import UndefinedMetricWarning
from repspace.metrics.rsa import rdm, rsa
from tests.metrics import reference as ref


def related(rng, n=25, p=6, q=4, noise=0.5):
    x = rng.standard_normal((n, p))
    return x, x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))


def scipy_rsa(x, y, distance, method):
    """Condensed pdist vectors (the i < j pairs) correlated by scipy."""
    dx, dy = pdist(x, distance), pdist(y, distance)
    return (spearmanr(dx, dy) if method == "spearman" else pearsonr(dx, dy))[0]


@pytest.mark.parametrize(
    "distance,method,theirs",
    [
        ("correlation", "spearman", "spearman"),
        ("correlation", "pearson", "corr"),
        ("euclidean", "spearman", "spearman"),
    ],
)
def test_matches_rsatoolbox(distance, method, theirs):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(0)
    worst = 0.0
    for n, p, q in ((25, 6, 4), (40, 10, 10), (12, 3, 8)):
        x, y = related(rng, n, p, q)
        rdms = [
            rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(a), method=distance) for a in (x, y)
        ]
        want = rsatoolbox.rdm.compare(rdms[0], rdms[1], method=theirs)[0, 0]
        worst = max(worst, abs(rsa(x, y, distance=distance, method=method).value - want))
    assert worst < 1e-12, worst


@pytest.mark.parametrize("distance", ["correlation", "euclidean", "cosine"])
@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_matches_scipy_pdist(distance, method):
    """rsatoolbox's euclidean is ‖·‖²/p (same ranks, different Pearson) and it has no
    cosine: scipy's pdist, which repspace follows, is the reference for those."""
    rng = np.random.default_rng(1)
    x, y = related(rng, 30, 7, 5)
    assert rsa(x, y, distance=distance, method=method).value == pytest.approx(
        scipy_rsa(x, y, distance, method), abs=1e-12
    )
    np.testing.assert_allclose(rdm(x, distance), squareform(pdist(x, distance)), atol=1e-12)


def test_permutation_p_value_is_a_mantel_test():
    rng = np.random.default_rng(2)
    x, y = related(rng, 15, 4, 4, noise=2.0)
    got = rsa(x, y, permutations=200, seed=7)
    # brute force with the same permutations: y's samples reordered, its RDM recomputed
    gen = np.random.default_rng(7)
    obs = scipy_rsa(x, y, "correlation", "spearman")
    null = [scipy_rsa(x, y[gen.permutation(15)], "correlation", "spearman") for _ in range(200)]
    assert got.value == pytest.approx(obs, abs=1e-12)
    assert got.p_value == pytest.approx((1 + np.sum(np.array(null) >= obs - 1e-12)) / 201)
    assert got.resolution == pytest.approx(1 / 201) and got.permutations == 200
    assert rsa(x, y, permutations=200, seed=7).p_value == got.p_value  # seeded
    strong = rsa(x, x @ rng.standard_normal((4, 4)), permutations=99)
    assert strong.p_value == pytest.approx(0.01)  # the resolution: no permutation beats it
    independent = [
        rsa(
            rng.standard_normal((15, 4)), rng.standard_normal((15, 4)), permutations=49, seed=s
        ).p_value
        for s in range(20)
    ]
    assert 0.2 < np.mean(independent) < 0.8  # uniform-ish under H₀
    assert rsa(x, y).p_value is None and rsa(x, y).resolution is None


@st.composite
def pair(draw):
    n = draw(st.integers(6, 25))
    # p ≥ 3: with two features every correlation distance is 0 or 2, ties that round-off
    # breaks one way or the other
    p, q = draw(st.integers(3, 6)), draw(st.integers(3, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x, y = ref.correlated_pair(rng, n, p, q, noise=1.0)
    return x, y, rng, draw(st.sampled_from(["spearman", "pearson"]))


@settings(max_examples=15, deadline=None)
@given(pair())
def test_invariances_per_distance(data):
    x, y, rng, method = data
    base = {
        d: rsa(x, y, distance=d, method=method).value
        for d in ("correlation", "euclidean", "cosine")
    }
    perm, feat = rng.permutation(len(x)), rng.permutation(x.shape[1])
    q = ref.random_orthogonal(x.shape[1], rng)
    shift = rng.standard_normal(x.shape[1]) * 10
    for d, v in base.items():
        assert -1 - 1e-12 <= v <= 1 + 1e-12
        assert rsa(x[perm], y[perm], distance=d, method=method).value == pytest.approx(v, abs=1e-9)
        assert rsa(3.5 * x[:, feat], y, distance=d, method=method).value == pytest.approx(
            v, abs=1e-9
        )
        assert rsa(y, x, distance=d, method=method).value == pytest.approx(v, abs=1e-12)
    for d in ("euclidean", "cosine"):
        assert rsa(x @ q, y, distance=d, method=method).value == pytest.approx(base[d], abs=1e-9)
    assert rsa(x + shift, y, distance="euclidean", method=method).value == pytest.approx(
        base["euclidean"], abs=1e-9
    )
    assert rsa(x, x, distance="cosine", method=method).value == pytest.approx(1.0, abs=1e-12)


def test_non_invariances():
    rng = np.random.default_rng(3)
    x, y = related(rng, 30, 6, 6, noise=0.3)
    corr = rsa(x, y).value
    assert abs(rsa(x @ ref.random_orthogonal(6, rng), y).value - corr) > 1e-3
    cos = rsa(x, y, distance="cosine").value
    assert abs(rsa(x + 3.0, y, distance="cosine").value - cos) > 1e-3
    assert rsa(x, y[rng.permutation(30)]).value < corr - 0.2  # pairing matters


def test_undefined_and_arguments():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 3))
    with pytest.warns(UndefinedMetricWarning, match="every dissimilarity of y is the same"):
        # a regular simplex: all pairwise distances equal
        assert math.isnan(rsa(x[:4], np.eye(4), distance="euclidean").value)
    with pytest.raises(ValueError, match="correlation distance is undefined for 1 row"):
        rsa(np.vstack([x, np.full((1, 3), 2.0)]), rng.standard_normal((9, 3)))
    with pytest.raises(ValueError, match="distance must be one of correlation, euclidean, cosine"):
        rsa(x, x, distance="manhattan")
    with pytest.raises(ValueError, match="method must be one of spearman, pearson"):
        rsa(x, x, method="kendall")
    with pytest.raises(ValueError, match="permutations must be a non-negative integer"):
        rsa(x, x, permutations=-1)
    with pytest.raises(ValueError, match="RSA needs at least 3 samples"):
        rsa(x[:2], x[:2])
