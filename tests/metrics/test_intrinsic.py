"""Intrinsic dimension (issue 29): TwoNN and the Levina–Bickel MLE against scikit-dimension
and against the formulas written out, known dimensions, invariances, duplicates."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from repspace._validation import RepspaceWarning
from repspace.metrics.intrinsic import mle_dimension, twonn_dimension
from tests.metrics import reference as ref


def sorted_neighbour_distances(x, k):
    d = cdist(x, x)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, :k]


def twonn_formula(x, discard=0.1):
    """Facco et al. 2017: fit −log(1 − i/N) = d·log μ₍ᵢ₎ through the origin on the kept μ."""
    r = sorted_neighbour_distances(x, 2)
    mu = np.sort(r[:, 1] / r[:, 0])
    n = len(mu)
    keep = int(n * (1 - discard))
    xs, ys = np.log(mu[:keep]), -np.log(1 - np.arange(1, keep + 1) / n)
    return float(np.linalg.lstsq(xs[:, None], ys, rcond=None)[0][0])


def mle_formula(x, k):
    """Levina & Bickel's per-point MLE, averaged as MacKay & Ghahramani (inverses)."""
    t = sorted_neighbour_distances(x, k)
    per_point = (k - 1) / np.log(t[:, -1:] / t[:, :-1]).sum(1)
    return float(1.0 / np.mean(1.0 / per_point))


def on_a_subspace(rng, n, d, p, noise=0.0):
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, p)) + noise * rng.standard_normal(
        (n, p)
    )


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # inside skdim, F_emp = 1
def test_matches_scikit_dimension():
    skdim = pytest.importorskip("skdim")
    rng = np.random.default_rng(0)
    worst = 0.0
    for n, d, p in ((300, 3, 10), (200, 5, 5), (150, 2, 40)):
        x = on_a_subspace(rng, n, d, p, noise=0.01)
        pairs = [
            (twonn_dimension(x).dimension, skdim.id.TwoNN().fit(x).dimension_),
            (
                twonn_dimension(x, fit="mle").dimension,
                skdim.id.TwoNN(method="mle").fit(x).dimension_,
            ),
            (
                twonn_dimension(x, discard_fraction=0.0, fit="mle").dimension,
                skdim.id.TwoNN(discard_fraction=0.0, method="mle").fit(x).dimension_,
            ),
            (mle_dimension(x).dimension, skdim.id.MLE().fit(x).dimension_),
            (
                mle_dimension(x, 10, unbiased=True).dimension,
                skdim.id.MLE(unbiased=True).fit(x, n_neighbors=10).dimension_,
            ),
        ]
        worst = max(worst, max(abs(a - b) / b for a, b in pairs))
    assert worst < 1e-10, worst


def test_matches_the_formulas_written_out():
    rng = np.random.default_rng(1)
    x = on_a_subspace(rng, 120, 4, 12, noise=0.05)
    res = twonn_dimension(x)
    assert res.dimension == pytest.approx(twonn_formula(x), rel=1e-12)
    assert (res.method, res.fit, res.discard_fraction, res.n_used, res.dropped) == (
        "twonn",
        "linear",
        0.1,
        120,
        0,
    )
    mle = mle_dimension(x, 15)
    assert mle.dimension == pytest.approx(mle_formula(x, 15), rel=1e-12)
    assert (mle.method, mle.k, mle.n_used) == ("mle", 15, 120)
    assert float(mle) == mle.dimension
    # no discard: the largest ratio has F_emp = 1 (an infinite ordinate), so the line is
    # fitted through the other N − 1 points (scikit-dimension fails there)
    r = sorted_neighbour_distances(x, 2)
    mu = np.sort(r[:, 1] / r[:, 0])[:-1]
    ys = -np.log(1 - np.arange(1, 120) / 120)
    assert twonn_dimension(x, discard_fraction=0.0).dimension == pytest.approx(
        np.log(mu) @ ys / (np.log(mu) @ np.log(mu)), rel=1e-12
    )


@pytest.mark.parametrize("d", [1, 3, 6])
def test_finds_the_dimension_of_a_linear_subspace(d):
    rng = np.random.default_rng(d)
    x = on_a_subspace(rng, 1500, d, 20)
    assert twonn_dimension(x).dimension == pytest.approx(d, rel=0.15)
    assert mle_dimension(x).dimension == pytest.approx(d, rel=0.15)


@st.composite
def cloud(draw):
    n = draw(st.integers(20, 80))
    p = draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    return rng.standard_normal((n, p)) @ rng.standard_normal((p, p)), rng


