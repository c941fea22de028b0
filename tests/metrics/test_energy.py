"""Energy distance (issue 29): against scipy (1-D) and the V-statistic written out with
cdist, the permutation tests (pooled and paired) against brute force, invariances."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from scipy.stats import energy_distance as scipy_energy

from repspace.metrics.energy import energy_distance
from tests.metrics import reference as ref


def v_statistic(x, y):
    return 2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean()


def test_matches_scipy_in_one_dimension():
    rng = np.random.default_rng(0)
    worst = 0.0
    for m, n, shift in ((30, 40, 0.5), (100, 17, 0.0), (5, 5, 2.0)):
        x, y = rng.standard_normal((m, 1)), rng.standard_normal((n, 1)) + shift
        worst = max(worst, abs(energy_distance(x, y).distance - scipy_energy(x[:, 0], y[:, 0])))
    assert worst < 1e-12, worst


@pytest.mark.parametrize("tile_size", [7, 1024])
def test_matches_the_v_statistic_in_many_dimensions(tile_size):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((37, 6)), rng.standard_normal((25, 6)) * 1.3 + 0.2
    got = energy_distance(x, y, tile_size=tile_size)
    assert got.energy == pytest.approx(v_statistic(x, y), rel=1e-12)
    assert (got.m, got.n, got.paired, got.p_value, got.resolution) == (37, 25, False, None, None)
    assert energy_distance(x, x).energy == pytest.approx(0.0, abs=1e-12)


def test_permutation_tests_against_brute_force():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((12, 3)), rng.standard_normal((9, 3)) + 0.4
    got = energy_distance(x, y, permutations=60, seed=3)
    # the same relabellings, statistic recomputed from scratch
    import torch

    gen = torch.Generator().manual_seed(3)
    z = np.vstack([x, y])
    null = []
    for _ in range(60):
        idx = torch.randperm(21, generator=gen)[:12].numpy()
        mask = np.zeros(21, bool)
        mask[idx] = True
        null.append(v_statistic(z[mask], z[~mask]))
    obs = v_statistic(x, y)
    assert got.p_value == pytest.approx((1 + np.sum(np.array(null) >= obs - 1e-12)) / 61)
    assert got.resolution == pytest.approx(1 / 61)
    # paired: swap x and y within random pairs
    yp = x + 0.3 * rng.standard_normal((12, 3)) + 0.5
    got = energy_distance(x, yp, permutations=40, paired=True, seed=4)
    gen = torch.Generator().manual_seed(4)
    null = []
    for _ in range(40):
        swap = torch.randint(0, 2, (12,), generator=gen).numpy().astype(bool)
        a, b = np.where(swap[:, None], yp, x), np.where(swap[:, None], x, yp)
        null.append(v_statistic(a, b))
    assert got.p_value == pytest.approx(
        (1 + np.sum(np.array(null) >= v_statistic(x, yp) - 1e-12)) / 41
    )
    assert got.paired


def test_the_test_has_power_and_level():
    rng = np.random.default_rng(5)
    shifted = energy_distance(
        rng.standard_normal((40, 4)), rng.standard_normal((40, 4)) + 1.0, permutations=99
    )
    assert shifted.p_value == pytest.approx(0.01)
    null = [
        energy_distance(
            rng.standard_normal((15, 3)), rng.standard_normal((15, 3)), permutations=39, seed=s
        ).p_value
        for s in range(20)
    ]
    assert 0.2 < np.mean(null) < 0.8


@st.composite
def samples(draw):
    m, n = draw(st.integers(2, 30)), draw(st.integers(2, 30))
    p = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    return rng.standard_normal((m, p)), rng.standard_normal((n, p)) + 0.3, rng


@settings(max_examples=15, deadline=None)
@given(samples())
def test_rigid_motions_of_both_sides_sample_order_and_scale(data):
    x, y, rng = data
    base = energy_distance(x, y).energy
    assert base >= -1e-12
    q = ref.random_orthogonal(x.shape[1], rng)
    shift = rng.standard_normal(x.shape[1]) * 100
    assert energy_distance(x @ q + shift, y @ q + shift).energy == pytest.approx(base, abs=1e-9)
    assert energy_distance(x[rng.permutation(len(x))], y).energy == pytest.approx(base, abs=1e-12)
    assert energy_distance(y, x).energy == pytest.approx(base, abs=1e-12)
    assert energy_distance(3.0 * x, 3.0 * y).energy == pytest.approx(3.0 * base, abs=1e-9)


def test_a_map_of_one_side_moves_it():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((60, 3)) * np.array([3.0, 1.0, 0.3])
    assert energy_distance(x, x @ ref.random_orthogonal(3, rng)).energy > 0.05
    assert energy_distance(x, x + 1.0).energy > 0.1


def test_arguments_are_checked():
    x = np.random.default_rng(7).standard_normal((10, 3))
    with pytest.raises(ValueError, match="same number of features; got 3 and 2"):
        energy_distance(x, x[:, :2])
    with pytest.raises(ValueError, match="permutations must be a non-negative integer"):
        energy_distance(x, x, permutations=1.5)
    with pytest.raises(ValueError, match="x has 10 rows but y has 9"):
        energy_distance(x, x[:9], paired=True)
