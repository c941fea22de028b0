"""Issue 29's streaming measures (mean CCA, R²_CCA, SVCCA, PWCCA, the generalized shape
metrics) after a real 2-process gloo reduction equal one process's, on both routes and on a
shared base (FanOutSink).

The shards are uneven (38 and 52 rows, batches of 7) and the data carry a large common
offset, so each rank's shift differs and the reduction re-shifts: what CCA whitens is then
the reduced scatter, and any slip in it would be amplified, not hidden.
"""

import json
import os

import numpy as np
import pytest

from repspace.closed_forms.cca import (
    cca_from_moments,
    cca_from_rows,
    pwcca_from_moments,
    pwcca_from_rows,
    svcca_from_moments,
    svcca_from_rows,
)
from repspace.closed_forms.centred import CentredRows
from repspace.closed_forms.shape import shape_metric_from_moments, shape_metric_from_rows
from repspace.closed_forms.summary import CCA_KEYS
from repspace.statistics import LayerwiseMoments
from tests.distributed import workers
from tests.distributed.conftest import launch

WORLD, CUT = 2, 38


# route -> the data: 6 wide with n = 90 is held as moments, 32 wide as rows (90·2·32·4 B of
# float32 rows < 3·32²·8 B of moments); CCA is not saturated on either (r_x + r_y < n − 1)
def noisy_wide():
    """workers.wide_data at 32 wide, y with noise added (there y is an exact linear map of
    x, which CCA sees as identical: every canonical correlation 1)."""
    x, y = workers.wide_data(p=32)
    y = y + 0.5 * np.random.default_rng(5).standard_normal(y.shape)
    return x, y.astype(np.float32)


CASES = {"moments": lambda: workers.data(), "rows": noisy_wide}


def measures(acc, layer):
    """compare's keys (``CCA_KEYS``) and the settings the API adds: the shape metric at
    α = 0, ½, 1 (angular and Euclidean), a ridge, a fixed SVCCA k, PWCCA weighted by y."""
    out = dict(acc.compute(metrics=list(CCA_KEYS))[layer, layer])
    cx, cy = acc.base[layer].centred(), acc.tuned[layer].centred()
    on_rows = isinstance(cx, CentredRows)
    cxy = None if on_rows else acc.cross[layer, layer].centred(acc.base[layer], acc.tuned[layer])

    def call(on_moments, on_rows_fn, **kw):
        return on_rows_fn(cx, cy, **kw) if on_rows else on_moments(cx, cy, cxy, **kw)

    for a in (0.0, 0.5, 1.0):
        r = call(shape_metric_from_moments, shape_metric_from_rows, alpha=a)
        out[f"shape_{a}_angular"], out[f"shape_{a}_euclidean"] = r.angular, r.euclidean
    out["cca_ridge_0.1"] = call(cca_from_moments, cca_from_rows, ridge=0.1).mean
    out["svcca_k3"] = call(svcca_from_moments, svcca_from_rows, k=3).mean
    out["pwcca_y"] = call(pwcca_from_moments, pwcca_from_rows, weights_from="y").value
    out["route"] = "rows" if on_rows else "moments"
    return out


def worker(rank, world, port, out_dir):
    from repspace.distributed import reduce_accumulator, reduce_sink

    workers.init(rank, world, port)
    res = {}
    for case, make in CASES.items():
        x, y = make()
        mine = range(CUT) if rank == 0 else range(CUT, len(x))
        acc = LayerwiseMoments(precision="float64")
        for s in range(mine.start, mine.stop, 7):
            e = min(s + 7, mine.stop)
            acc.update({"a": x[s:e]}, {"a": y[s:e]})
        reduce_accumulator(acc)
        fan = workers.fan_out_sinks(x, y, mine)
        for sink in fan.sinks.values():
            reduce_sink(sink)
        res[case] = {
            "n": acc.n,
            "measures": measures(acc, "a"),
            "fan": {side: measures(s.acc, "L") for side, s in fan.sinks.items()},
        }
    with open(os.path.join(out_dir, f"cca{rank}.json"), "w") as f:
        json.dump(res, f)
    workers.dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("reduce_cca")
    assert launch(worker, WORLD, str(out)) == [0] * WORLD
    return [json.loads((out / f"cca{r}.json").read_text()) for r in range(WORLD)]


def assert_same(got, want, what):
    assert set(got) == set(want), what
    for k, v in want.items():
        if isinstance(v, str):
            assert got[k] == v, (what, k)
        else:
            assert np.isfinite(v), (what, k)  # a NaN on both sides would prove nothing
            assert got[k] == pytest.approx(v, rel=1e-10, abs=1e-12), (what, k)


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_gloo_processes_equal_one_process(ranks, case):
    x, y = CASES[case]()
    one = LayerwiseMoments(precision="float64")
    for s in range(0, len(x), 7):
        one.update({"a": x[s : s + 7]}, {"a": y[s : s + 7]})
    want = measures(one, "a")
    assert want["route"] == case
    assert set(CCA_KEYS) <= set(want)
    # the measures are not trivially equal: a real comparison, not 1 or 0 everywhere
    assert 0.05 < want["cca_mean"] < 0.999 and 0.01 < want["shape_0.5_angular"] < 1.5
    for rank, r in enumerate(ranks):  # every rank holds the global numbers
        assert r[case]["n"] == len(x)
        assert_same(r[case]["measures"], want, (case, rank))


@pytest.mark.parametrize("case", sorted(CASES))
def test_shared_base_fan_out_reduces_like_one_process(ranks, case):
    """k = 3 tuned sides against one shared base accumulator (compare's shared-base path)."""
    x, y = CASES[case]()
    fan = workers.fan_out_sinks(x, y)
    for side, sink in fan.sinks.items():
        want = measures(sink.acc, "L")
        for rank, r in enumerate(ranks):
            assert_same(r[case]["fan"][side], want, (case, side, rank))
