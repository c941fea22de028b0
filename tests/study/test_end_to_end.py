"""One real study: real training (repspace.training.train) and real compare on a tiny BLIP
saved to a temporary folder, then the CLI on the same folder (everything cached)."""

import argparse
import csv
import json
import math
import time

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("repspace.training")

from repspace.study import StudyConfig, run_study  # noqa: E402
from repspace.study.cli import add_study_parser, run_study_cli  # noqa: E402


# tiny_blip: tests/study/conftest.py


def test_real_study_trains_compares_caches_and_reports(tiny_blip, tmp_path, capsys):
    data = {
        "name": "e2e",
        "base": str(tiny_blip),
        "methods": ["base", "lora", "prefix"],
        "steps": 2,
        "batch_size": 4,
        "n_train": 8,
        "n_eval": 4,
        "compare": {"num_samples": 16, "batch_size": 16, "sample_rows": 16},
    }
    (tmp_path / "study.json").write_text(json.dumps(data))
    result = run_study(StudyConfig.from_dict(data), tmp_path / "out", progress=False)
    assert not result.failed and len(result.computed) == 3
    by = {r["cell"]["method"]: r for r in result.records}
    assert by["base"]["params"]["trainable"] == 0
    assert 0 < by["lora"]["params"]["trainable"] < by["lora"]["params"]["total"]
    assert "vqa_accuracy" in by["lora"]["scores"] and "vqa_accuracy" in by["base"]["scores"]
    layers = by["lora"]["layers"]
    assert len(layers) == 4  # the "blocks" preset: 2 vision + 2 text blocks
    for rec in result.records:
        for layer in layers:
            m = rec["metrics"][layer]
            assert -1e-9 <= m["linear_cka"] <= 1 + 1e-9 and m["effective_rank_tuned"] > 1
    assert by["base"]["metrics"][layers[-1]]["linear_cka"] == pytest.approx(1.0, abs=1e-9)
    # the one-seed claim intervals (issue 27): each cell keeps its jackknife replicates over
    # the probe rows, and two cells' base replicates agree exactly (the same rows in the same
    # blocks in separate compare calls), so their differences are paired
    jl, jp = by["lora"]["jackknife"], by["prefix"]["jackknife"]
    assert jl["blocks"] == jp["blocks"] == 16  # 16 probe rows: delete-one-row
    for layer in layers:
        assert len(jl["replicates"][layer]["effective_rank_tuned"]) == 16
        assert (
            jl["replicates"][layer]["effective_rank_base"]
            == jp["replicates"][layer]["effective_rank_base"]
        )
    # (prefix leaves the vision tower as it was; the text blocks moved differently)
    assert (
        jl["replicates"][layers[-1]]["effective_rank_tuned"]
        != jp["replicates"][layers[-1]]["effective_rank_tuned"]
    )
    # VQA: several questions per held-out image; the interval counts the 4 images, for the
    # untrained base as for a run (the base cell records how it was scored)
    assert (
        by["lora"]["n_eval_items"] > 4 and by["base"]["n_eval_items"] == by["lora"]["n_eval_items"]
    )
    assert by["base"]["eval_config"]["n_eval"] == 4 and by["lora"]["eval_config"] is None
    for method in ("base", "lora"):
        assert result.tables.evidence[by[method]["label"]]["n_eval_items"] == 4
    # and the summary rows carry those one-seed intervals (issue 27: every number with its
    # uncertainty), naming where they come from
    for row in result.tables.summary:
        assert row["primary_score_ci_low"] <= row["primary_score"] <= row["primary_score_ci_high"]
        assert row["interval"].startswith("one seed: 95 % jackknife"), row["interval"]
    run_dir = tmp_path / "out" / by["lora"]["run_dir"]
    assert (run_dir / "repspace_manifest.json").is_file()
    with open(tmp_path / "out" / "results" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["base", "lora", "prefix"]
    for name in ("cka_layers", "effective_rank_layers", "score_vs_preservation"):
        assert (tmp_path / "out" / "figures" / f"{name}.pdf").stat().st_size > 0

    # the CLI on the same study: every cell is cached, nothing trains
    parser = argparse.ArgumentParser()
    add_study_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "study",
            str(tmp_path / "study.json"),
            "-o",
            str(tmp_path / "out"),
            "--quiet",
            "--no-figures",
        ]
    )
    assert run_study_cli(args) == 0
    out = capsys.readouterr().out
    assert "0 computed, 3 cached" in out and "summary.md" in out
    args = parser.parse_args(
        ["study", str(tmp_path / "study.json"), "-o", str(tmp_path / "out"), "--dry-run"]
    )
    assert run_study_cli(args) == 0
    out = capsys.readouterr().out
    assert "3 cells (3 cached, 0 to run)" in out and "vqa-lora-d1-s0" in out
    assert "nothing to run: all 3 cells are cached" in out  # no calibration when all is cached

    # one more method: the dry run counts the cached cells and times only what would run
    data["methods"].append("ia3")
    data["steps"] = 40
    (tmp_path / "study.json").write_text(json.dumps(data))
    args = parser.parse_args(
        ["study", str(tmp_path / "study.json"), "-o", str(tmp_path / "out"), "--dry-run"]
    )
    before = sorted(p.name for p in (tmp_path / "out").rglob("*"))
    start = time.perf_counter()
    assert run_study_cli(args) == 0
    took = time.perf_counter() - start
    out = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == before  # nothing written
    # steps changed: every trained cell's key changed; the base cell stays cached
    assert "4 cells (1 cached, 3 to run)" in out
    line = next(x for x in out.splitlines() if x.startswith("estimated wall time"))
    assert "for the 3 cell(s) to run" in line and "on this machine" in line
    assert "cached, skipped: 1 cell(s) (vqa-base-s0)" in out
    assert "lora" in out and "ia3" in out and "s/step" in out and "calibration took" in out
    from repspace.study.estimate import estimate_study
    from repspace.study.runner import plan_study

    config = StudyConfig.from_dict(data)
    est = estimate_study(config, plan_study(config, tmp_path / "out"))
    assert est.cached == ["vqa-base-s0"] and len(est.to_run) == 3
    assert all(math.isfinite(v) and v > 0 for v in (est.seconds, est.low, est.high))
    assert est.low <= est.seconds <= est.high
    # each cell: set-up + 40 steps + evaluation + compare; the steps alone bound it below
    for label, seconds in est.per_cell.items():
        method = label.split("-")[1]
        assert seconds >= 40 * min(est.methods[method].steps)
    # short: a few steps per method, not the 40 of each cell
    assert all(len(t.steps) == 4 for t in est.methods.values())
    assert est.calibration_seconds < 60 and took < 120
