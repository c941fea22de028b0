"""Permutation null of linear CKA against a brute-force loop over the reference Gram formula."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from repspace._validation import UndefinedMetricWarning
from repspace.metrics import linear_cka
from repspace.metrics.permutation import cka_permutation_test
from tests.metrics import reference as ref


def brute_force(x, y, n_permutations, seed, debiased):
    """Every permuted CKA from the explicit n×n Grams of the re-paired rows (reference code)."""
    rng = np.random.default_rng(seed)
    k = ref.linear_gram(x)
    observed = ref.cka_gram(k, ref.linear_gram(y), debiased=debiased)
    null = np.array(
        [
            ref.cka_gram(k, ref.linear_gram(y[rng.permutation(len(x))]), debiased=debiased)
            for _ in range(n_permutations)
        ]
    )
    return observed, null


@pytest.mark.parametrize("method", ["gram", "features"])
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("n,p,q", [(6, 2, 3), (30, 5, 7), (50, 40, 20)])
def test_matches_brute_force_loop(rng, method, debiased, n, p, q):
    x, y = ref.correlated_pair(rng, n, p, q, noise=3.0)
    x = x + 5.0  # uncentred input: the test centres itself
    res = cka_permutation_test(x, y, n_permutations=60, seed=3, debiased=debiased, method=method)
    observed, null = brute_force(x, y, 60, 3, debiased)
    assert res.observed == pytest.approx(observed, rel=1e-9, abs=1e-12)
    assert res.observed == pytest.approx(linear_cka(x, y, debiased=debiased), rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(res.null, null, rtol=1e-9, atol=1e-12)
    assert res.p_value == (1 + np.sum(null >= observed - 1e-10)) / 61
    assert res.null_mean == pytest.approx(null.mean(), rel=1e-9, abs=1e-12)
    assert res.null_std == pytest.approx(null.std(ddof=1), rel=1e-8)
    assert res.z_score == pytest.approx((observed - null.mean()) / null.std(ddof=1), rel=1e-7)
    assert res.method == method and res.n_permutations == 60 and res.debiased is debiased


def test_auto_picks_the_cheaper_route_and_agrees(rng):
    x, y = ref.correlated_pair(rng, 20, 4, 4)
    assert cka_permutation_test(x, y, 10).method == "features"  # 300·n > p·q
    wide_x, wide_y = rng.standard_normal((12, 80)), rng.standard_normal((12, 90))
    auto = cka_permutation_test(wide_x, wide_y, 30, seed=1)
    assert auto.method == "gram"  # 300·n < p·q
    np.testing.assert_allclose(
        auto.null,
        cka_permutation_test(wide_x, wide_y, 30, seed=1, method="features").null,
        rtol=1e-10,
    )


def test_null_mean_is_the_exact_permutation_expectation(rng):
    """E_π tr(K P L Pᵀ) = tr K tr L / (n − 1) for centred Grams: the sampled mean must find it."""
    n = 25
    x, y = ref.correlated_pair(rng, n, 6, 5, noise=1.0)
    h = ref.centering(n)
    k, l = h @ ref.linear_gram(x) @ h, h @ ref.linear_gram(y) @ h
    exact = np.trace(k) * np.trace(l) / ((n - 1) * np.linalg.norm(k) * np.linalg.norm(l))
    res = cka_permutation_test(x, y, n_permutations=4000, seed=0)
    assert abs(res.null_mean - exact) < 4 * res.null_std / math.sqrt(4000)
    assert res.observed > exact  # correlated pair: well above the null


def test_corresponding_rows_are_significant_and_independent_rows_are_not(rng):
    x, y = ref.correlated_pair(rng, 60, 8, 6, noise=0.3)
    res = cka_permutation_test(x, y, n_permutations=199, seed=0)
    assert res.p_value == 1 / 200 and res.z_score > 5
    # calibration: under the null (independent sides) p is uniform, so P(p ≤ 0.1) ≈ 0.1
    small = [
        cka_permutation_test(
            rng.standard_normal((20, 3)), rng.standard_normal((20, 4)), n_permutations=99, seed=s
        ).p_value
        <= 0.1
        for s in range(60)
    ]
    assert 0 < sum(small) <= 15  # binomial(60, 0.1): mean 6, P(> 15) < 1e-3


def test_the_identity_permutation_is_a_tie_not_lost_to_round_off():
    x = np.arange(12.0).reshape(4, 3) ** 1.5
    res = cka_permutation_test(x, x, n_permutations=500, seed=0)
    assert res.observed == pytest.approx(1.0)
    ties = np.sum(res.null >= 1 - 1e-10)
    assert ties > 0  # 4! = 24 orderings: the identity (and its symmetries) recur
    assert res.p_value == (1 + ties) / 501


@st.composite
def pair(draw):
    n = draw(st.integers(6, 30))
    p, q = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x, y = ref.correlated_pair(rng, n, p, q, noise=draw(st.sampled_from([0.1, 1.0, 10.0])))
    return x, y, rng


@settings(max_examples=40, deadline=None)
@given(pair(), st.booleans(), st.sampled_from(["gram", "features"]))
def test_invariant_to_orthogonal_transforms_scaling_and_translation(data, debiased, method):
    x, y, rng = data
    a = cka_permutation_test(x, y, n_permutations=40, seed=7, debiased=debiased, method=method)
    qx, qy = ref.random_orthogonal(x.shape[1], rng), ref.random_orthogonal(y.shape[1], rng)
    scale = float(rng.uniform(0.01, 100))
    b = cka_permutation_test(
        scale * x @ qx + rng.standard_normal(x.shape[1]) * 50,
        y @ qy - 3.0,
        n_permutations=40,
        seed=7,
        debiased=debiased,
        method=method,
    )
    np.testing.assert_allclose(b.null, a.null, rtol=1e-7, atol=1e-9)
    assert b.observed == pytest.approx(a.observed, rel=1e-7, abs=1e-9)
    # the tie tolerance (1e-10) absorbs round-off, so the count cannot flip at a tie
    assert b.p_value == pytest.approx(a.p_value, abs=2 / 41)
    if math.isfinite(a.z_score) and a.null_std > 1e-6:
        assert b.z_score == pytest.approx(a.z_score, rel=1e-5, abs=1e-6)


@given(pair())
@settings(max_examples=25, deadline=None)
def test_p_value_is_in_its_range_and_null_values_are_ckas(data):
    x, y, _ = data
    res = cka_permutation_test(x, y, n_permutations=30, seed=1)
    assert 1 / 31 <= res.p_value <= 1
    assert np.all((res.null >= -1e-12) & (res.null <= 1 + 1e-12))


def test_accepts_torch_and_float32(rng):
    x, y = ref.correlated_pair(rng, 30, 4, 4)
    a = cka_permutation_test(x, y, 20)
    b = cka_permutation_test(
        torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), 20
    )
    np.testing.assert_allclose(b.null, a.null, rtol=1e-5)


def test_constant_side_is_nan_with_a_warning(rng):
    with pytest.warns(UndefinedMetricWarning, match="constant"):
        res = cka_permutation_test(np.ones((10, 3)), rng.standard_normal((10, 2)), 5)
    assert math.isnan(res.observed) and math.isnan(res.p_value) and np.isnan(res.null).all()


def test_one_permutation_has_no_z_score(rng):
    x, y = ref.correlated_pair(rng, 10, 3, 3)
    with pytest.warns(UndefinedMetricWarning, match="no spread"):
        res = cka_permutation_test(x, y, 1)
    assert math.isnan(res.z_score) and res.p_value in (0.5, 1.0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n_permutations=0), "n_permutations must be an integer ≥ 1"),
        (dict(n_permutations=True), "n_permutations must be an integer"),
        (dict(n_permutations=2.5), "n_permutations must be an integer"),
        (dict(seed=-1), "seed must be an integer ≥ 0"),
        (dict(method="exact"), "method must be one of auto, gram, features"),
    ],
)
def test_bad_arguments_name_themselves(rng, kwargs, match):
    x, y = ref.correlated_pair(rng, 10, 3, 3)
    with pytest.raises(ValueError, match=match):
        cka_permutation_test(x, y, **kwargs)


def test_bad_data_is_a_one_line_error(rng):
    with pytest.raises(ValueError, match="rows"):
        cka_permutation_test(rng.standard_normal((10, 3)), rng.standard_normal((9, 3)))
    with pytest.raises(ValueError, match="x"):
        cka_permutation_test(np.full((10, 3), np.nan), rng.standard_normal((10, 3)))
    with pytest.raises(ValueError, match="at least 4"):
        cka_permutation_test(
            rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), debiased=True
        )
