"""The Accumulator contract, run over every subclass in the package: ``update`` / ``merge`` /
``reset`` return self, a merge of two halves equals one accumulator fed both, reset restores
the declared defaults (a reset accumulator is a fresh one), and states round-trip.  A new
subclass without an entry below fails the first test: the contract cannot be skipped."""

import importlib
import pkgutil

import numpy as np
import pytest
import torch

import repspace
from repspace.metrics.cka import MinibatchCKA
from repspace.statistics import (
    FeatureMoments,
    FeatureRows,
    LayerwiseMoments,
    PairedDriftStats,
    PairedMoments,
)
from repspace.statistics.base import Accumulator
from repspace.statistics.drift_stats import COS_EDGES, StreamingSummary


def _cka(acc):
    return acc.compute()["a", "a"]["linear_cka"]


# class -> (fresh accumulator, feed(acc, x, y) -> what update returned, a number to compare)
CONTRACT = {
    FeatureMoments: (
        lambda: FeatureMoments(precision="float64"),
        lambda acc, x, y: acc.update(x),
        lambda acc: acc.centred().scatter.sum().item(),
    ),
    FeatureRows: (
        lambda: FeatureRows("float64"),
        lambda acc, x, y: acc.update(x),
        lambda acc: acc.centred().rows.square().sum().item(),
    ),
    LayerwiseMoments: (
        lambda: LayerwiseMoments(precision="float64"),
        lambda acc, x, y: acc.update({"a": x}, {"a": y}),
        _cka,
    ),
    PairedMoments: (
        lambda: PairedMoments(precision="float64"),
        lambda acc, x, y: acc.update(x, y),
        lambda acc: acc.linear_cka(),
    ),
    PairedDriftStats: (
        PairedDriftStats,
        lambda acc, x, y: acc.update(x, y),
        lambda acc: acc.compute()["cosine_similarity"]["mean"],
    ),
    StreamingSummary: (
        lambda: StreamingSummary(COS_EDGES),
        lambda acc, x, y: acc.update(torch.nn.functional.cosine_similarity(x, y).numpy()),
        lambda acc: acc.compute()["mean"],
    ),
    MinibatchCKA: (MinibatchCKA, lambda acc, x, y: acc.update(x, y), lambda acc: acc.compute()),
}


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _data(seed=0, n=48, p=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, p, generator=g, dtype=torch.float64) + 2
    return x, x @ torch.randn(p, p, generator=g, dtype=torch.float64) * 0.3 + x


def test_every_accumulator_in_the_package_is_under_contract():
    for mod in pkgutil.walk_packages(repspace.__path__, "repspace."):
        if mod.name.startswith(("repspace.statistics", "repspace.metrics")):
            importlib.import_module(mod.name)
    found = {c for c in _subclasses(Accumulator) if c.__module__.startswith("repspace.")}
    missing = sorted(c.__qualname__ for c in found - set(CONTRACT))
    assert not missing, f"Accumulator subclasses without a contract entry: {missing}"


@pytest.mark.parametrize("cls", list(CONTRACT), ids=lambda c: c.__name__)
def test_update_merge_reset_return_self_and_merge_equals_one(cls):
    make, feed, value = CONTRACT[cls]
    x, y = _data()
    whole, left, right = make(), make(), make()
    assert feed(whole, x[:20], y[:20]) is whole  # the same batches into one accumulator
    feed(whole, x[20:], y[20:])
    assert feed(left, x[:20], y[:20]) is left
    feed(right, x[20:], y[20:])
    assert left.merge(right) is left
    assert value(left) == pytest.approx(value(whole), rel=1e-10, abs=1e-12)
    assert whole.reset() is whole


@pytest.mark.parametrize("cls", list(CONTRACT), ids=lambda c: c.__name__)
def test_reset_restores_the_declared_defaults(cls):
    make, feed, value = CONTRACT[cls]
    x, y = _data()
    acc = make()
    feed(acc, x, y)
    acc.reset()
    fresh = make()
    for name in type(acc).defaults:
        a, b = getattr(acc, name), getattr(fresh, name)
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b), name
        elif isinstance(a, (dict, list)) or a is None or isinstance(a, (int, float)):
            assert a == b, name
        else:
            assert type(a) is type(b), name
    feed(acc, x, y)  # and it streams again like a fresh one
    again = make()
    feed(again, x, y)
    assert value(acc) == pytest.approx(value(again), rel=1e-12)


@pytest.mark.parametrize("cls", list(CONTRACT), ids=lambda c: c.__name__)
def test_state_dict_round_trip(cls):
    make, feed, value = CONTRACT[cls]
    x, y = _data(1)
    acc = make()
    feed(acc, x, y)
    copy = make().load_state_dict(acc.state_dict())
    assert value(copy) == pytest.approx(value(acc), rel=1e-12)
    assert callable(getattr(copy, "all_reduce"))


def test_a_reduced_state_without_a_default_is_refused_at_class_definition():
    with pytest.raises(TypeError, match="no declared default"):

        class Bad(Accumulator):  # noqa: F841
            reductions = {"n": "sum", "total": "sum"}
            defaults = {"n": 0}
