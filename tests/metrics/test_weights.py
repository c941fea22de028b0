"""Weight-space metrics against independent numpy computations, and their invariances."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repspace.metrics.weights import delta_spectrum, intruder_dimensions, weight_delta_summary


def _np_intruders(w0, w1, k, eps, side="left"):
    """Definition 1 of Shuttleworth et al. (2024), straight from numpy's SVD."""
    if side == "right":
        w0, w1 = w0.T, w1.T
    u0 = np.linalg.svd(w0, full_matrices=False)[0]
    u1 = np.linalg.svd(w1, full_matrices=False)[0][:, :k]
    best = np.array(
        [
            max(abs(float(a @ b)) / (np.linalg.norm(a) * np.linalg.norm(b)) for b in u0.T)
            for a in u1.T
        ]
    )
    return int((best < eps).sum()), best


def test_low_rank_update_spectrum_and_ranks():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((12, 9))
    b, a = rng.standard_normal((12, 3)), rng.standard_normal((3, 9))
    s = weight_delta_summary(w0, w0 + b @ a)
    sv = np.linalg.svd(b @ a, compute_uv=False)
    assert np.allclose(delta_spectrum(b @ a).singular_values, sv, rtol=1e-12, atol=1e-12)
    assert s["delta_numerical_rank"] == 3  # a rank-3 update, whatever float noise says
    p = sv[:3] / sv[:3].sum()
    assert s["delta_effective_rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-12)
    assert s["delta_stable_rank"] == pytest.approx((sv**2).sum() / sv[0] ** 2, rel=1e-12)
    assert s["relative_delta"] == pytest.approx(
        np.linalg.norm(b @ a) / np.linalg.norm(w0), rel=1e-12
    )
    assert s["delta_sigma_max"] == pytest.approx(sv[0], rel=1e-12)


@pytest.mark.parametrize("side", ["left", "right"])
def test_intruders_equal_the_definition(side):
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((10, 8))
    # a strong rank-1 update along a random direction: a new top singular vector
    w1 = w0 + 20 * np.outer(rng.standard_normal(10), rng.standard_normal(8))
    for eps in (0.3, 0.5, 0.9):
        got = intruder_dimensions(w0, w1, k=4, threshold=eps, side=side)
        count, best = _np_intruders(w0, w1, 4, eps, side)
        assert got.count == count
        assert np.allclose(got.max_cos, best, atol=1e-12)


def test_no_change_and_pure_rescaling_have_no_intruders():
    rng = np.random.default_rng(2)
    w0 = rng.standard_normal((9, 9))
    same = weight_delta_summary(w0, w0)
    assert same["delta_norm"] == 0 and np.isnan(same["delta_effective_rank"])
    assert same["intruder_dimensions"] == 0 and same["min_max_cos"] == pytest.approx(1.0)
    scaled = intruder_dimensions(w0, 3.0 * w0, k=9, threshold=0.99)  # same singular vectors
    assert scaled.count == 0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 7), st.integers(2, 7))
def test_invariances(seed, m, n):
    """Orthogonal changes of basis on both sides (applied to W₀ and W alike) leave every
    number unchanged; a global sign flip of the tuned matrix changes nothing either."""
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal((m, n))
    w1 = w0 + rng.standard_normal((m, 1)) @ rng.standard_normal((1, n)) * 2
    q1 = np.linalg.qr(rng.standard_normal((m, m)))[0]
    q2 = np.linalg.qr(rng.standard_normal((n, n)))[0]
    a = weight_delta_summary(w0, w1, k=3)
    b = weight_delta_summary(q1 @ w0 @ q2, q1 @ w1 @ q2, k=3)
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-8, abs=1e-9), key
    assert intruder_dimensions(w0, -w1, k=3).count == intruder_dimensions(w0, w1, k=3).count


def test_bad_arguments_are_one_line():
    w = np.eye(3)
    for kwargs, msg in (
        (dict(k=0), "k must be a positive integer"),
        (dict(threshold=1.5), r"threshold must be in \(0, 1\]"),
        (dict(side="up"), "side must be 'left' or 'right'"),
    ):
        with pytest.raises(ValueError, match=msg):
            intruder_dimensions(w, w, **kwargs)
    with pytest.raises(ValueError, match="differ in shape"):
        weight_delta_summary(w, np.eye(4))
    with pytest.raises(ValueError, match="NaN or Inf"):
        weight_delta_summary(w, np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="2-D weight matrix"):
        delta_spectrum(np.ones(3))
