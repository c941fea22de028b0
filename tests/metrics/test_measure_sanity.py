"""The sanity suite's logic (benchmarks/measure_sanity.py) on a tiny synthetic case: layer
identification, the specificity verdicts against the registry, monotonicity in t."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from repspace.metrics.registry import REGISTRY

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "measure_sanity.py"
_spec = importlib.util.spec_from_file_location("measure_sanity", _PATH)
ms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ms)


def layers(seed, n=60, p=8, count=3):
    g = np.random.default_rng(seed)
    return [
        torch.from_numpy(g.standard_normal((n, p)) * np.linspace(0.5, 2, p) + i)
        for i in range(count)
    ]


def test_layer_identification_picks_and_scores_with_the_measure_direction():
    a, b = layers(0), layers(1)
    # a fake measure from a known table: similarity S[i, j], distance D[i, j]
    s = np.array([[0.9, 0.2, 0.1], [0.3, 0.1, 0.8], [0.0, 0.1, 0.7]])
    idx = {id(t): i for i, t in enumerate(a)} | {id(t): j for j, t in enumerate(b)}

    def fake(x, y, keys):
        i, j = idx[id(x)], idx[id(y)]
        return {"linear_cka": s[i, j], "procrustes_distance": 1 - s[i, j], "cknna": np.nan}

    got = ms.layer_identification(a, b, ["linear_cka", "procrustes_distance", "cknna"], fake)
    assert got["linear_cka"] == (2, 3, [0, 2, 2])
    assert got["procrustes_distance"] == (2, 3, [0, 2, 2])  # a distance: the smallest
    assert got["cknna"] == (0, 3, [-1, -1, -1])  # no value: a miss, not a pick


def test_layer_identification_with_the_real_measures():
    """Layers that differ by noise and an offset; B = A rotated plus small noise: every
    rotation-invariant similarity finds every layer.  CCA cannot tell two layers apart when
    one is an invertible map of the other: the test shows it."""
    g = np.random.default_rng(2)
    z = g.standard_normal((60, 8))
    a = [
        torch.from_numpy(z @ g.standard_normal((8, 8)) + 0.3 * g.standard_normal((60, 8)))
        for _ in range(3)
    ]
    q, _ = np.linalg.qr(g.standard_normal((8, 8)))
    b = [t @ torch.from_numpy(q) + 0.01 * torch.from_numpy(g.standard_normal((60, 8))) for t in a]
    keys = ["linear_cka", "rbf_cka", "procrustes_distance", "cknna", "svcca"]
    got = ms.layer_identification(a, b, keys)
    for k in keys:
        assert got[k][0] == 3, (k, got[k])
    # the same layers as exact invertible maps of one latent: CCA sees one space everywhere
    a2 = [torch.from_numpy(z @ g.standard_normal((8, 8))) for _ in range(3)]
    vals = [ms.measure_all(a2[0], t, ["cca_mean", "linear_cka"]) for t in a2]
    assert all(v["cca_mean"] == pytest.approx(1.0, abs=1e-9) for v in vals)
    assert vals[1]["linear_cka"] < 0.99


def test_specificity_verdicts_follow_the_registry():
    x, y = layers(3, n=80)[0], layers(4, n=80)[0]
    keys = ms.specificity_keys()
    got = ms.specificity(x, y, keys, seed=0)
    broken = {(k, t): v for k, cells in got.items() for t, v in cells.items() if v[0] == "FAIL"}
    assert not broken, broken  # every declared invariance holds on generic data
    # declared and holding, and not declared and moving, on measures with known answers
    assert (
        got["linear_cka"]["orthogonal"][0] == "pass"
        and got["linear_cka"]["orthogonal"][1] < 1.0 + 1e-9
    )
    assert got["linear_cka"]["invertible linear"][0] == "pass"  # CKA moves: not declared
    assert got["cca_mean"]["invertible linear"][0] == "pass"  # CCA stays: declared
    assert got["rsa_spearman"]["orthogonal"][0] == "pass"  # correlation RDMs move: not declared
    # PWCCA weighted by the base: its weights come from x's canonical variates, which no
    # invertible map of y changes, so it holds more than the registry (which covers a map of
    # either side) promises
    assert got["pwcca"]["orthogonal"][0] == "undeclared"
    assert got["pwcca"]["orthogonal of both"][0] == "pass"  # rotating the base moves it
    assert got["frechet_distance"]["orthogonal"][0] == "pass"  # rotating one side is drift
    assert got["frechet_distance"]["orthogonal of both"][0] == "pass"  # both: unchanged
    assert all(got[k]["dead unit"][0] == "pass" for k in ("linear_cka", "cca_mean", "rsa_spearman"))
    assert not any(k.endswith("_base") for k in got)  # x's own properties never move


def test_a_broken_declaration_is_a_failure_and_an_extra_invariance_is_reported():
    x, y = layers(5)[0], layers(6)[0]

    def fake(a, b, keys):  # "linear_cka" that moves under rotation; "pwcca" that does not
        return {"linear_cka": float(b.sum()), "pwcca": float((b * b).sum())}

    got = ms.specificity(x, y, ["linear_cka", "pwcca"], measure=fake)
    assert got["linear_cka"]["orthogonal"][0] == "FAIL"
    assert got["linear_cka"]["sample permutation"][0] == "pass"  # a sum ignores row order
    assert got["pwcca"]["orthogonal"][0] == "undeclared"
    assert got["pwcca"]["feature permutation"][0] == "pass"
    assert REGISTRY["pwcca"].invariant_to.count("orthogonal") == 0


@pytest.mark.parametrize(
    "values,direction,ok",
    [
        ([1.0, 0.9, 0.9, 0.5], "similarity", True),
        ([1.0, 0.8, 0.9], "similarity", False),
        ([0.0, 0.1, 0.4], "distance", True),
        ([0.0, 0.3, 0.2], "distance", False),
        ([0.0, float("nan"), 0.4], "distance", False),
        ([1.0, 1.0 + 1e-12, 0.5], "similarity", True),
    ],
)
def test_monotone(values, direction, ok):
    assert ms.monotone(values, direction) is ok


def test_sensitivity_counts_monotone_blocks():
    base = layers(7, count=2)
    g = np.random.default_rng(8)
    noise = [torch.from_numpy(g.standard_normal(b.shape)) for b in base]
    by_t = {t: [b + t * e for b, e in zip(base, noise)] for t in ms.T_GRID}
    got = ms.sensitivity(base, by_t, ["linear_cka", "procrustes_distance"])
    for k in ("linear_cka", "procrustes_distance"):
        assert got[k][:2] == (2, 2), (k, got[k])
        assert got[k][2][0][0] == pytest.approx(1.0 if k == "linear_cka" else 0.0, abs=1e-9)
    # a series that turns back is counted as not monotone
    by_t[1.0] = by_t[0.25]
    assert ms.sensitivity(base, by_t, ["linear_cka"])["linear_cka"][0] == 0
