"""Seed-to-seed baseline: consecutive seeds of a method compared with each other."""

import csv
import json
import math
from pathlib import Path

import pytest

from repspace.study import StudyConfig, run_study
from repspace.study.seed_baseline import seed_baseline, seed_pairs
from tests.study.conftest import LAYERS, StubCompare, _u


def config(**kw):
    data = {
        "name": "sb",
        "methods": ["base", "lora", "adapter"],
        "seeds": [0, 1, 2],
        "budgets": {"lora": [2, 4]},
        "steps": 3,
        "n_train": 20,
        "n_eval": 4,
    }
    data.update(kw)
    return StudyConfig.from_dict(data)


def study(tmp_path, trainer, comparer, **kw):
    return run_study(
        config(**kw),
        tmp_path,
        progress=False,
        train_fn=trainer,
        compare_fn=comparer,
        base_score_fn=lambda c, cell: {"vqa_accuracy": 0.1},
        figures=False,
    )


def test_pairs_consecutive_seeds_and_computes_the_table(tmp_path, trainer, comparer):
    result = study(tmp_path, trainer, comparer)
    pairer = StubCompare()
    rows = seed_baseline(result, compare_fn=pairer)
    # lora r2, lora r4, adapter: 3 groups x 2 consecutive pairs; base cells are skipped
    assert len(pairer.calls) == 6 and len(rows) == 6 * len(LAYERS)
    by_label = {r["label"]: r for r in result.records}
    for base, tuned, kw in pairer.calls:
        assert kw["base_override"] == "embedded" and kw["progress"] is False
        a = next(
            r for r in result.records if r["run_dir"] and base.endswith(Path(r["run_dir"]).name)
        )
        b = next(
            r for r in result.records if r["run_dir"] and tuned[0].endswith(Path(r["run_dir"]).name)
        )
        assert (a["cell"]["method"], a["cell"]["budget"]) == (
            b["cell"]["method"],
            b["cell"]["budget"],
        )
        assert b["cell"]["seed"] == a["cell"]["seed"] + 1
    for row in rows:
        a, b = by_label[row["cell_a"]], by_label[row["cell_b"]]
        # the stub's CKA: 1 - 0.3 u(name of the tuned side's run + layer)
        seeds = 1 - 0.3 * _u(Path(b["run_dir"]).name + row["layer"])
        base = (
            a["metrics"][row["layer"]]["linear_cka"] + b["metrics"][row["layer"]]["linear_cka"]
        ) / 2
        assert row["cka_seed_to_seed"] == pytest.approx(seeds, rel=1e-12)
        assert row["cka_base_to_tuned"] == pytest.approx(base, rel=1e-12)
        assert row["movement_ratio"] == pytest.approx((1 - base) / (1 - seeds), rel=1e-12)
        assert row["seed_b"] == row["seed_a"] + 1 and row["layer_index"] == LAYERS.index(
            row["layer"]
        )
    with open(tmp_path / "results" / "seed_baseline.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows)
    assert float(table[0]["movement_ratio"]) == pytest.approx(rows[0]["movement_ratio"])
    assert result.files["seed_baseline.csv"] == tmp_path / "results" / "seed_baseline.csv"


def test_pairs_are_cached_and_recomputed_when_settings_change(tmp_path, trainer, comparer):
    result = study(tmp_path, trainer, comparer)
    first = seed_baseline(result, compare_fn=StubCompare())
    again = StubCompare()
    assert seed_baseline(result, compare_fn=again) == first and again.calls == []
    assert len(list((tmp_path / "seed_baseline").glob("*--*.json"))) == 6
    assert len(seed_baseline(result, compare_fn=again, force=True)) == len(first)
    assert len(again.calls) == 6
    changed = study(tmp_path, trainer, comparer, compare={"num_samples": 32})
    third = StubCompare()
    seed_baseline(changed, compare_fn=third)
    assert len(third.calls) == 6 and third.calls[0][2]["num_samples"] == 32
    # a damaged cache file is recomputed, not trusted
    victim = next((tmp_path / "seed_baseline").glob("*.json"))
    victim.write_text("{not json")
    fourth = StubCompare()
    seed_baseline(changed, compare_fn=fourth)
    assert len(fourth.calls) == 1
    assert json.loads(victim.read_text())["schema"] == "repspace.study.seed_pair"


def test_one_seed_and_failures_are_notes_not_errors(tmp_path, trainer, comparer):
    result = study(tmp_path, trainer, comparer, seeds=[0])
    assert seed_pairs(result.records)[0] == []
    assert seed_baseline(result, compare_fn=StubCompare()) == []
    assert any("has no second seed" in n for n in result.notes)

    out = tmp_path / "two"
    result = run_study(
        config(seeds=[0, 1], methods=["lora", "adapter"]),
        out,
        progress=False,
        train_fn=trainer,
        compare_fn=comparer,
        figures=False,
    )
    calls = []

    def flaky(base, tuned, **kw):
        calls.append(base)
        if "adapter" in base:
            raise ValueError("disk full")
        return comparer(base, tuned, **kw)

    rows = seed_baseline(result, compare_fn=flaky)
    assert len(calls) == 3 and {r["method"] for r in rows} == {"lora"}
    assert any("failed: ValueError: disk full" in n for n in result.notes)


def test_identical_seeds_give_an_undefined_ratio(tmp_path, trainer):
    class Same(StubCompare):  # every run identical to every other: no seed variation
        def __call__(self, base, tuned, **kw):
            res = super().__call__(base, tuned, **kw)
            for layer in res.metrics[res.tuned_names[0]].values():
                layer["linear_cka"] = 1.0
            return res

    result = study(
        tmp_path, trainer, StubCompare(), methods=["lora"], budgets={"lora": [2]}, seeds=[0, 1]
    )
    rows = seed_baseline(result, compare_fn=Same())
    assert all(r["seed_variation"] == 0 and math.isnan(r["movement_ratio"]) for r in rows)


def test_figure_and_summary_section(tmp_path, trainer, comparer):
    from repspace.study.summary import markdown

    result = study(tmp_path, trainer, comparer)
    rows = seed_baseline(result, compare_fn=StubCompare())
    assert result.seed_baseline == rows
    for ext in ("pdf", "png"):
        assert (tmp_path / "figures" / f"seed_baseline.{ext}").stat().st_size > 1000
    md = markdown(result)
    assert "## Seed-to-seed baseline" in md and "figures/seed_baseline.png" in md
    lora_r2 = [r for r in rows if r["method"] == "lora" and r["budget"] == 2]
    line = next(l for l in md.splitlines() if l.startswith("| vqa lora r=2"))
    assert f"| {sum(r['movement_ratio'] for r in lora_r2) / len(lora_r2):.3g} |" in line
    assert line.split("|")[2].strip() == "2"  # two seed pairs (0-1, 1-2)
    no_fig = study(tmp_path / "nofig", trainer, comparer)
    seed_baseline(no_fig, compare_fn=StubCompare(), figures=False)
    assert not (tmp_path / "nofig" / "figures" / "seed_baseline.png").exists()
    assert "figures/seed_baseline.png" not in markdown(no_fig)


def test_cli_flag(tmp_path, monkeypatch, trainer, comparer, capsys):
    from repspace.cli import main
    from repspace.study import comparing, runner

    monkeypatch.setattr(runner, "default_train", trainer)
    monkeypatch.setattr(comparing, "default_compare", comparer)
    monkeypatch.setattr(runner, "default_base_scores", lambda c, cell: {"vqa_accuracy": 0.1})
    cfg = tmp_path / "s.toml"
    cfg.write_text(
        'name = "sb"\nmethods = ["base", "lora"]\nseeds = [0, 1]\nsteps = 2\n'
        "n_train = 8\nn_eval = 4\n"
    )
    out = tmp_path / "out"
    assert (
        main(["study", str(cfg), "-o", str(out), "--quiet", "--no-figures", "--seed-baseline"]) == 0
    )
    printed = capsys.readouterr().out
    assert "seed baseline: 1 seed pair(s) compared" in printed
    assert (out / "results" / "seed_baseline.csv").is_file()
    summary = (out / "summary.md").read_text()
    assert "## Seed-to-seed baseline" in summary and "seed_baseline.png" not in summary
    assert comparer.calls[-1][2]["base_override"] == "embedded"
