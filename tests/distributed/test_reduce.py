"""reduce_accumulator / reduce_sink / gather_row_sample in a real 3-process gloo group.

Rank 1 gets an empty shard (it must take part with zero states); the data have a large
common offset (1e3), so per-rank shifts differ and the common re-shift is exercised.
"""

import json
import math

import numpy as np
import pytest
import torch

from repspace.capture.sinks import CapturedBatch
from repspace.compare.sink import CompareSink
from repspace.distributed import batch_shard
from repspace.statistics import LayerwiseMoments, PairedMoments
from tests.distributed import workers
from tests.distributed.conftest import launch


def rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("reduce")
    codes = launch(workers.reduce_worker, 3, str(out))
    assert codes == [0, 0, 0]
    return [json.loads((out / f"reduce{r}.json").read_text()) for r in range(3)]


def reference(precision):
    x, y = workers.data()
    acc = LayerwiseMoments(precision=precision)
    acc.update({"a": x, "b": x[:, :4]}, {"a": y, "b": y[:, :4]})
    return acc


# float64 GEMMs: the reduction is exact to float64 rounding.  precision="auto" runs each
# batch's GEMM in float32 on data shifted by that rank's own first-batch mean, so its
# rounding differs from one process's by float32 round-off (its documented accuracy): the
# scatter matrices agree to a relative (to their largest entry) error eta <= tol.
#
# Ratio metrics (CKA, ranks, ...) inherit that relative error.  The Procrustes distance is a
# *difference* of O(1) terms, d = 2 - 2 r with r = ||C_xy||_* / sqrt(tr C_x tr C_y) in [0, 1],
# so its error is absolute, not relative to d (d = 0.0053 here: a 190x amplification).  With
# max|dC| <= eta max|C| for every p x q scatter (p = 6, q = 5, k = min(p, q)):
#   ||dC_xy||_* <= sqrt(k) ||dC_xy||_F <= sqrt(k p q) eta max|C_xy| <= sqrt(k p q) eta norm
#       (max|C_xy| <= ||C_xy||_F <= sqrt(tr C_x tr C_y) = norm, Cauchy-Schwarz)
#   |d tr C_x| / tr C_x <= p eta     (C_x is PSD, so max|C_x| <= tr C_x)
#   |dd| = 2 |dr| <= 2 (sqrt(k p q) + (p + q) / 2) eta   to first order.
P, Q = 6, 5
ABS_BOUND = {"procrustes_distance": 2 * (math.sqrt(min(P, Q) * P * Q) + (P + Q) / 2)}


@pytest.mark.parametrize("precision,tol", [("float64", 1e-10), ("auto", 1e-5)])
def test_reduced_statistics_equal_one_process(ranks, precision, tol):
    ref = reference(precision)
    ref_metrics = {f"{b}|{t}": v for (b, t), v in ref.compute().items()}
    scatter = ref.base["a"].centred().scatter
    cross = ref.cross["a", "a"].centred(ref.base["a"], ref.tuned["a"]).scatter
    for r in ranks:  # every rank holds the global statistics, the empty rank too
        got = r[precision]
        assert got["n"] == 90
        assert rel(got["scatter"], scatter) <= tol
        assert rel(got["cross"], cross) <= tol
        # min/max are about the shift: equal up to the rounding of the re-shift
        np.testing.assert_allclose(got["min"], ref.base["a"].min.numpy(), rtol=0, atol=1e-9)
        np.testing.assert_allclose(got["max"], ref.tuned["b"].max.numpy(), rtol=0, atol=1e-9)
        for pair, metrics in ref_metrics.items():
            for k, v in metrics.items():
                if np.isnan(v):
                    assert np.isnan(got["metrics"][pair][k]), k
                else:
                    bound = tol * ABS_BOUND.get(k, 1e-2)
                    assert got["metrics"][pair][k] == pytest.approx(v, rel=tol, abs=bound), k
        drift = ref.drift["a", "a"].compute()
        for q in ("cosine_similarity", "relative_shift"):
            for k, v in drift[q].items():
                assert got["drift"][q][k] == pytest.approx(v, rel=1e-12, abs=1e-15), (q, k)


@pytest.mark.parametrize("precision,tol", [("float64", 1e-9), ("auto", 1e-5)])
def test_reduced_accumulator_keeps_streaming(ranks, precision, tol):
    x, y = workers.data()
    ref = reference(precision)
    ref.update({"a": x[:5], "b": x[:5, :4]}, {"a": y[:5], "b": y[:5, :4]})
    want = ref.compute()["a", "a"]["linear_cka"]
    for r in ranks:
        assert r[precision]["after_update"] == pytest.approx(want, rel=tol)


