"""Tables and the over-seeds aggregation (mean ± Student-t interval)."""

import math

import numpy as np
import pytest
import scipy.stats

from repspace.study.results import build_tables, mean_ci, to_csv, write_tables

from tests.study.records import LAYERS, record


def test_mean_ci_matches_the_t_interval_by_hand():
    x = [0.61, 0.55, 0.70, 0.58]
    mean, low, high, n = mean_ci(x)
    m = sum(x) / 4
    s = math.sqrt(sum((v - m) ** 2 for v in x) / 3)
    half = scipy.stats.t.ppf(0.975, 3) * s / math.sqrt(4)
    assert n == 4 and mean == pytest.approx(m, abs=1e-15)
    assert (low, high) == pytest.approx((m - half, m + half), abs=1e-12)
    lo90, hi90 = mean_ci(x, 0.90)[1:3]
    assert hi90 - lo90 < high - low
    # one value: no interval; NaN/None values are dropped; nothing finite: all NaN
    assert math.isnan(mean_ci([0.4])[1]) and mean_ci([0.4])[0] == 0.4
    assert mean_ci([0.5, None, float("nan"), 0.7])[3] == 2
    assert math.isnan(mean_ci([None, float("nan")])[0])


def test_tables_long_wide_and_over_seeds():
    recs = [record("base", s, score=0.1, cka=1.0, ratio=1.0) for s in (0, 1, 2)]
    recs += [
        record("lora", s, score=0.5 + 0.1 * s, ratio=0.8, budget=4, field="r") for s in (0, 1, 2)
    ]
    t = build_tables(recs)
    assert len(t.long) == 6 * len(LAYERS) * 5
    assert {r["metric"] for r in t.long} == {
        "linear_cka",
        "linear_cka_debiased",
        "effective_rank_base",
        "effective_rank_tuned",
        "frechet_distance",
    }
    wide = t.cells[3]
    assert wide["method"] == "lora" and wide["budget"] == 4 and wide["seed"] == 0
    assert wide["primary_score"] == 0.5 and wide["score_vqa_accuracy"] == 0.5
    assert wide["trainable_percent"] == pytest.approx(10.0)
    assert wide["mean_linear_cka"] == pytest.approx(np.mean([0.9, 0.89, 0.88, 0.87]))
    assert wide["summary_layer"] == LAYERS[-1] and t.summary_layer == LAYERS[-1]
    assert wide["erank_base"] == 13.0 and wide["erank_tuned"] == pytest.approx(13 * 0.8)
    assert wide["erank_delta"] == pytest.approx(13 * 0.8 - 13)
    assert wide["erank_ratio"] == pytest.approx(0.8) and wide["mean_erank_ratio"] == pytest.approx(
        0.8
    )
    assert len(t.summary) == 2
    lora = t.summary[1]
    assert lora["n_seeds"] == 3 and lora["seeds"] == "0 1 2"
    m, lo, hi, _ = mean_ci([0.5, 0.6, 0.7])
    assert (
        lora["primary_score"],
        lora["primary_score_ci_low"],
        lora["primary_score_ci_high"],
    ) == pytest.approx((m, lo, hi))
    assert lora["erank_ratio_ci_low"] == pytest.approx(0.8)  # no seed variance: zero width
    # summary_layer picks another layer
    t0 = build_tables(recs, summary_layer=0)
    assert t0.cells[3]["erank_base"] == 10.0


def test_one_seed_gives_nan_intervals_and_csv_writes_them_empty(tmp_path):
    t = build_tables([record("lora", 0), record("prefix", 0, ratio=1.0)])
    assert all(math.isnan(r["primary_score_ci_low"]) for r in t.summary)
    text = to_csv(t.summary)
    header, first = text.splitlines()[:2]
    cols = header.split(",")
    assert first.split(",")[cols.index("primary_score_ci_low")] == ""
    files, notes = write_tables(t, tmp_path)
    assert {"metrics_long.csv", "cells.csv", "summary.csv"} <= set(files)
    try:
        import pyarrow  # noqa: F401

        assert "summary.parquet" in files
    except ImportError:
        assert any("pyarrow" in n for n in notes)
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temp files