@settings(max_examples=15, deadline=None)
@given(cloud())
def test_invariant_to_rigid_motions_scale_and_sample_order(data):
    x, rng = data
    k = min(10, len(x) - 1)
    base = (twonn_dimension(x).dimension, mle_dimension(x, k).dimension)
    q = ref.random_orthogonal(x.shape[1], rng)
    for moved in (0.01 * x @ q + 50.0, x[rng.permutation(len(x))]):
        got = (twonn_dimension(moved).dimension, mle_dimension(moved, k).dimension)
        np.testing.assert_allclose(got, base, rtol=1e-8)


def test_not_invariant_to_anisotropic_scaling():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((800, 4))
    squashed = x * np.array([1.0, 1.0, 1e-3, 1e-3])  # a 4-d cloud that looks 2-d
    assert twonn_dimension(x).dimension > 3.0 and twonn_dimension(squashed).dimension < 2.5
    assert mle_dimension(x).dimension > 3.0 and mle_dimension(squashed).dimension < 2.5


def test_duplicates_are_dropped_and_counted():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 3))
    dup = np.vstack([x, x[:4]])
    with pytest.warns(RepspaceWarning, match="TwoNN: dropped 8 point"):
        res = twonn_dimension(dup)
    assert (res.n_used, res.dropped) == (46, 8)
    with pytest.warns(RepspaceWarning, match="MLE intrinsic dimension: dropped 8 point"):
        mle = mle_dimension(dup, 5)
    assert (mle.n_used, mle.dropped) == (46, 8) and math.isfinite(mle.dimension)


def test_arguments_are_checked():
    x = np.random.default_rng(4).standard_normal((10, 3))
    with pytest.raises(ValueError, match=r"discard_fraction must be in \[0, 1\)"):
        twonn_dimension(x, discard_fraction=1.0)
    with pytest.raises(ValueError, match="fit must be 'linear' or 'mle'"):
        twonn_dimension(x, fit="ols")
    with pytest.raises(ValueError, match=r"k must be an integer in \[2, n_samples − 1\] = \[2, 9"):
        mle_dimension(x, 10)
    with pytest.raises(ValueError, match=r"k must be an integer in \[3, "):
        mle_dimension(x, 2, unbiased=True)
    with pytest.raises(ValueError, match="TwoNN needs at least 3 samples"):
        twonn_dimension(x[:2])


def test_report_jobs_give_each_side_once_and_the_ratio_tuned_over_base(monkeypatch):
    """compare's keys: TwoNN and MLE of each side (the independent formulas above) and their
    ratio tuned / base, each side estimated once however many keys read it."""
    from repspace.metrics import intrinsic

    rng = np.random.default_rng(3)
    x, y = on_a_subspace(rng, 300, 3, 12), on_a_subspace(rng, 300, 6, 12)
    calls = []
    for name, fn in list(intrinsic.ESTIMATORS.items()):
        monkeypatch.setitem(
            intrinsic.ESTIMATORS, name, lambda t, _fn=fn, _n=name: calls.append(_n) or _fn(t)
        )
    jobs = intrinsic.report_jobs(x, y)
    got = {k: job() for k, job in jobs.items()}
    assert sorted(calls) == ["mle", "mle", "twonn", "twonn"]
    assert got["twonn_dimension_base"] == pytest.approx(twonn_formula(x), rel=1e-10)
    assert got["mle_dimension_tuned"] == pytest.approx(mle_formula(y, 20), rel=1e-10)
    for est in ("twonn", "mle"):
        assert got[f"{est}_dimension_ratio"] == pytest.approx(
            got[f"{est}_dimension_tuned"] / got[f"{est}_dimension_base"], rel=1e-15
        )
        assert 1.4 < got[f"{est}_dimension_ratio"] < 2.6  # 6 vs 3 dimensions
    from repspace.metrics.registry import REGISTRY

    assert set(jobs) <= set(REGISTRY)  # every key compare reports is registered


def test_report_jobs_fail_loudly_on_every_key_a_bad_side_feeds():
    from repspace.metrics import intrinsic

    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((15, 5)), rng.standard_normal((15, 5))  # n < k + 1 for MLE
    jobs = intrinsic.report_jobs(x, y)
    assert jobs["twonn_dimension_ratio"]() > 0
    for key in ("mle_dimension_base", "mle_dimension_tuned", "mle_dimension_ratio"):
        with pytest.raises(ValueError, match="k must be an integer"):
            jobs[key]()
