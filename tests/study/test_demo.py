"""The demo preset and `repspace demo --quick` (needs the embedded model)."""

import argparse

import pytest

from repspace.demo import QUICK_METHODS, add_parser, demo_config, run
from repspace.study import load_study_config, plan_study, preset_path
from repspace.study.cli import add_study_parser, run_study_cli


def test_preset_is_valid_and_covers_every_method_family(tmp_path):
    cfg = load_study_config(preset_path("demo"))  # validates every method and option
    assert set(cfg.methods) == {
        "base",
        "full",
        "lora",
        "adapter",
        "prefix",
        "prompt",
        "ia3",
        "adalink",
        "pt_lora",
        "pt_adapter",
    }
    assert cfg.base == "embedded" and cfg.tasks == ("vqa",)
    assert len(plan_study(cfg, tmp_path)) == 10
    quick = demo_config(quick=True)
    assert quick.methods == QUICK_METHODS and quick.steps == 2
    assert (cfg.track_every, cfg.track_samples) == (50, 64) and quick.track_every is None
    with pytest.raises(ValueError, match="no study preset 'nope'"):
        preset_path("nope")


def test_study_cli_rejects_parallel_jobs(tmp_path):
    parser = argparse.ArgumentParser()
    add_study_parser(parser.add_subparsers(dest="command"))
    with pytest.raises(ValueError, match="only --jobs 1"):
        run_study_cli(parser.parse_args(["study", "preset:demo", "--jobs", "2"]))


def _embedded_ready() -> bool:
    try:
        from repspace.models import embedded_path

        return (embedded_path() / "model.safetensors").is_file()
    except ImportError:
        return False


@pytest.mark.skipif(not _embedded_ready(), reason="the embedded model is not built yet")
def test_quick_demo_runs_end_to_end(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "demo"
    assert run(parser.parse_args(["demo", "--quick", "-o", str(out), "--quiet"])) == 0
    text = capsys.readouterr().out
    assert "Closest to the base representation" in text and "PT-PEFT vs vanilla" in text
    assert (out / "summary.md").is_file() and (out / "results" / "cells.csv").is_file()
    assert (out / "figures" / "ptpeft_vs_vanilla.png").is_file()
    # --quick is untracked (its runs stay seconds long): no trajectory; the full demo's is
    # drawn by the study (tests/study/test_trajectories.py)
    assert not (out / "figures" / "trajectory.png").exists()
    assert "Distortion during training:" not in text
    assert (out / "compare_report" / "report.html").is_file()
    # a rerun reuses every cached result, the joint compare report included (issue 17)
    import repspace.study.comparing as runner_mod

    stamp = (out / "compare_report" / "report.json").stat().st_mtime_ns
    calls = []
    real = runner_mod.default_compare
    runner_mod.default_compare = lambda *a, **k: calls.append(a) or real(*a, **k)
    try:
        assert run(parser.parse_args(["demo", "--quick", "-o", str(out), "--quiet"])) == 0
    finally:
        runner_mod.default_compare = real
    assert calls == []  # no cell and no joint report recomputed
    assert (out / "compare_report" / "report.json").stat().st_mtime_ns == stamp


@pytest.mark.skipif(not _embedded_ready(), reason="the embedded model is not built yet")
def test_the_demo_shows_its_trajectory_figure(tmp_path, capsys, monkeypatch):
    """The full demo is tracked (the preset's track_every); here the quick grid with the
    preset's tracking, through `repspace demo` itself: one trajectory figure, named at the end."""
    import csv

    import repspace.demo as demo

    full = demo_config()
    tracked = demo_config(quick=True).replace(track_every=full.track_every, track_samples=16)
    monkeypatch.setattr(demo, "demo_config", lambda quick=False: tracked)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "demo"
    assert (
        run(
            parser.parse_args(["demo", "--quick", "-o", str(out), "--quiet", "--no-compare-report"])
        )
        == 0
    )
    text = capsys.readouterr().out
    assert f"Distortion during training: {out / 'figures' / 'trajectory.png'}" in text
    assert (out / "figures" / "trajectory.png").stat().st_size > 1000
    with open(out / "results" / "trajectory.csv") as f:
        steps = {
            (r["method"], r["step"]) for r in csv.DictReader(f) if r["metric"] == "mean_linear_cka"
        }
    # each trained method from step 0 to its last step (2 steps: every 50 never falls due)
    assert steps == {(m, s) for m in QUICK_METHODS if m != "base" for s in ("0", "2")}
    assert "![trajectory](figures/trajectory.png)" in (out / "summary.md").read_text()
