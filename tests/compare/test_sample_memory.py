"""The compare sink's row sample (repspace/compare/sink.py): the same bottom-k rows as an
independent computation over every row, and no second copy of the rows while the sample
holds them all (issue 25: the statistics' rows route keeps the same tensors)."""

from __future__ import annotations

import torch

from repspace.capture.sinks import CapturedBatch
from repspace.compare.sink import CompareSink, _row_keys


def _batches(n_batches: int, size: int, width: int = 6, layers=("a", "b"), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    for i in range(n_batches):
        sides = {
            side: {layer: torch.randn(size, width, generator=g) for layer in layers}
            for side in ("base", "tuned")
        }
        yield CapturedBatch(
            sides=sides, streams=dict.fromkeys(layers, "text"), n=size, batch_index=i
        )


def _expected(batches, layer: str, max_rows: int, seed: int):
    """Bottom-``max_rows`` keys over every row at once, ascending, and their rows."""
    keys = _row_keys(seed, layer, 0, sum(b.n for b in batches))
    base = torch.cat([b.sides["base"][layer] for b in batches])
    tuned = torch.cat([b.sides["tuned"][layer] for b in batches])
    order = torch.argsort(keys)[:max_rows]
    return keys[order], base[order], tuned[order]


def _sink(max_rows: int, seed: int = 5) -> CompareSink:
    return CompareSink(max_rows=max_rows, seed=seed, precision="float64")


def test_the_sample_is_the_bottom_k_of_all_rows_before_and_after_thinning():
    for n_batches, size, max_rows in ((3, 4, 100), (40, 7, 25), (9, 13, 10), (5, 8, 40)):
        batches = list(_batches(n_batches, size))
        sink = _sink(max_rows)
        for b in batches:
            sink.update(b)
        sink.finish()
        assert sink.sampled_layers == ["a", "b"]
        for layer in ("a", "b"):
            got, want = sink.sample(layer), _expected(batches, layer, max_rows, seed=5)
            for g, w in zip(got, want):
                assert torch.equal(g, w), (n_batches, size, max_rows, layer)
            assert torch.equal(sink.samples["base"][layer], want[1])
            assert torch.equal(sink.sample_keys[layer], want[0])


def test_no_copy_of_the_rows_while_the_sample_holds_them_all():
    batches = list(_batches(4, 8))
    sink = _sink(1000)
    for b in batches:
        sink.update(b)
    held = {t.data_ptr() for p in sink._parts.values() for side in p[1:] for t in side}
    given = {
        b.sides[s][layer].data_ptr()
        for b in batches
        for s in ("base", "tuned")
        for layer in ("a", "b")
    }
    assert held == given  # the batches' own tensors: no concatenated copy held
    # reading a layer builds one fresh copy and keeps nothing
    _, x, _ = sink.sample("a")
    assert x.data_ptr() not in given and held == {
        t.data_ptr() for p in sink._parts.values() for side in p[1:] for t in side
    }


def test_thinning_bounds_what_is_held():
    sink = _sink(10)
    for b in _batches(50, 6, layers=("a",)):
        sink.update(b)
        assert sum(k.shape[0] for k in sink._parts["a"][0]) <= 10 + 5 + 6


def test_replace_sample_and_no_sample():
    sink = _sink(0)
    for b in _batches(2, 4):
        sink.update(b)
    assert sink.sampled_layers == [] and sink.sample("a") is None
    sink = _sink(5)
    sink.replace_sample(
        {"a": torch.tensor([1, 2])}, {"a": torch.ones(2, 3)}, {"a": torch.zeros(2, 3)}
    )
    keys, x, y = sink.sample("a")
    assert keys.tolist() == [1, 2] and x.shape == y.shape == (2, 3)
