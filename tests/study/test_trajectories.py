"""Issue 28 item 4: a study with ``track_every`` passes it to its training runs and draws the
distortion trajectories per method (mean ± 95 % CI over seeds) beside the end-point figures."""

import csv
import json
import math

import numpy as np
import pytest
from scipy import stats

from repspace.study import StudyConfig, plan_study, run_study
from repspace.track.trajectory import Trajectory

from tests.study.conftest import LAYERS, StubTrainer


def cka(method: str, seed: int, step: int, layer_index: int) -> float:
    """The stub runs' linear CKA: falls with the step, faster for full, per seed and layer."""
    rate = {"lora": 0.002, "full": 0.01}[method]
    return 1.0 - rate * step * (1 + 0.3 * seed) * (1 + 0.1 * layer_index)


class TrackingStub(StubTrainer):
    """The stub trainer, plus the trajectory ``train(track_every=N)`` writes (steps 0, N, ...,
    the last), and the tracking keywords it was given."""

    def __init__(self, write=True):
        super().__init__()
        self.track, self.write = [], write

    def __call__(self, cfg, progress=True, **track):
        self.track.append(track)
        result = super().__call__(cfg, progress)
        if self.write:
            traj = Trajectory()
            every = track["track_every"]
            for step in sorted({*range(0, cfg.steps, every), cfg.steps}):
                traj.add(
                    step,
                    {
                        layer: {
                            "linear_cka": cka(cfg.method, cfg.seed, step, i),
                            "effective_rank_ratio": 1.0 - 0.001 * step,
                        }
                        for i, layer in enumerate(LAYERS)
                    },
                )
            (result.run_dir / "track").mkdir(exist_ok=True)
            (result.run_dir / "track" / "trajectory.json").write_text(traj.to_json())
        return result


def config(**kw):
    data = {
        "name": "t",
        "methods": ["base", "lora", "full"],
        "seeds": [0, 1],
        "steps": 10,
        "n_train": 8,
        "n_eval": 4,
        "track_every": 4,
        "track_samples": 16,
        "compare": {"probe": "builtin"},
    }
    data.update(kw)
    return StudyConfig.from_dict(data)


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_tracked_study_writes_the_mean_and_ci_per_step(tmp_path, comparer):
    trainer = TrackingStub()
    result = run_study(
        config(),
        tmp_path,
        progress=False,
        train_fn=trainer,
        compare_fn=comparer,
        base_score_fn=lambda c, cell: {"vqa_accuracy": 0.1},
    )
    assert not result.failed
    # every trained run was asked to track, on the study's primary probe, without drawing
    # its own figures (the study draws every method's trajectory over seeds)
    assert (
        trainer.track
        == [
            {
                "track_every": 4,
                "track_probe": "builtin",
                "track_samples": 16,
                "track_figures": False,
            }
        ]
        * 4
    )
    table = rows(tmp_path / "results" / "trajectory.csv")
    summary = [r for r in table if r["metric"] == "mean_linear_cka"]
    assert {(r["method"], int(r["step"])) for r in summary} == {
        (m, s) for m in ("lora", "full") for s in (0, 4, 8, 10)
    }
    t = stats.t.ppf(0.975, 1)
    for r in summary:  # against the formula: mean over layers, then over the two seeds
        step = int(r["step"])
        per_seed = [
            np.mean([cka(r["method"], s, step, i) for i in range(len(LAYERS))]) for s in (0, 1)
        ]
        half = t * np.std(per_seed, ddof=1) / math.sqrt(2)
        assert int(r["n_seeds"]) == 2 and r["layer"] == "mean over layers"
        assert float(r["mean"]) == pytest.approx(np.mean(per_seed), abs=1e-12)
        assert float(r["ci_low"]) == pytest.approx(np.mean(per_seed) - half, abs=1e-12)
        assert float(r["ci_high"]) == pytest.approx(np.mean(per_seed) + half, abs=1e-12)
    # per layer too, every tracked metric
    one = next(
        r
        for r in table
        if r["method"] == "full"
        and r["step"] == "8"
        and r["layer"] == LAYERS[1]
        and r["metric"] == "linear_cka"
    )
    assert float(one["mean"]) == pytest.approx(np.mean([cka("full", s, 8, 1) for s in (0, 1)]))
    assert {r["metric"] for r in table} == {"mean_linear_cka", "linear_cka", "effective_rank_ratio"}
    # the figure, after the end-point figures, with its caption; the CSV listed
    figures = [name for name in result.files if name.endswith(".png")]
    assert figures[-1] == "trajectory.png" and "cka_layers.png" in figures
    for ext in ("png", "pdf"):
        assert (tmp_path / "figures" / f"trajectory.{ext}").stat().st_size > 1000
    md = (tmp_path / "summary.md").read_text()
    assert "![trajectory](figures/trajectory.png)" in md and "Distortion during training" in md
    assert "`results/trajectory.csv`" in md
    # the cells keep their trajectories: a rerun trains nothing and redraws the same table
    again = TrackingStub()
    run_study(
        config(),
        tmp_path,
        progress=False,
        train_fn=again,
        compare_fn=comparer,
        base_score_fn=lambda c, cell: {"vqa_accuracy": 0.1},
    )
    assert again.calls == [] and rows(tmp_path / "results" / "trajectory.csv") == table


