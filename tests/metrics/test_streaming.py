"""Streaming accumulators: any batch split and any merge give the full-batch values."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from repspace.metrics import effective_rank, frechet_distance, linear_cka, singular_values
from repspace.statistics import FeatureMoments, LayerwiseMoments, PairedMoments
from tests.metrics import reference as ref


def _split_points(draw, n):
    cuts = draw(st.lists(st.integers(1, n - 1), max_size=6, unique=True))
    return [0, *sorted(cuts), n]


@st.composite
def paired_with_split(draw):
    n = draw(st.integers(6, 60))
    p, q = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**31))
    offset = draw(st.sampled_from([0.0, 5.0, -300.0]))
    rng = np.random.default_rng(seed)
    x, y = ref.correlated_pair(rng, n, p, q, noise=1.0)
    return x + offset, y - offset, _split_points(draw, n)


@given(paired_with_split(), st.booleans(), st.sampled_from(["auto", "rows", "moments"]))
def test_streaming_equals_full_batch_for_any_split(data, debiased, route):
    x, y, cuts = data
    acc = PairedMoments(route=route)
    for a, b in zip(cuts[:-1], cuts[1:]):
        acc.update(x[a:b], y[a:b])
    full = ref.cka_gram(ref.linear_gram(x - x.mean(0)), ref.linear_gram(y - y.mean(0)), debiased)
    assert acc.linear_cka(debiased=debiased) == pytest.approx(full, rel=1e-10, abs=1e-12)
    assert acc.linear_cka(debiased=debiased) == pytest.approx(
        linear_cka(x, y, debiased=debiased), rel=1e-10, abs=1e-12
    )


@given(
    paired_with_split(),
    st.booleans(),
    st.sampled_from(["auto", "rows", "moments"]),
    st.sampled_from(["auto", "rows", "moments"]),
)
def test_merge_of_two_accumulators_equals_one(data, debiased, route_left, route_right):
    """Any two routes merge into the numbers of one accumulator (rows are concatenated,
    or taken as moments when either side holds moments)."""
    x, y, cuts = data
    mid = cuts[len(cuts) // 2] if len(cuts) > 2 else len(x) // 2
    left, right = PairedMoments(route=route_left), PairedMoments(route=route_right)
    whole = PairedMoments()
    left.update(x[:mid], y[:mid])
    right.update(x[mid:], y[mid:])  # a different first-batch shift than `left`
    whole.update(x, y)
    merged = left.merge(right)
    assert merged.n == len(x)
    assert merged.linear_cka(debiased=debiased) == pytest.approx(
        whole.linear_cka(debiased=debiased), rel=1e-10, abs=1e-12
    )
    np.testing.assert_allclose(
        merged.x.centred().scatter, whole.x.centred().scatter, rtol=1e-9, atol=1e-9
    )


def test_merge_into_empty_and_with_empty(rng):
    x, y = ref.correlated_pair(rng, 50, 4, 3)
    full = PairedMoments().update(x, y)
    assert PairedMoments().merge(full).linear_cka() == pytest.approx(full.linear_cka(), rel=1e-12)
    assert full.merge(PairedMoments()).n == 50


def test_reshift_identity_for_every_state(rng):
    x = rng.standard_normal((30, 5)) * 3 + 2
    fm = FeatureMoments(precision="float64")
    fm.update(x)
    new = torch.from_numpy(rng.standard_normal(5))
    r = fm.reshifted(new)
    xs = x - new.numpy()
    k = (xs**2).sum(1)
    np.testing.assert_allclose(r.sum.numpy(), xs.sum(0), rtol=1e-12)
    np.testing.assert_allclose(r.outer.numpy(), xs.T @ xs, rtol=1e-12)
    assert float(r.k1) == pytest.approx(k.sum(), rel=1e-12)
    assert float(r.k2) == pytest.approx((k**2).sum(), rel=1e-12)
    np.testing.assert_allclose(r.kx.numpy(), xs.T @ k, rtol=1e-12)


def test_fixed_shift_for_distributed_use(rng):
    x = rng.standard_normal((40, 4)) + 3.0
    fm = FeatureMoments(shift=np.zeros(4))
    fm.update(x)
    assert torch.equal(fm.shift, torch.zeros(4, dtype=torch.float64))
    default = FeatureMoments()
    default.update(x)
    np.testing.assert_allclose(fm.centred().scatter, default.centred().scatter, rtol=1e-12)
    with pytest.raises(ValueError, match="shift"):
        FeatureMoments(shift=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="holds 4"):
        fm.update(np.zeros((3, 5)))


def test_layerwise_many_layers_at_once(rng):
    n = 90
    base = {f"layer.{i}": rng.standard_normal((n, 4 + i)) for i in range(3)}
    tuned = {k: v + 0.5 * rng.standard_normal(v.shape) for k, v in base.items()}
    acc = LayerwiseMoments()
    for a in range(0, n, 32):
        acc.update(
            {k: v[a : a + 32] for k, v in base.items()},
            {k: v[a : a + 32] for k, v in tuned.items()},
        )
    res = acc.compute()
    assert set(res) == {(k, k) for k in base}
    for k in base:
        row = res[k, k]
        assert row["linear_cka"] == pytest.approx(linear_cka(base[k], tuned[k]), rel=1e-10)
        assert row["linear_cka_debiased"] == pytest.approx(
            linear_cka(base[k], tuned[k], debiased=True), rel=1e-10
        )
        assert row["effective_rank_base"] == pytest.approx(effective_rank(base[k]), rel=1e-9)
        assert row["frechet_distance"] == pytest.approx(
            frechet_distance(base[k], tuned[k]), rel=1e-8
        )
    sd = acc.state_dict()
    assert set(sd["base"]) == set(base) and sd["n"] == n
    assert FeatureMoments.reductions["min"] == "min" and FeatureMoments.reductions["n"] == "sum"


def test_layerwise_merge_matches_single_pass(rng):
    base = {"a": rng.standard_normal((64, 5)), "b": rng.standard_normal((64, 3))}
    tuned = {"a": base["a"] @ rng.standard_normal((5, 5)), "b": base["b"] + 1.0}
    one, left, right = (LayerwiseMoments(pairs="all") for _ in range(3))
    one.update(base, tuned)
    left.update({k: v[:20] for k, v in base.items()}, {k: v[:20] for k, v in tuned.items()})
    right.update({k: v[20:] for k, v in base.items()}, {k: v[20:] for k, v in tuned.items()})
    left.merge(right)
    m1, _, _ = one.cka_matrix(debiased=True)
    m2, _, _ = left.cka_matrix(debiased=True)
    np.testing.assert_allclose(m1, m2, rtol=1e-10)
    assert left.compute()["a", "a"]["cosine_similarity_mean"] == pytest.approx(
        one.compute()["a", "a"]["cosine_similarity_mean"], rel=1e-12
    )


def test_streaming_spectrum_equals_svd(rng):
    x = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 8)) + 50.0
    fm = FeatureMoments(precision="float64")
    for a in range(0, 300, 37):
        fm.update(x[a : a + 37])
    sv = np.linalg.svd(x - x.mean(0), compute_uv=False)
    np.testing.assert_allclose(singular_values(fm), sv, rtol=1e-9)


def test_memory_is_independent_of_n(rng):
    acc = PairedMoments()
    for _ in range(5):
        acc.update(rng.standard_normal((100, 6)), rng.standard_normal((100, 4)))
    sizes = {
        k: tuple(v.shape)
        for k, v in acc.state_dict()["base"][""].items()
        if isinstance(v, torch.Tensor)
    }
    assert sizes["outer"] == (6, 6) and sizes["sum"] == (6,)
    assert tuple(acc.state_dict()["cross"]["", ""]["sum_xy"].shape) == (6, 4)
