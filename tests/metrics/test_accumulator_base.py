"""The accumulator contract (torchmetrics' shape): reductions table, update / merge /
compute / reset, state_dict round trips, and the public all_reduce collective."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist

from repspace.statistics import (
    FeatureMoments,
    FeatureRows,
    LayerwiseMoments,
    PairedDriftStats,
    PairedMoments,
)
from repspace.statistics.base import Accumulator
from repspace.statistics.moments import CrossMoments


def _batches(seed=0, n=60, p=5, q=4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, p, generator=g) + 3.0
    y = x[:, :q] * 0.5 + torch.randn(n, q, generator=g)
    return x, y


def _layerwise(x, y, chunks=3):
    acc = LayerwiseMoments()
    for xs, ys in zip(x.chunk(chunks), y.chunk(chunks)):
        acc.update({"a": xs, "b": xs[:, :4]}, {"a": ys, "b": ys})
    return acc


def test_every_accumulator_follows_the_contract():
    for cls in (FeatureMoments, FeatureRows, LayerwiseMoments, PairedMoments, PairedDriftStats):
        assert issubclass(cls, Accumulator)
        for method in (
            "update",
            "merge",
            "compute",
            "reset",
            "state_dict",
            "load_state_dict",
            "all_reduce",
        ):
            assert callable(getattr(cls, method)), (cls, method)


def test_an_unknown_reduction_rule_is_refused_when_the_class_is_defined():
    with pytest.raises(TypeError, match="unknown rules"):

        class Bad(Accumulator):  # noqa: F841
            reductions = {"n": "average"}


def test_state_dict_round_trip_gives_the_same_numbers():
    x, y = _batches()
    acc = _layerwise(x, y)
    copy = LayerwiseMoments().load_state_dict(acc.state_dict())
    assert copy.compute() == acc.compute()
    # the copy owns its states: it streams on exactly like one accumulator fed every
    # batch, and the original does not move when the copy is updated
    before = acc.compute()
    x2, y2 = _batches(seed=1, n=20)
    copy.update({"a": x2, "b": x2[:, :4]}, {"a": y2, "b": y2})
    assert acc.compute() == before
    fed = _layerwise(x, y)
    fed.update({"a": x2, "b": x2[:, :4]}, {"a": y2, "b": y2})
    assert copy.compute() == fed.compute()
    pm = PairedMoments().update(x, y)
    assert PairedMoments().load_state_dict(pm.state_dict()).linear_cka() == pm.linear_cka()


def test_reset_forgets_the_samples_and_keeps_the_settings():
    x, y = _batches()
    acc = _layerwise(x, y)
    acc.reset()
    assert acc.n == 0 and acc.layout() is None and acc.precision == "auto"
    acc2 = _layerwise(x, y)
    for xs, ys in zip(x.chunk(3), y.chunk(3)):
        acc.update({"a": xs, "b": xs[:, :4]}, {"a": ys, "b": ys})
    assert acc.compute() == acc2.compute()
    fm = FeatureMoments(precision="float64", name="base")
    fm.update(x)
    fm.reset()
    assert fm.n == 0 and fm.shift is None and fm.precision == "float64" and fm.name == "base"


def test_cross_statistics_alone_cannot_be_reduced():
    with pytest.raises(TypeError, match="LayerwiseMoments"):
        CrossMoments().all_reduce()


@pytest.fixture()
def one_process_group():
    """A real gloo group of world size 1 (the collectives run; every result must equal
    the local one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        yield dist.group.WORLD
    finally:
        dist.destroy_process_group()


def test_all_reduce_of_one_rank_is_the_identity(one_process_group):
    x, y = _batches()
    acc = _layerwise(x, y)
    before = acc.compute()
    assert acc.all_reduce(one_process_group) is acc
    after = acc.compute()
    for pair, row in before.items():
        for key, value in row.items():
            assert after[pair][key] == pytest.approx(value, rel=1e-12, abs=1e-12), (pair, key)
    fm = FeatureMoments()
    fm.update(x)
    mean = fm.mean().clone()
    fm.all_reduce(one_process_group)
    np.testing.assert_allclose(fm.mean().numpy(), mean.numpy(), rtol=1e-12)
    empty = FeatureMoments().all_reduce(one_process_group)
    assert empty.n == 0 and empty.shift is None
    drift = PairedDriftStats()
    drift.update(x[:, :4].double(), y.double())
    want = drift.compute()
    got = drift.all_reduce(one_process_group).compute()
    assert got["cosine_similarity"]["mean"] == pytest.approx(
        want["cosine_similarity"]["mean"], rel=1e-14
    )