def test_tracking_is_off_by_default_and_part_of_a_trained_cell_key(tmp_path, comparer):
    off, on = config(track_every=None), config()
    assert off.track_every is None
    keys = {p.label: p.key for p in plan_study(off, tmp_path)}
    tracked = {p.label: p.key for p in plan_study(on, tmp_path)}
    assert keys["vqa-base-s0"] == tracked["vqa-base-s0"]  # the base is not trained
    assert all(keys[k] != tracked[k] for k in keys if k != "vqa-base-s0")
    # untracked: the trainer gets no tracking keyword (a plain train_fn(cfg, progress) works),
    # and there is no trajectory output
    result = run_study(
        off,
        tmp_path,
        progress=False,
        train_fn=StubTrainer(),
        compare_fn=comparer,
        base_score_fn=lambda c, cell: {"vqa_accuracy": 0.1},
    )
    assert not result.failed and "trajectory.csv" not in result.files
    assert not (tmp_path / "results" / "trajectory.csv").exists()


def test_a_run_that_was_asked_to_track_and_wrote_nothing_fails_its_cell(tmp_path, comparer):
    result = run_study(
        config(seeds=[0]),
        tmp_path,
        progress=False,
        train_fn=TrackingStub(write=False),
        compare_fn=comparer,
        base_score_fn=lambda c, cell: {"vqa_accuracy": 0.1},
        figures=False,
    )
    assert set(result.failed) == {"vqa-lora-d1-s0", "vqa-full-d1-s0"}
    assert "asked to track its distortion but wrote no" in result.failed["vqa-lora-d1-s0"]


@pytest.mark.parametrize(
    "key,value,problem",
    [
        ("track_every", 0, "must be ≥ 1"),
        ("track_every", 2.5, "must be an integer"),
        ("track_samples", 2, "must be ≥ 4"),
    ],
)
def test_bad_tracking_keys_are_one_line_errors(key, value, problem):
    with pytest.raises(ValueError, match=f"key '{key}': {problem}"):
        config(**{key: value})


def test_a_real_tracked_study(tiny_blip, tmp_path):
    """2 seeds x 2 methods on the tiny BLIP, really trained and tracked."""
    pytest.importorskip("repspace.training")
    data = {
        "name": "track",
        "base": str(tiny_blip),
        "methods": ["base", "lora", "prefix"],
        "seeds": [0, 1],
        "steps": 4,
        "batch_size": 4,
        "n_train": 8,
        "n_eval": 4,
        "track_every": 2,
        "track_samples": 16,
        "compare": {"probe": "builtin", "num_samples": 16, "batch_size": 16, "sample_rows": 16},
    }
    result = run_study(StudyConfig.from_dict(data), tmp_path, progress=False)
    assert not result.failed and len(result.computed) == 5
    table = rows(tmp_path / "results" / "trajectory.csv")
    summary = {(r["method"], int(r["step"])): r for r in table if r["metric"] == "mean_linear_cka"}
    assert set(summary) == {(m, s) for m in ("lora", "prefix") for s in (0, 2, 4)}
    for (method, step), r in summary.items():
        # independently: each run's own track/trajectory.csv, mean over layers, then seeds
        per_seed = []
        for rec in result.records:
            if rec["cell"]["method"] != method:
                continue
            own = rows(tmp_path / rec["run_dir"] / "track" / "trajectory.csv")
            per_seed.append(
                np.mean(
                    [
                        float(x["value"])
                        for x in own
                        if x["metric"] == "linear_cka" and int(x["step"]) == step
                    ]
                )
            )
        assert len(per_seed) == 2 and int(r["n_seeds"]) == 2
        assert float(r["mean"]) == pytest.approx(np.mean(per_seed), abs=1e-12)
        low, high = float(r["ci_low"]), float(r["ci_high"])
        assert low <= float(r["mean"]) <= high
        if step == 0 and method == "lora":  # LoRA's B starts at 0: the base itself
            assert float(r["mean"]) == pytest.approx(1.0, abs=1e-9)
    assert summary["lora", 4]["mean"] != summary["prefix", 4]["mean"]
    assert (tmp_path / "figures" / "trajectory.png").stat().st_size > 1000
    rec = next(r for r in result.records if r["cell"]["method"] == "lora")
    assert json.loads(json.dumps(rec["trajectory"]))["steps"] == [0, 2, 4]
