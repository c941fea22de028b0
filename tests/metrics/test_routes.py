"""Rows or moments (repspace.statistics.routes): every metric is the same number on both
routes, the switch at the break-even is exact, and the rows route never forms a d × d
decomposition when n is small."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from repspace.closed_forms.rows import sample_space
from repspace.metrics.spectrum import spectrum
from repspace.statistics import FeatureRows, LayerwiseMoments, PairedMoments
from repspace.statistics.routes import break_even_rows, keeps_rows, moments_bytes, rows_bytes
from tests.metrics import reference as ref

# Conditioned like the statistics: ratios agree to float64 round-off; the effective rank
# (σ down to the resolution) and the subspace overlap (eigenvectors, error ε/gap) move by
# ~1e-9 under any change of summation order (docs/scaling.md), as between the routes.
LOOSE = {"effective_rank_base": 1e-8, "effective_rank_tuned": 1e-8, "subspace_overlap": 1e-8}


def fed(x, y, route, cuts=None, precision="float64", **kw):
    acc = LayerwiseMoments(precision=precision, route=route, **kw)
    cuts = cuts or [0, len(x)]
    for a, b in zip(cuts[:-1], cuts[1:]):
        acc.update(
            {"l": x[a:b], "m": x[a:b, : max(1, x.shape[1] // 2)]},
            {"l": y[a:b], "m": y[a:b, : max(1, y.shape[1] // 2)]},
        )
    return acc


def assert_same_metrics(a: dict, b: dict, scale: float = 1.0):
    assert a.keys() == b.keys()
    for pair in a:
        assert a[pair].keys() == b[pair].keys(), pair
        for k, v in a[pair].items():
            w = b[pair][k]
            if np.isnan(w):
                assert np.isnan(v), (pair, k, v)
                continue
            # distances that are differences of O(scale) terms: absolute error
            absolute = (
                1e-10 * scale
                if k in ("frechet_distance", "mmd_linear", "procrustes_distance")
                else 1e-12
            )
            assert v == pytest.approx(w, rel=LOOSE.get(k, 1e-10), abs=absolute), (pair, k, v, w)


@st.composite
def pairs(draw):
    n = draw(st.integers(5, 40))
    p, q = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x, y = ref.correlated_pair(rng, n, p, q, noise=draw(st.sampled_from([0.1, 1.0])))
    offset = draw(st.sampled_from([0.0, 7.0, -300.0]))
    k = draw(st.integers(0, 4))
    cuts = sorted({0, n, *rng.integers(1, n, size=k).tolist()})
    return x + offset, y - offset, cuts


@settings(max_examples=60, deadline=None)
@given(pairs())
def test_every_metric_is_the_same_on_both_routes(data):
    """n below, at and above the widths, p ≠ q, any batch split, large offsets."""
    x, y, cuts = data
    rows, moments = fed(x, y, "rows", cuts), fed(x, y, "moments", cuts)
    assert set(rows.routes().values()) == {"rows"} and set(moments.routes().values()) == {"moments"}
    scale = float(np.abs(x - x.mean(0)).max() ** 2 + np.abs(y - y.mean(0)).max() ** 2 + 1)
    assert_same_metrics(rows.compute(), moments.compute(), scale)


def test_same_on_both_routes_when_degenerate():
    """Constant columns, a constant layer, duplicated rows, rank far below n and d."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((30, 3)) @ rng.standard_normal((3, 40))
    x = np.vstack([base, base[:5]])
    x[:, 7] = 2.5  # a constant feature
    y = x @ rng.standard_normal((40, 40)) * 0.1 + x
    with pytest.warns(Warning, match="top-10 subspaces are undefined: the .* rank 3 < 10"):
        rows = fed(x, y, "rows").compute()
    with pytest.warns(Warning, match="top-10 subspaces are undefined"):
        moments = fed(x, y, "moments").compute()
    assert math.isnan(rows["l", "l"]["subspace_overlap"])
    assert_same_metrics(rows, moments, 1e4)
    const = np.ones((12, 20))
    with pytest.warns(Warning):
        got = fed(const, rng.standard_normal((12, 20)), "rows").compute()
    assert math.isnan(got["l", "l"]["linear_cka"])


@pytest.mark.parametrize("p,q", [(24, 24), (24, 10)])
def test_auto_switches_exactly_at_the_break_even(p, q):
    """Auto holds rows while n·(p+q)·4 < (p²+q²+pq)·8 and converts at the break-even by
    replaying the same batches: bit for bit the moments route's states from then on."""
    n0 = break_even_rows(p, q, 4)
    assert keeps_rows(n0 - 1, p, q, 4) and not keeps_rows(n0, p, q, 4)
    assert rows_bytes(n0, p, q, 4) >= moments_bytes(p, q) > rows_bytes(n0 - 1, p, q, 4)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((n0 + 9, p)) + 5).astype(np.float32)
    y = (x[:, :q] * 0.5 + rng.standard_normal((n0 + 9, q))).astype(np.float32)
    pair = [("l", "l")]
    auto = LayerwiseMoments(pairs=pair, precision="auto", route="auto")
    moments = LayerwiseMoments(pairs=pair, precision="auto", route="moments")
    for a in range(0, n0 + 9, 3):
        xb, yb = {"l": x[a : a + 3]}, {"l": y[a : a + 3]}
        auto.update(xb, yb)
        moments.update(xb, yb)
        assert auto.routes()["l", "l"] == ("rows" if auto.n < n0 else "moments"), auto.n
        if auto.n < n0:
            assert auto.statistics_bytes()["l"] == auto.n * (p + q) * 4
    for mine, theirs in (
        (auto.base["l"], moments.base["l"]),
        (auto.tuned["l"], moments.tuned["l"]),
    ):
        for key, value in theirs.state_dict().items():
            got = mine.state_dict()[key]
            assert torch.equal(got, value) if torch.is_tensor(value) else got == value, key
    assert torch.equal(auto.cross["l", "l"].sum_xy, moments.cross["l", "l"].sum_xy)
    assert auto.compute() == moments.compute()


