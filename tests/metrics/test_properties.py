"""Property tests (hypothesis): invariances every similarity metric promises."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from repspace.metrics import linear_cka, procrustes_distance, rbf_cka
from tests.metrics import reference as ref


@st.composite
def pair(draw, min_n=6, max_n=40):
    n = draw(st.integers(min_n, max_n))
    p, q = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    x, y = ref.correlated_pair(rng, n, p, q, noise=1.0)
    return x * scale, y, rng


@given(pair(), st.booleans())
def test_cka_of_a_representation_with_itself_is_one(data, debiased):
    x, _, _ = data
    assert linear_cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-10)
    assert rbf_cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-10)


@given(pair(), st.booleans())
def test_linear_cka_invariant_to_orthogonal_scaling_translation(data, debiased):
    x, y, rng = data
    base = linear_cka(x, y, debiased=debiased)
    qx, qy = ref.random_orthogonal(x.shape[1], rng), ref.random_orthogonal(y.shape[1], rng)
    shift = rng.standard_normal(x.shape[1]) * 100
    scale = float(rng.uniform(0.01, 100))
    transformed = linear_cka(scale * x @ qx + shift, y @ qy - 3.0, debiased=debiased)
    assert transformed == pytest.approx(base, rel=1e-8, abs=1e-10)
    assert linear_cka(y, x, debiased=debiased) == pytest.approx(base, rel=1e-10, abs=1e-12)


@given(pair(), st.booleans())
def test_rbf_cka_invariant_to_orthogonal_scaling_translation(data, debiased):
    # With the median-heuristic bandwidth, isotropic scaling rescales σ too.
    x, y, rng = data
    base = rbf_cka(x, y, debiased=debiased)
    qx = ref.random_orthogonal(x.shape[1], rng)
    moved = 7.5 * x @ qx + rng.standard_normal(x.shape[1])
    assert rbf_cka(moved, y, debiased=debiased) == pytest.approx(base, rel=1e-7, abs=1e-9)


@given(pair())
def test_procrustes_invariances_and_range(data):
    x, y, rng = data
    d = procrustes_distance(x, y)
    assert -1e-9 <= d <= 2 + 1e-9
    qx = ref.random_orthogonal(x.shape[1], rng)
    assert procrustes_distance(3.0 * x @ qx + 1.0, y) == pytest.approx(d, abs=1e-9)
    assert procrustes_distance(x, x) == pytest.approx(0.0, abs=1e-9)


@given(pair())
def test_biased_linear_cka_lies_in_unit_interval(data):
    x, y, _ = data
    assert -1e-12 <= linear_cka(x, y) <= 1 + 1e-12
