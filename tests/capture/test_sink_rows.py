"""AccumulatorSink on the rows route: each batch goes straight in, held once (issue 25)."""

from __future__ import annotations

import torch

from repspace.capture.sinks import AccumulatorSink, CapturedBatch
from repspace.statistics import LayerwiseMoments


def _batches(n_batches=4, b=8, width=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    for i in range(n_batches):
        yield (
            i,
            (
                {"l0": torch.randn(b, width, generator=g)},
                {"l0": torch.randn(b, width, generator=g)},
            ),
        )


def test_rows_are_not_buffered_or_copied():
    sink = AccumulatorSink(buffer_rows=10_000)
    given = []
    for i, (base, tuned) in _batches():
        sink.update(CapturedBatch({"base": base, "tuned": tuned}, {"l0": "text"}, 8, i))
        given.append(base["l0"])
        assert not sink._pending  # nothing waits: rows cost nothing per update
    kept = sink.acc.base["l0"].batches
    assert len(kept) == len(given)
    assert all(k.data_ptr() == g.data_ptr() for k, g in zip(kept, given))  # the same memory


def test_moments_still_buffer_and_both_routes_agree():
    wide = AccumulatorSink(buffer_rows=10_000, precision="float64")
    narrow = AccumulatorSink(buffer_rows=10_000, route="moments", precision="float64")
    for i, (base, tuned) in _batches():
        for sink in (wide, narrow):
            sink.update(CapturedBatch({"base": base, "tuned": tuned}, {"l0": "text"}, 8, i))
    assert narrow._pending  # the moments route amortises its O(p²) update
    for sink in (wide, narrow):
        sink.finish()
    a, b = wide.acc.compute(), narrow.acc.compute()
    assert isinstance(wide.acc, LayerwiseMoments) and wide.acc.routes() == {("l0", "l0"): "rows"}
    assert abs(a["l0", "l0"]["linear_cka"] - b["l0", "l0"]["linear_cka"]) < 1e-10
