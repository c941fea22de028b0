"""Delete-one-block jackknife intervals (repspace.closed_forms.jackknife): each replicate is
the metric of the rows without its block, the interval covers a known population CKA, and
differences between checkpoints are paired."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from repspace.closed_forms.jackknife import block_ids, jackknife_interval, rows_replicates
from repspace.statistics import LayerwiseMoments

LOOSE = {
    "effective_rank_base": 1e-7,
    "effective_rank_tuned": 1e-7,
    "subspace_overlap": 1e-7,
    "procrustes_distance": 1e-7,
}


def test_blocks_have_equal_size_and_leftovers_stay():
    ids = block_ids(23, 5)
    assert [int((ids == b).sum()) for b in range(5)] == [4] * 5
    assert (ids[20:] == -1).all() and (ids[:20] == np.arange(20) % 5).all()


@pytest.mark.parametrize("n,p,q", [(30, 50, 50), (26, 12, 12), (24, 40, 16)])
def test_each_replicate_is_the_metric_without_its_block(n, p, q):
    """Against the moments route fed the kept rows (an independent computation)."""
    rng = np.random.default_rng(n + p)
    x = rng.standard_normal((n, p)) * np.linspace(0.3, 3, p) + 4
    y = x[:, :q] @ (np.eye(q) + 0.3 * rng.standard_normal((q, q))) - 1
    blocks = 6
    eps = (float(np.finfo(np.float64).eps),) * 2
    reps = rows_replicates(torch.tensor(x), torch.tensor(y), blocks, eps=eps)
    ids = block_ids(n, blocks)
    for b in range(blocks):
        keep = ids != b
        acc = LayerwiseMoments(precision="float64", route="moments")
        acc.update({"l": x[keep]}, {"l": y[keep]})
        with _quiet():
            want = acc.compute()["l", "l"]
        for key, values in reps.items():
            if key.endswith("_q50"):  # the report's quantiles come from histograms
                continue
            w = want[key]
            assert (math.isnan(w) and math.isnan(values[b])) or values[b] == pytest.approx(
                w, rel=LOOSE.get(key, 1e-9), abs=1e-10
            ), (key, b)


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def test_interval_is_the_t_interval_of_the_jackknife_se():
    reps = np.array([0.5, 0.52, 0.49, 0.51, 0.5])
    iv = jackknife_interval(0.505, reps, level=0.9)
    se = math.sqrt(4 / 5 * ((reps - reps.mean()) ** 2).sum())
    half = stats.t.ppf(0.95, 4) * se
    assert iv.se == pytest.approx(se) and iv.low == pytest.approx(0.505 - half)
    assert iv.high == pytest.approx(0.505 + half) and iv.estimate == 0.505
    assert math.isnan(jackknife_interval(0.5, np.array([0.5, math.nan])).low)
    assert math.isnan(jackknife_interval(math.nan, reps).se)


@pytest.mark.parametrize("key", ["linear_cka", "linear_cka_debiased"])
def test_coverage_of_a_known_population_cka(key):
    """Gaussian features, population CKA ‖Σxy‖²_F / (‖Σx‖_F ‖Σy‖_F): the nominal 95 %
    interval covers it in ≥ 90 % of 120 simulated probes of n = 256 (seeded)."""
    rng = np.random.default_rng(0)
    p, n = 8, 256
    sx = np.diag(np.linspace(0.5, 2, p))
    a = rng.standard_normal((p, p)) * 0.5
    sy = a.T @ sx @ a + np.eye(p)
    pop = ((sx @ a) ** 2).sum() / math.sqrt((sx**2).sum() * (sy**2).sum())
    hits = 0
    for _ in range(120):
        x = rng.standard_normal((n, p)) @ np.sqrt(sx)
        y = x @ a + rng.standard_normal((n, p))
        acc = LayerwiseMoments(precision="float64", route="rows")  # 8 wide: rows by choice
        acc.update({"l": x}, {"l": y})
        est = acc.compute(metrics=[key])["l", "l"][key]
        iv = jackknife_interval(est, acc.replicates(20, metrics=[key])["l", "l"][key])
        hits += iv.low <= pop <= iv.high
    assert hits / 120 >= 0.90


@pytest.mark.parametrize("route", ["moments", "auto"])
def test_moments_layers_get_replicates_from_per_block_moments(route):
    """n ≫ d: a layer held as moments (from the start, or converted from rows at the
    break-even with its rows replayed into the blocks) gets the same replicates as the
    metric of the rows outside each block."""
    rng = np.random.default_rng(7)
    n, p = 400, 12
    x = rng.standard_normal((n, p)) + 3
    y = x @ rng.standard_normal((p, p)) * 0.3 + x
    acc = LayerwiseMoments(precision="float64", route=route, blocks=10)
    for i in range(0, n, 37):
        acc.update({"l": x[i : i + 37]}, {"l": y[i : i + 37]})
    assert acc.routes() == {("l", "l"): "moments"}
    reps = acc.replicates(10)["l", "l"]
    ids = np.arange(n) % 10
    for b in (0, 3, 9):
        ref = LayerwiseMoments(precision="float64", route="moments")
        ref.update({"l": x[ids != b]}, {"l": y[ids != b]})
        with _quiet():
            want = ref.compute()["l", "l"]
        for key in (
            "linear_cka",
            "linear_cka_debiased",
            "effective_rank_base",
            "frechet_distance",
            "cosine_similarity_mean",
            "subspace_overlap",
            "procrustes_distance",
        ):
            assert reps[key][b] == pytest.approx(want[key], rel=1e-9), (key, b)


def test_wide_moments_layers_keep_no_blocks_and_say_so():
    from repspace.statistics.blocks import MAX_BYTES

    acc = LayerwiseMoments(precision="float64", route="moments", blocks=20)
    p = 1 + int(math.sqrt(MAX_BYTES / 20 / 24))  # 20 blocks of 3·p²·8 bytes: over the budget
    x = np.random.default_rng(0).standard_normal((8, p))
    acc.update({"l": x}, {"l": x})
    assert acc.interval_blocks.units == {} and acc.replicates(4) == {}


@pytest.mark.parametrize("route", ["rows", "moments"])
def test_replicates_report_progress_once_per_pair_they_cover(route):
    """The metrics bar counts the intervals' pass: one update per pair with replicates, as
    many as replicated_pairs() announced beforehand (a wide moments layer has none)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60, 6))
    acc = LayerwiseMoments(precision="float64", route=route, blocks=5)
    acc.update({"a": x, "b": x + 1}, {"a": x * 2, "b": x - 1})
    ticks = []
    reps = acc.replicates(5, progress=ticks.append)
    assert sum(ticks) == acc.replicated_pairs() == len(reps) == 2

    wide = LayerwiseMoments(precision="float64", route="moments", blocks=20)
    from repspace.statistics.blocks import MAX_BYTES

    p = 1 + int(math.sqrt(MAX_BYTES / 20 / 24))
    z = rng.standard_normal((8, p))
    wide.update({"l": z}, {"l": z})
    ticks.clear()
    assert wide.replicates(4, progress=ticks.append) == {} and ticks == []
    assert wide.replicated_pairs() == 0


