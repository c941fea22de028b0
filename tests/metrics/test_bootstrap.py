import numpy as np
import pytest

from repspace.metrics import bootstrap_ci, linear_cka, rbf_cka
from tests.metrics import reference as ref


@pytest.mark.parametrize("method", ["percentile", "basic", "bca"])
def test_bootstrap_ci_brackets_the_estimate_and_is_reproducible(rng, method):
    x, y = ref.correlated_pair(rng, 80, 5, 4)
    a = bootstrap_ci(linear_cka, x, y, n_resamples=200, method=method, seed=1)
    b = bootstrap_ci(linear_cka, x, y, n_resamples=200, method=method, seed=1)
    assert a.estimate == pytest.approx(linear_cka(x, y))
    assert a.low < a.estimate < a.high and (a.low, a.high) == (b.low, b.high)
    assert a.distribution.shape == (200,) and a.standard_error > 0
    assert "95% CI" in str(a)


def test_bootstrap_percentile_interval_is_the_quantiles_of_paired_resamples(rng):
    x, y = ref.correlated_pair(rng, 50, 4, 4)
    res = bootstrap_ci(linear_cka, x, y, n_resamples=300, seed=0)
    np.testing.assert_allclose(
        [res.low, res.high], np.quantile(res.distribution, [0.025, 0.975]), rtol=1e-12
    )
    # the resampling keeps rows paired: a perfectly related pair stays at CKA = 1
    perfect = bootstrap_ci(linear_cka, x, 3 * x, n_resamples=50)
    np.testing.assert_allclose(perfect.distribution, 1.0, atol=1e-10)


def test_bootstrap_interval_narrows_with_more_samples(rng):
    small = bootstrap_ci(linear_cka, *ref.correlated_pair(rng, 40, 4, 4, 2.0), n_resamples=200)
    large = bootstrap_ci(linear_cka, *ref.correlated_pair(rng, 1000, 4, 4, 2.0), n_resamples=200)
    assert (large.high - large.low) < (small.high - small.low)


def test_bootstrap_forwards_metric_kwargs_and_validates(rng):
    x, y = ref.correlated_pair(rng, 30, 3, 3)
    res = bootstrap_ci(rbf_cka, x, y, n_resamples=20, sigma_factor=0.5)
    assert res.estimate == pytest.approx(rbf_cka(x, y, sigma_factor=0.5))
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci(linear_cka, x, y, method="normal")
    with pytest.raises(ValueError, match="confidence_level"):
        bootstrap_ci(linear_cka, x, y, confidence_level=95)
    with pytest.raises(ValueError, match="rows"):
        bootstrap_ci(linear_cka, x, y[:-1])


def test_bootstrap_warns_when_duplicates_shift_the_distribution(rng):
    from repspace._validation import RepspaceWarning

    x = rng.standard_normal((300, 150))
    y = x @ rng.standard_normal((150, 150)) * 0.1 + x
    with pytest.warns(RepspaceWarning, match="excludes the estimate"):
        res = bootstrap_ci(linear_cka, x, y, n_resamples=50)
    assert res.low > res.estimate
