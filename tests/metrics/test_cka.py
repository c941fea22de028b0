"""CKA estimators against the papers' Gram-matrix formulas (independent implementations)."""

import numpy as np
import pytest
import torch

from repspace.metrics import MinibatchCKA, cka_matrix, linear_cka, minibatch_cka, rbf_cka
from tests.metrics import reference as ref


@pytest.mark.parametrize("n,p,q", [(40, 5, 7), (200, 12, 9), (30, 60, 45)])
def test_linear_cka_equals_kornblith_gram_formula(rng, n, p, q):
    x, y = ref.correlated_pair(rng, n, p, q)
    expected = ref.cka_gram(ref.linear_gram(x), ref.linear_gram(y))
    assert linear_cka(x, y) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("n,p,q", [(4, 3, 2), (5, 3, 3), (40, 5, 7), (120, 12, 9), (25, 60, 45)])
def test_debiased_linear_cka_equals_explicit_hsic1(rng, n, p, q):
    x, y = ref.correlated_pair(rng, n, p, q, noise=2.0)
    x = x + 7.0  # HSIC₁ is shift invariant; the streaming sums must handle an offset
    expected = ref.cka_gram(ref.linear_gram(x), ref.linear_gram(y), debiased=True)
    assert linear_cka(x, y, debiased=True) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_debiased_cka_can_be_negative_and_is_not_clamped(rng):
    found = []
    for _ in range(50):
        x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 3))
        val = linear_cka(x, y, debiased=True)
        assert val == pytest.approx(
            ref.cka_gram(ref.linear_gram(x), ref.linear_gram(y), debiased=True), rel=1e-9
        )
        found.append(val)
    assert min(found) < 0


@pytest.mark.parametrize("debiased", [False, True])
def test_float32_with_large_offset_matches_float64(rng, debiased):
    x, y = ref.correlated_pair(rng, 4000, 64, 48)
    x32 = (x + 1e3).astype(np.float32)
    y32 = (y - 1e3).astype(np.float32)
    exact = linear_cka(x32.astype(np.float64), y32.astype(np.float64), debiased=debiased)
    assert abs(linear_cka(x32, y32, debiased=debiased) - exact) <= 1e-6
    # streamed in float32 batches as well
    from repspace.statistics import PairedMoments

    acc = PairedMoments()
    for i in range(0, 4000, 512):
        acc.update(torch.from_numpy(x32[i : i + 512]), torch.from_numpy(y32[i : i + 512]))
    assert abs(acc.linear_cka(debiased=debiased) - exact) <= 1e-6


@pytest.mark.parametrize("debiased", [False, True])
def test_one_call_chunks_rows_exactly(rng, monkeypatch, debiased):
    """The one-call path feeds rows in chunks (flat memory); chunked = the Gram formula,
    and a NaN is still reported at its global row."""
    import repspace.metrics.cka as cka

    monkeypatch.setattr(cka, "ONE_CALL_CHUNK_ROWS", (7, 7))
    x, y = ref.correlated_pair(rng, 50, 6, 4)
    x = x + 3.0
    expected = ref.cka_gram(ref.linear_gram(x), ref.linear_gram(y), debiased=debiased)
    assert linear_cka(x, y, debiased=debiased) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    x[23, 2] = np.nan
    with pytest.raises(ValueError, match="first at row 23, column 2"):
        linear_cka(x, y)


def test_half_precision_inputs_are_upcast(rng):
    x, y = ref.correlated_pair(rng, 300, 16, 16)
    for dtype in (torch.float16, torch.bfloat16):
        xt, yt = torch.from_numpy(x).to(dtype), torch.from_numpy(y).to(dtype)
        expected = linear_cka(xt.double(), yt.double())
        assert linear_cka(xt, yt) == pytest.approx(expected, rel=1e-6)