def test_rows_route_forms_no_d_by_d_decomposition(monkeypatch):
    """n = 12 rows of width 300: every metric through n × n forms; eigh / eigvalsh of a
    300 × 300 matrix would be the moments route's cost."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 300))
    y = x + 0.3 * rng.standard_normal((12, 300))
    acc = LayerwiseMoments(precision="float64")
    acc.update({"l": x}, {"l": y})
    assert acc.routes() == {("l", "l"): "rows"}
    want = fed(x, y, "moments").compute()["l", "l"]

    def no_big(name, original):
        def guarded(a, *args, **kwargs):
            assert max(np.shape(a)[-2:]) <= 12, f"{name} of a {np.shape(a)} matrix"
            return original(a, *args, **kwargs)

        return guarded

    for mod, name in (
        (np.linalg, "eigh"),
        (np.linalg, "eigvalsh"),
        (np.linalg, "svd"),
        (torch.linalg, "eigh"),
        (torch.linalg, "eigvalsh"),
    ):
        monkeypatch.setattr(mod, name, no_big(name, getattr(mod, name)))
    got = acc.compute()["l", "l"]
    for k, v in got.items():
        assert v == pytest.approx(want[k], rel=LOOSE.get(k, 1e-10), abs=1e-10), k


def test_cka_matrix_and_paired_view_on_rows():
    rng = np.random.default_rng(2)
    xs = {f"b{i}": rng.standard_normal((20, 30 + i)) for i in range(3)}
    ys = {f"t{i}": xs[f"b{i}"] @ rng.standard_normal((30 + i, 25)) for i in range(3)}
    rows = LayerwiseMoments(pairs="all", precision="float64")
    moments = LayerwiseMoments(pairs="all", precision="float64", route="moments")
    for acc in (rows, moments):
        acc.update(xs, ys)
    assert len(rows.units) == 1 and set(rows.routes().values()) == {"rows"}
    for debiased in (False, True):
        np.testing.assert_allclose(
            rows.cka_matrix(debiased)[0], moments.cka_matrix(debiased)[0], rtol=1e-10
        )
    x, y = xs["b0"], ys["t0"]
    pm = PairedMoments(precision="float64").update(x, y)
    assert isinstance(pm.x, FeatureRows)
    want = ref.cka_gram(ref.linear_gram(x - x.mean(0)), ref.linear_gram(y - y.mean(0)), True)
    assert pm.linear_cka(debiased=True) == pytest.approx(want, rel=1e-10)


def test_state_dict_round_trip_and_merge_keep_the_route():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((16, 40)), rng.standard_normal((16, 40))
    acc = fed(x, y, "auto")
    assert set(acc.routes().values()) == {"rows"}
    back = LayerwiseMoments(precision="float64").load_state_dict(acc.state_dict())
    assert back.routes() == acc.routes() and back.compute() == acc.compute()
    left, right = fed(x[:9], y[:9], "auto"), fed(x[9:], y[9:], "moments")
    assert_same_metrics(left.merge(right).compute(), fed(x, y, "moments").compute(), 100)
    assert set(left.routes().values()) == {"moments"}  # a moments side makes moments


def test_spectrum_of_held_rows_uses_the_moments_resolution():
    """Ranks do not jump when n crosses the break-even: both routes cut σ at σ₁·√(p·ε)."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((10, 64)) * np.logspace(0, -6, 64)).astype(np.float32)
    for precision in ("auto", "float64"):
        rows = FeatureRows(precision).update(x)
        sp_rows = spectrum(rows)
        sp_mom = spectrum(rows.to_moments())
        assert sp_rows.method == "rows" and sp_mom.method == "covariance"
        assert sp_rows.tol == pytest.approx(sp_mom.tol, rel=1e-6)
        assert sp_rows.resolved().size == sp_mom.resolved().size


@pytest.mark.parametrize("n,p,q", [(10, 100, 100), (300, 100, 100), (150, 100, 100), (20, 5, 400)])
def test_sample_space_picks_the_cheaper_side(n, p, q):
    assert sample_space(n, p, q) == (n * n * (p + q) <= n * (p * p + q * q + p * q))


def test_bf16_rows_are_kept_in_two_bytes():
    x = torch.randn(8, 32).to(torch.bfloat16)
    rows = FeatureRows("auto").update(x)
    assert rows.itemsize == 2 and rows.nbytes == 8 * 32 * 2
    torch.testing.assert_close(rows.mean(), x.double().mean(0))


def test_route_argument_is_checked():
    with pytest.raises(ValueError, match="route must be one of auto, rows, moments"):
        LayerwiseMoments(route="gram")
