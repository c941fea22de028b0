"""Spectrum metrics against numpy/scipy and their defining properties."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from repspace.metrics import (
    effective_rank,
    explained_variance,
    n_components,
    numerical_rank,
    participation_ratio,
    singular_values,
    spectrum,
    stable_rank,
)
from repspace.statistics import FeatureMoments


@pytest.mark.parametrize("n,p", [(200, 10), (10, 200), (50, 50)])
def test_singular_values_match_numpy_svd_of_centred_data(rng, n, p):
    x = rng.standard_normal((n, p)) * np.linspace(0.1, 3, p) + 4.0
    sv = np.linalg.svd(x - x.mean(0), compute_uv=False)
    got = singular_values(x)
    assert got.shape == (min(n, p),)
    # The smallest singular value of a centred n ≤ p matrix is a round-off zero.
    k = min(n - 1, p)
    np.testing.assert_allclose(got[:k], sv[:k], rtol=1e-8)
    assert spectrum(x).method == ("covariance" if n > p else "svd")


def test_rank_formulas_match_their_definitions(rng):
    x = rng.standard_normal((500, 12)) * np.geomspace(1, 0.01, 12)
    sv = np.linalg.svd(x - x.mean(0), compute_uv=False)
    pr = sv / sv.sum()
    assert effective_rank(x) == pytest.approx(math.exp(-(pr * np.log(pr)).sum()), rel=1e-9)
    assert stable_rank(x) == pytest.approx((sv**2).sum() / sv[0] ** 2, rel=1e-9)
    lam = sv**2
    assert participation_ratio(x) == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-9)
    np.testing.assert_allclose(explained_variance(x), np.cumsum(lam) / lam.sum(), rtol=1e-9)
    cum = np.cumsum(lam) / lam.sum()
    expected = {t: float(np.argmax(cum >= t) + 1) for t in (0.9, 0.95, 0.99)}
    assert n_components(x) == expected


@pytest.mark.parametrize("n,p", [(100, 10), (8, 30)])
def test_numerical_rank_matches_numpy_matrix_rank(rng, n, p):
    x = rng.standard_normal((n, 4)) @ rng.standard_normal((4, p))
    xc = x - x.mean(0)
    assert numerical_rank(x) == np.linalg.matrix_rank(xc) == 4
    assert numerical_rank(x, tol=1e300) == 0


@given(st.integers(2, 40), st.integers(0, 2**31), st.sampled_from([0.01, 1.0, 100.0]))
def test_effective_rank_of_isotropic_gaussian_is_close_to_p(p, seed, scale):
    # Marchenko–Pastur: with n = 400p the singular values spread by only ±5 %, so the
    # entropy of their distribution is within ~0.2 % of log p.
    x = np.random.default_rng(seed).standard_normal((400 * p, p)) * scale + 3.0
    assert effective_rank(x) == pytest.approx(p, rel=0.005)
    assert effective_rank(x) <= p
    assert participation_ratio(x) == pytest.approx(p, rel=0.02)


@given(st.integers(1, 6), st.integers(7, 25), st.integers(0, 2**31), st.booleans())
def test_effective_rank_of_rank_k_matrix_is_at_most_k(k, p, seed, wide):
    rng = np.random.default_rng(seed)
    n = p // 2 + k + 2 if wide else 3 * p
    x = rng.standard_normal((n, k)) @ rng.standard_normal((k, p)) * 10 + 5
    er = effective_rank(x)
    assert 1.0 <= er <= k
    assert 1.0 <= stable_rank(x) <= k + 1e-9
    assert 1.0 <= participation_ratio(x) <= k + 1e-9
    assert numerical_rank(x) == k


def test_streaming_float32_spectrum_resolution_is_stated(rng):
    x = (rng.standard_normal((3000, 16)) * np.geomspace(1, 1e-3, 16)).astype(np.float32)
    f32, f64 = FeatureMoments(), FeatureMoments(precision="float64")
    for a in range(0, 3000, 500):
        f32.update(x[a : a + 500])
        f64.update(x[a : a + 500])
    sp32, sp64 = spectrum(f32), spectrum(f64)
    assert sp32.tol / sp32.singular_values[0] == pytest.approx(math.sqrt(16 * 2**-23), rel=1e-6)
    assert sp64.tol < sp32.tol
    resolved = sp32.resolved()
    np.testing.assert_allclose(resolved, sp64.singular_values[: resolved.size], rtol=1e-3)
    assert effective_rank(f64) == pytest.approx(effective_rank(x.astype(np.float64)), rel=1e-8)


def test_constant_representation_gives_nan_with_warning():
    x = np.full((10, 3), 2.5)
    with pytest.warns(UserWarning, match="constant"):
        assert math.isnan(effective_rank(x))
    assert numerical_rank(x) == 0
    with pytest.warns(UserWarning, match="constant"):
        assert all(math.isnan(v) for v in n_components(x).values())