def test_grams_affordable_bounds_the_n_by_n_working_set():
    from repspace.closed_forms.jackknife import grams_affordable

    assert grams_affordable(1448, 10, 10) and not grams_affordable(1449, 10, 10)
    assert grams_affordable(3000, 3000, 100)  # n no larger than the wider side: n × n ≤ d × d
    assert not grams_affordable(6000, 2048, 2048)


def test_rows_too_many_for_the_grams_get_replicates_from_per_block_moments():
    """A layer held as rows with n past both its width and the Grams' floor: the replicates
    come from per-block moments of its rows (row i in block i mod B), exactly the metric of
    the rows outside each block."""
    rng = np.random.default_rng(11)
    n, p, blocks = 1500, 16, 20
    x = rng.standard_normal((n, p)) + 2
    y = x @ rng.standard_normal((p, p)) * 0.2 + x
    acc = LayerwiseMoments(precision="float64", route="rows")
    for i in range(0, n, 100):
        acc.update({"l": x[i : i + 100]}, {"l": y[i : i + 100]})
    assert acc.routes() == {("l", "l"): "rows"} and acc.replicated_pairs(blocks) == 1
    reps = acc.replicates(blocks)["l", "l"]
    ids = np.arange(n) % blocks
    for b in (0, 7, 19):
        ref = LayerwiseMoments(precision="float64", route="moments")
        ref.update({"l": x[ids != b]}, {"l": y[ids != b]})
        with _quiet():
            want = ref.compute()["l", "l"]
        for key in (
            "linear_cka",
            "linear_cka_debiased",
            "effective_rank_base",
            "procrustes_distance",
            "frechet_distance",
            "cosine_similarity_mean",
        ):
            assert reps[key][b] == pytest.approx(want[key], rel=1e-9), (key, b)


def test_rows_too_many_and_too_wide_get_no_replicates():
    from repspace.statistics.blocks import MAX_BYTES

    p = 1 + int(math.sqrt(MAX_BYTES / 20 / 24))  # 20 blocks of 3·p²·8 bytes: over the budget
    x = np.random.default_rng(2).standard_normal((1500, p)).astype(np.float32)
    acc = LayerwiseMoments(precision="float64", route="rows")
    acc.update({"l": x}, {"l": x * 2})
    assert acc.replicated_pairs(20) == 0 and acc.replicates(20) == {}
