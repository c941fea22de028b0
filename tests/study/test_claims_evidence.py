"""Issue 27 item 2: a claim holds or is contradicted only when its interval excludes the other
side; otherwise undetermined, with the numbers; one seed says so in the verdict."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from repspace.study.claims import check_claims
from repspace.study.evidence import Estimate, Side, combine, direction
from repspace.study.results import build_tables, mean_ci

from tests.study.records import LAYERS, record

PT_SCORE = "PT-PEFT scores higher than vanilla PEFT"
PT_RANK = "PT-PEFT ends with a higher effective rank than vanilla PEFT"
LOWER = "LoRA/adapters lower the effective rank (ratio < 1)"


def jk_record(method, seed=0, score=0.5, ratio=0.9, n_eval=48, reps=None, base_reps=None, **kw):
    """A cell record with jackknife replicates (20 blocks) of the rank at every layer: the
    tuned side ``reps`` (default: the estimate ± a small spread), the base side ``base_reps``
    (default: the same for every cell, as for cells probed on the same rows)."""
    rec = record(method, seed, score=score, ratio=ratio, **kw)
    rec["n_eval_items"] = n_eval
    rec["jackknife"] = {"method": "jackknife", "blocks": 20, "level": 0.95, "replicates": {}}
    for layer in LAYERS:
        m = rec["metrics"][layer]
        base = np.asarray(
            base_reps
            if base_reps is not None
            else m["effective_rank_base"] + np.linspace(-0.01, 0.01, 20)
        )
        tuned = np.asarray(reps if reps is not None else base * ratio)
        rec["jackknife"]["replicates"][layer] = {
            "linear_cka": list(m["linear_cka"] + np.linspace(-1e-3, 1e-3, 20)),
            "effective_rank_base": list(base),
            "effective_rank_tuned": list(tuned),
        }
    return rec


def claims(records):
    return {c["claim"]: c for c in check_claims(build_tables(records))}


def test_a_one_seed_tie_is_undetermined_with_the_numbers():
    # the demo's case: PT-adapter 0.627 vs adapter 0.627 was "does not hold"
    c = claims([jk_record("adapter", score=0.627), jk_record("pt_adapter", score=0.627)])[PT_SCORE]
    assert c["verdict"].startswith("undetermined") and "one seed" in c["verdict"], c
    assert "held-out items" in c["verdict"]
    # both values with their intervals, and the difference's interval
    half = 1.959964 * math.sqrt(0.627 * 0.373 / 48)
    assert f"pt_adapter 0.627 ± {half:.3f}" in c["evidence"], c
    assert f"adapter 0.627 ± {half:.3f}" in c["evidence"]
    d = 1.959964 * math.sqrt(2 * 0.627 * 0.373 / 48)
    assert f"difference +0.000 [{-d:+.3f}, {d:+.3f}]" in c["evidence"], c


def test_one_seed_clear_gaps_hold_or_are_contradicted():
    gap = [jk_record("lora", score=0.30, n_eval=400), jk_record("pt_lora", score=0.60, n_eval=400)]
    c = claims(gap)[PT_SCORE]
    assert c["verdict"].startswith("holds") and "one seed" in c["verdict"], c
    flipped = [
        jk_record("lora", score=0.60, n_eval=400),
        jk_record("pt_lora", score=0.30, n_eval=400),
    ]
    c = claims(flipped)[PT_SCORE]
    assert c["verdict"].startswith("contradicted") and "one seed" in c["verdict"], c


def test_one_seed_rank_claims_read_the_jackknife_over_probe_rows():
    recs = [jk_record("lora", ratio=0.80), jk_record("pt_lora", ratio=0.95)]
    got = claims(recs)
    assert got[PT_RANK]["verdict"] == (
        "holds — one seed: 95 % jackknife interval over the probe rows"
    ), got[PT_RANK]
    assert got[LOWER]["verdict"].startswith("holds — one seed"), got[LOWER]
    tie = claims([jk_record("lora", ratio=0.9), jk_record("pt_lora", ratio=0.9)])[PT_RANK]
    assert tie["verdict"].startswith("undetermined — one seed"), tie
    assert "difference +0.000 [" in tie["evidence"]


def test_cells_on_the_same_probe_rows_are_paired():
    # both rank ratios swing together over the blocks: each side's interval is wide (± 0.11),
    # the difference's, taken replicate by replicate on the same rows, is a point (0.02)
    z = np.linspace(-1, 1, 20)
    base = 13.0 + z
    a = jk_record("lora", ratio=0.90, reps=base * (0.90 + 0.02 * z), base_reps=base)
    b = jk_record("pt_lora", ratio=0.92, reps=base * (0.92 + 0.02 * z), base_reps=base)
    c = claims([a, b])[PT_RANK]
    assert c["verdict"].startswith("holds"), c
    assert "lora 0.900 ± 0.1" in c["evidence"], c  # the wide side intervals are shown
    # the same ratio replicates, but other probe rows (the base's replicates differ): not
    # paired, the variances add and the gap is lost
    other = base[::-1]
    b_other = jk_record("pt_lora", ratio=0.92, reps=other * (0.92 + 0.02 * z), base_reps=other)
    c = claims([a, b_other])[PT_RANK]
    assert c["verdict"].startswith("undetermined"), c


def test_over_seeds_the_t_interval_decides_and_no_seed_flag():
    def recs(pt_scores, lora_scores):
        return [record("lora", s, score=v) for s, v in enumerate(lora_scores)] + [
            record("pt_lora", s, score=v) for s, v in enumerate(pt_scores)
        ]

    c = claims(recs([0.60, 0.61, 0.62], [0.30, 0.31, 0.32]))[PT_SCORE]
    assert c["verdict"] == "holds", c
    c = claims(recs([0.30, 0.31, 0.32], [0.60, 0.61, 0.62]))[PT_SCORE]
    assert c["verdict"] == "contradicted", c
    c = claims(recs([0.30, 0.60, 0.45], [0.40, 0.50, 0.45]))[PT_SCORE]
    assert c["verdict"] == "undetermined", c


def test_a_claim_of_two_comparisons_combines_their_verdicts():
    r = [
        jk_record("lora", score=0.3, n_eval=400),
        jk_record("pt_lora", score=0.6, n_eval=400),
        jk_record("adapter", score=0.6, n_eval=400),
        jk_record("pt_adapter", score=0.3, n_eval=400),
    ]
    assert claims(r)[PT_SCORE]["verdict"].startswith("mixed (1 of 2 hold, 1 contradicted)")
    r[3] = jk_record("pt_adapter", score=0.6, n_eval=400)
    assert claims(r)[PT_SCORE]["verdict"].startswith("undetermined (1 of 2 hold)")


def test_no_interval_is_undetermined():
    # one seed of a score that is not a bounded mean (CIDEr-D): no interval to read
    recs = [
        record("lora", task="captioning", score=4.0),
        record("pt_lora", task="captioning", score=9.0),
    ]
    for r in recs:
        r["scores"] = {"cider_d": r["scores"].pop("vqa_accuracy")}
    c = claims(recs)[PT_SCORE]
    assert c["verdict"] == "undetermined — one seed: no interval", c
    assert "9.000 (no interval)" in c["evidence"]


# -- the intervals against independent formulas --------------------------------------------
def side(values, col="primary_score"):
    return Side([{"cell": f"c{i}", "seed": i, col: v} for i, v in enumerate(values)])


def test_seed_difference_is_welchs_interval():
    a, b = [0.61, 0.64, 0.58, 0.66], [0.52, 0.57, 0.49]
    got = combine([(1, side(a)), (-1, side(b))], "primary_score")
    ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert got.route == "seeds"
    assert got.low == pytest.approx(ref.low, rel=1e-12) and got.high == pytest.approx(
        ref.high, rel=1e-12
    )
    one = combine([(1, side(a))], "primary_score")
    assert (one.value, one.low, one.high) == pytest.approx(mean_ci(a)[:3], rel=1e-12)


def test_one_seed_rows_interval_is_the_delete_one_block_jackknife():
    rng = np.random.default_rng(0)
    reps = 0.9 + 0.01 * rng.standard_normal(20)
    s = Side(
        [{"cell": "c", "seed": 0, "erank_ratio": 0.9}],
        {"c": {"replicates": {"erank_ratio": reps, "erank_base": np.ones(20)}}},
    )
    got = combine([(1, s)], "erank_ratio")
    se = math.sqrt(19 / 20 * ((reps - reps.mean()) ** 2).sum())
    half = stats.t.ppf(0.975, 19) * se
    assert got.route == "rows" and (got.low, got.high) == pytest.approx((0.9 - half, 0.9 + half))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=2, max_size=5),
    st.lists(st.floats(0, 1), min_size=2, max_size=5),
)
def test_swapping_the_sides_flips_the_verdict(a, b):
    ab = combine([(1, side(a)), (-1, side(b))], "primary_score")
    ba = combine([(1, side(b)), (-1, side(a))], "primary_score")
    flip = {"holds": "contradicted", "contradicted": "holds", "undetermined": "undetermined"}
    assert direction(ba) == flip[direction(ab)]
    assert ab.low <= ab.value <= ab.high
    assert direction(ab) != "holds" or ab.low > 0


def test_direction_needs_an_interval():
    assert direction(Estimate(5.0)) == "undetermined"
    assert direction(Estimate(0.1, 0.05, 0.2, "seeds")) == "holds"
    assert direction(Estimate(0.1, 0.05, 0.2, "seeds"), "<") == "contradicted"
    assert direction(Estimate(0.1, -0.05, 0.2, "seeds"), "<") == "undetermined"
    with pytest.raises(ValueError, match="claimed"):
        direction(Estimate(0.1, 0.0, 0.2), "!=")


# -- the tables and figures carry the same one-seed intervals as the claims ---------------


def test_one_seed_summary_rows_carry_the_claim_checks_intervals():
    from repspace.closed_forms.jackknife import jackknife_interval

    recs = [jk_record("lora", score=0.6, ratio=0.8, n_eval=50), jk_record("prefix", score=0.4)]
    tables = build_tables(recs)
    lora = next(r for r in tables.summary if r["method"] == "lora")
    # accuracy: p ± z √(p(1 − p)/n) over the held-out items
    half = stats.norm.ppf(0.975) * math.sqrt(0.6 * 0.4 / 50)
    assert lora["primary_score_ci_low"] == pytest.approx(0.6 - half, abs=1e-12)
    assert lora["primary_score_ci_high"] == pytest.approx(0.6 + half, abs=1e-12)
    # the rank ratio at the summary layer: the jackknife of its replicates, computed here
    layer = tables.cells[0]["summary_layer"]
    rep = recs[0]["jackknife"]["replicates"][layer]
    ratio = np.asarray(rep["effective_rank_tuned"]) / np.asarray(rep["effective_rank_base"])
    iv = jackknife_interval(lora["erank_ratio"], ratio)
    assert (lora["erank_ratio_ci_low"], lora["erank_ratio_ci_high"]) == pytest.approx(
        (iv.low, iv.high), abs=1e-12
    )
    # mean CKA over layers: the replicate-wise mean over layers
    ckas = np.mean([recs[0]["jackknife"]["replicates"][l]["linear_cka"] for l in LAYERS], 0)
    iv = jackknife_interval(lora["mean_linear_cka"], ckas)
    assert lora["mean_linear_cka_ci_low"] == pytest.approx(iv.low, abs=1e-12)
    # no replicates, no interval: the Fréchet distance and the parameter counts stay NaN
    assert math.isnan(lora["frechet_distance_ci_low"]) and math.isnan(
        lora["trainable_params_ci_low"]
    )
    assert lora["interval"] == (
        "one seed: 95 % jackknife interval over the probe rows; "
        "95 % interval over the held-out items"
    )


def test_two_seed_rows_keep_the_t_interval_over_seeds():
    recs = [jk_record("lora", seed=s, score=0.5 + 0.1 * s) for s in (0, 1)]
    row = build_tables(recs).summary[0]
    mean, low, high, _ = mean_ci([0.5, 0.6])
    assert (row["primary_score_ci_low"], row["primary_score_ci_high"]) == pytest.approx(
        (low, high), abs=1e-12
    )
    assert row["interval"] == "95 % t-interval over seeds"


def test_a_cell_without_replicates_or_items_has_no_interval():
    from tests.study.records import record

    row = build_tables([record("lora")]).summary[0]
    assert math.isnan(row["erank_ratio_ci_low"]) and math.isnan(row["primary_score_ci_low"])
    assert row["interval"] == "one seed: none"


def test_one_seed_summary_md_shows_the_intervals_and_says_where_they_come_from():
    from repspace.study.summary import _table

    recs = [jk_record("lora", score=0.6, n_eval=50)]
    tables = build_tables(recs)
    half = stats.norm.ppf(0.975) * math.sqrt(0.6 * 0.4 / 50)
    assert any(f"0.600 ± {half:.3f}" in line for line in _table(tables, "vqa"))


def test_one_seed_per_layer_bands_are_the_jackknife_over_rows():
    from repspace.closed_forms.jackknife import jackknife_interval
    from repspace.study.figures import _layer_means

    recs = [jk_record("lora")]
    tables = build_tables(recs)
    names, mean, low, high = _layer_means(tables, tables.summary[0], "effective_rank_tuned")
    assert names == LAYERS
    for j, layer in enumerate(LAYERS):
        reps = recs[0]["jackknife"]["replicates"][layer]["effective_rank_tuned"]
        iv = jackknife_interval(mean[j], np.asarray(reps))
        assert (low[j], high[j]) == pytest.approx((iv.low, iv.high), abs=1e-12)