def test_paired_and_feature_moments_reduce(ranks):
    x, y = workers.data()
    want = PairedMoments(precision="float64").update(x, y).linear_cka(debiased=True)
    for r in ranks:
        assert r["paired_cka"] == pytest.approx(want, rel=1e-10)
        np.testing.assert_allclose(r["feature_mean"], x.astype(np.float64).mean(0), rtol=1e-12)


def test_row_sample_is_the_single_process_sample(ranks):
    x, y = workers.data()
    sink = CompareSink(max_rows=20, seed=3, precision="float64")
    for s in range(0, 90, 8):
        rows = {
            "base": {"L": torch.from_numpy(x[s : s + 8])},
            "tuned": {"L": torch.from_numpy(y[s : s + 8])},
        }
        sink.update(
            CapturedBatch(sides=rows, streams={"L": "text"}, n=len(x[s : s + 8]), batch_index=s)
        )
    sink.finish()
    np.testing.assert_array_equal(ranks[0]["sample"]["base"], sink.samples["base"]["L"].numpy())
    np.testing.assert_array_equal(ranks[0]["sample"]["tuned"], sink.samples["tuned"]["L"].numpy())
    assert ranks[1]["sample"] == {} and ranks[2]["sample"] == {}  # only rank 0 keeps it
    want = sink.acc.compute()["L", "L"]["linear_cka"]
    assert all(r["sink_cka"] == pytest.approx(want, rel=1e-10) for r in ranks)


def test_fan_out_sinks_sharing_the_base_reduce_like_one_process(ranks):
    """k tuned sides share one base accumulator; each reduces to the single-process value,
    the rank without rows included."""
    x, y = workers.data()
    fan = workers.fan_out_sinks(x, y)
    for side, sink in fan.sinks.items():
        want = sink.acc.compute()["L", "L"]["linear_cka"]
        assert all(r["fan_cka"][side] == pytest.approx(want, rel=1e-10) for r in ranks), side


@pytest.mark.parametrize("width", sorted(workers.ROUTE_CASES))
def test_rows_route_reduces_like_one_process(ranks, width):
    """Rows gathered in rank order (64 wide: rows stay rows) or, when the global n crosses
    the break-even while every shard was still on rows (16 wide), converted to moments on
    every rank: either way every rank holds one process's numbers, the empty rank too."""
    x, y = workers.wide_data(p=width)
    ref = LayerwiseMoments(precision="float64")
    for s in range(0, len(x), 7):
        ref.update({"a": x[s : s + 7]}, {"a": y[s : s + 7]})
    want = ref.compute()["a", "a"]
    assert ref.routes()["a", "a"] == workers.ROUTE_CASES[width]
    fan = workers.fan_out_sinks(x, y)
    for r in ranks:
        got = r["routes"][str(width)]
        assert got["n"] == 90 and got["global"] == workers.ROUTE_CASES[width]
        assert set(got["fan_routes"].values()) == {workers.ROUTE_CASES[width]}
        for k, v in want.items():
            assert got["metrics"][k] == pytest.approx(v, rel=1e-10, abs=1e-12), k
        for side, sink in fan.sinks.items():
            assert got["fan"][side] == pytest.approx(
                sink.acc.compute()["L", "L"]["linear_cka"], rel=1e-10
            ), side
    assert ranks[0]["routes"][str(width)]["local"] == "rows"  # 45 rows of each width
    assert ranks[1]["routes"][str(width)]["local"] is None  # the empty shard


@pytest.mark.parametrize("n,b,w", [(72, 8, 2), (10, 4, 3), (5, 8, 2), (0, 3, 2), (100, 7, 8)])
def test_batch_shards_tile_the_batches(n, b, w):
    shards = [batch_shard(n, b, r, w) for r in range(w)]
    assert [i for s in shards for i in s] == list(range(n))  # contiguous, in rank order
    assert all(s.start % b == 0 for s in shards if len(s))  # cut on batch boundaries
    sizes = [-(-len(s) // b) for s in shards]
    assert max(sizes) - min(sizes) <= 1  # balanced in batches


def test_batch_shard_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank 2 is outside a world of 2"):
        batch_shard(10, 2, 2, 2)
