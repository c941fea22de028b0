"""k tuned models against one base: the pair accumulators share the base statistics, so each
base batch is accumulated once (one base Gram per layer, not k), with bit-identical metrics."""

import numpy as np
import pytest
import torch

from repspace.capture.sinks import CapturedBatch
from repspace.compare.sink import CompareSink, FanOutSink
from repspace.statistics import FeatureMoments, LayerwiseMoments


def _batches(seed=0, n_batches=5, b=13, widths=(6, 4)):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n_batches):
        base = {f"l{i}": torch.randn(b, w, generator=g) + 3.0 for i, w in enumerate(widths)}
        tuned = [
            {
                k: v @ torch.randn(v.shape[1], v.shape[1], generator=g) * 0.3 + v
                for k, v in base.items()
            }
            for _ in range(3)
        ]
        yield base, tuned


def _count_base_updates(monkeypatch):
    calls = []
    original = FeatureMoments.update_shifted

    def counting(self, xs):
        calls.append(self.name)
        return original(self, xs)

    monkeypatch.setattr(FeatureMoments, "update_shifted", counting)
    return calls


def _same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for pair in a:
        for k, v in a[pair].items():
            w = b[pair][k]
            assert (np.isnan(v) and np.isnan(w)) or v == w, (pair, k, v, w)


@pytest.mark.parametrize("route", ["moments", "auto", "rows"])
def test_layerwise_base_from_adds_each_base_batch_once(monkeypatch, route):
    """Every route: the sharers' numbers are bit-identical to separate accumulators'; on the
    moments route each base batch is added once (auto: the layers switch from rows to
    moments after the second batch, replaying it once for all sharers)."""
    calls = _count_base_updates(monkeypatch)
    owner = LayerwiseMoments(route=route)
    owner.share_base()
    others = [LayerwiseMoments(base_from=owner, route=route) for _ in range(2)]
    alone = [LayerwiseMoments(route=route) for _ in range(3)]
    shared_calls = 0
    for base, tuned in _batches():
        before = len(calls)
        for acc, t in zip([owner, *others], tuned):
            acc.update(base, t)
        shared_calls += sum(c.startswith("base") for c in calls[before:])
        for acc, t in zip(alone, tuned):
            acc.update(base, t)
    # 5 batches x 2 layers, not x 3 accumulators; rows are added without moments
    assert shared_calls == {"moments": 5 * 2, "auto": 5 * 2, "rows": 0}[route]
    assert all(owner.base[k] is o.base[k] for o in others for k in owner.base)
    assert set(owner.routes().values()) == {"rows" if route == "rows" else "moments"}
    for acc, ref in zip([owner, *others], alone):
        assert acc.n == ref.n == 65
        _same(acc.compute(), ref.compute())
    with pytest.raises(
        ValueError, match="cannot merge into an accumulator whose base statistics are shared"
    ):
        owner.merge(alone[0])


def test_base_from_needs_share_base_first():
    owner = LayerwiseMoments()
    base, tuned = next(_batches())
    owner.update(base, tuned[0])
    with pytest.raises(ValueError, match="did not call share_base"):
        LayerwiseMoments(base_from=owner).update(base, tuned[1])
    with pytest.raises(ValueError, match="before the first batch"):
        owner.share_base()


@pytest.mark.parametrize("buffer_rows", [1, 30])
def test_fan_out_sink_shares_one_base_gram(monkeypatch, buffer_rows):
    calls = _count_base_updates(monkeypatch)
    fan = FanOutSink({f"t{j}": CompareSink(max_rows=20, buffer_rows=buffer_rows) for j in range(3)})
    separate = [CompareSink(max_rows=20, buffer_rows=buffer_rows) for _ in range(3)]
    streams = {"l0": "text", "l1": "text"}
    fan_calls = 0
    for i, (base, tuned) in enumerate(_batches()):
        before = len(calls)
        fan.update(
            CapturedBatch(
                {"base": base, **{f"t{j}": t for j, t in enumerate(tuned)}}, streams, 13, i
            )
        )
        fan_calls += sum(c.startswith("base") for c in calls[before:])
        for sink, t in zip(separate, tuned):
            sink.update(CapturedBatch({"base": base, "tuned": t}, streams, 13, i))
    before = len(calls)
    fan.finish()
    fan_calls += sum(c.startswith("base") for c in calls[before:])
    for sink in separate:
        sink.finish()
    # 13-row batches: the first goes straight in (every layer still keeps rows), then the
    # 30-row buffer (a layer is on moments): 39 rows, then 13 at finish
    flushes = 5 if buffer_rows == 1 else 3
    assert fan_calls == flushes * 2
    for sink, ref in zip(fan.sinks.values(), separate):
        _same(sink.acc.compute(), ref.acc.compute())
        for side in ("base", "tuned"):
            for layer, rows in ref.samples[side].items():
                assert torch.equal(sink.samples[side][layer], rows)
    owner = next(iter(fan.sinks.values()))
    assert all(fm._last is None for fm in owner.acc.base.values())  # released after finish