def test_precision_float64_opt_in(rng):
    x, y = ref.correlated_pair(rng, 500, 20, 10)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    a = linear_cka(x32, y32, precision="float64")
    b = linear_cka(x32.astype(np.float64), y32.astype(np.float64))
    assert a == pytest.approx(b, rel=1e-13)
    with pytest.raises(ValueError, match="precision"):
        linear_cka(x, y, precision="float16")


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("tile", [7, 64, 1024])
def test_rbf_cka_equals_gram_formula(rng, debiased, tile):
    x, y = ref.correlated_pair(rng, 60, 6, 4)
    sx, sy = 0.5 * ref.median_offdiag_distance(x), 0.5 * ref.median_offdiag_distance(y)
    expected = ref.cka_gram(ref.rbf_gram(x, sx), ref.rbf_gram(y, sy), debiased=debiased)
    got = rbf_cka(x, y, sigma_factor=0.5, debiased=debiased, tile_size=tile)
    assert got == pytest.approx(expected, rel=1e-10)
    got = rbf_cka(x, y, debiased=debiased, sigma_x=sx, sigma_y=sy, tile_size=tile)
    assert got == pytest.approx(expected, rel=1e-10)


def test_rbf_cka_large_bandwidth_approaches_linear(rng):
    x, y = ref.correlated_pair(rng, 100, 5, 5)
    assert rbf_cka(x, y, sigma_factor=300.0) == pytest.approx(linear_cka(x, y), rel=1e-4)


@pytest.mark.parametrize("debiased", [False, True])
def test_minibatch_cka_matches_per_batch_definition(rng, debiased):
    x, y = ref.correlated_pair(rng, 103, 8, 6)
    b = 25  # 4 full batches and a final batch of 3 rows, dropped when debiased
    batches = [(x[i : i + b], y[i : i + b]) for i in range(0, 103, b)]
    if debiased:
        batches = [t for t in batches if len(t[0]) >= 4]
    f = ref.hsic_unbiased if debiased else ref.hsic_biased
    hs = np.array(
        [
            [f(xb @ xb.T, yb @ yb.T), f(xb @ xb.T, xb @ xb.T), f(yb @ yb.T, yb @ yb.T)]
            for xb, yb in batches
        ]
    ).mean(0)
    expected = hs[0] / np.sqrt(hs[1] * hs[2])
    assert minibatch_cka(x, y, batch_size=b, debiased=debiased) == pytest.approx(
        expected, rel=1e-10
    )


def test_minibatch_cka_is_a_different_estimator(rng):
    x, y = ref.correlated_pair(rng, 400, 10, 10, noise=3.0)
    full, mb = linear_cka(x, y), minibatch_cka(x, y, batch_size=16, debiased=False)
    assert abs(full - mb) > 1e-3  # biased per-batch HSIC differs from the full-data value


def test_minibatch_accumulator_merge(rng):
    x, y = ref.correlated_pair(rng, 96, 8, 6)
    a, b, whole = MinibatchCKA(), MinibatchCKA(), MinibatchCKA()
    for i in range(0, 96, 16):
        (a if i < 48 else b).update(x[i : i + 16], y[i : i + 16])
        whole.update(x[i : i + 16], y[i : i + 16])
    assert a.merge(b).compute() == pytest.approx(whole.compute(), rel=1e-12)
    with pytest.raises(ValueError, match="no minibatches"):
        MinibatchCKA().compute()


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matrix_entries_equal_pairwise_cka(rng, debiased):
    layers = [rng.standard_normal((50, d)) for d in (4, 6, 5)]
    layers[1] = layers[0] @ rng.standard_normal((4, 6)) + 0.1 * layers[1]
    tuned = {
        f"t{i}": layer + 0.3 * rng.standard_normal(layer.shape) for i, layer in enumerate(layers)
    }
    mat, bn, tn = cka_matrix({f"b{i}": v for i, v in enumerate(layers)}, tuned, debiased=debiased)
    assert mat.shape == (3, 3) and bn == ["b0", "b1", "b2"] and tn == ["t0", "t1", "t2"]
    for i, xb in enumerate(layers):
        for j, yt in enumerate(tuned.values()):
            assert mat[i, j] == pytest.approx(linear_cka(xb, yt, debiased=debiased), rel=1e-10)
    self_mat, _, _ = cka_matrix(layers)
    np.testing.assert_allclose(np.diag(self_mat), 1.0, rtol=1e-12)
