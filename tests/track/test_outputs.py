"""The trajectory table, its folder (atomic, never clobbering) and figures; the guard."""

import json
import math
import random

import numpy as np
import pytest
import torch

from repspace.track.guard import untouched
from repspace.track.trajectory import Trajectory, read_trajectory


def sample(steps=(0, 5, 10), layers=("enc.layer.0", "enc.layer.1", "enc.layer.2")):
    traj = Trajectory(settings={"pooling": "mean"}, probe={"num_samples": 8})
    for s in steps:
        traj.add(
            s,
            {
                layer: {
                    "linear_cka": 1 - 0.01 * s * (i + 1),
                    "effective_rank_ratio": 1 + 0.001 * s,
                    "effective_rank_base": 5.0,
                    "effective_rank_tuned": 5.0 + 0.005 * s,
                }
                for i, layer in enumerate(layers)
            },
        )
    return traj


def test_tidy_table_and_round_trip(tmp_path):
    traj = sample()
    traj.add(
        5,
        {
            "enc.layer.0": {"linear_cka": math.nan},
            "enc.layer.1": {"linear_cka": 0.5},
            "enc.layer.2": {"linear_cka": 0.25},
        },
    )  # a step measured again replaces it
    assert traj.steps == [0, 5, 10]
    lines = traj.to_csv().splitlines()
    assert lines[0] == "step,layer,layer_index,metric,value"
    assert "5,enc.layer.0,0,linear_cka," in lines  # NaN: an empty cell
    assert len(lines) == 1 + 3 * 3 * 4 - 3 * 3
    doc = json.loads(traj.to_json())
    assert doc["values"]["linear_cka"]["enc.layer.0"] == [1.0, None, 0.9]
    assert doc["values"]["effective_rank_ratio"]["enc.layer.0"] == [1.0, None, 1.01]
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "trajectory.json").write_text(traj.to_json())
    back = read_trajectory(tmp_path / "t")
    assert back.steps == traj.steps and back.layers == traj.layers
    for metric in traj.metrics:  # NaN where a value is undefined or was not measured
        np.testing.assert_array_equal(back.matrix(metric), traj.matrix(metric))
    assert list(traj.to_dataframe().columns) == ["step", "layer", "layer_index", "metric", "value"]
    resumed = Trajectory()
    resumed.add(10, {"enc.layer.0": {"linear_cka": 0.5}})
    resumed.add(15, {"enc.layer.0": {"linear_cka": 0.4}})
    assert resumed.merge(back).steps == [0, 5, 10, 15]
    assert resumed.at(10) == {"enc.layer.0": {"linear_cka": 0.5}}  # its own values win
    (tmp_path / "t" / "trajectory.json").write_text('{"schema": "repspace.report"}')
    with pytest.raises(ValueError, match="not a repspace trajectory"):
        read_trajectory(tmp_path / "t")


def test_folder_is_written_atomically_and_replaces_only_its_own(tmp_path):
    from repspace.outputs import OutputError
    from repspace.track.folder import write_trajectory

    out = write_trajectory(sample(), tmp_path / "track")
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == sorted(
        [
            "trajectory.csv",
            "trajectory.json",
            *(
                f"figures/{s}.{e}"
                for s in ("trajectory", "heatmap_linear_cka", "heatmap_effective_rank_ratio")
                for e in ("pdf", "png")
            ),
        ]
    )
    write_trajectory(sample(steps=(0, 1)), out, figures=False)  # a rerun replaces its own folder
    assert read_trajectory(out).steps == [0, 1] and not (out / "figures").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["track"]  # no staging folder left behind
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.csv").write_text("x")
    with pytest.raises(OutputError, match="not a repspace trajectory folder"):
        write_trajectory(sample(), tmp_path / "other")
    assert (tmp_path / "other" / "data.csv").read_text() == "x"


def test_figures(tmp_path):
    from repspace.track.figures import plot_heatmap, plot_runs, plot_trajectory

    many = sample(steps=range(0, 60, 2), layers=[f"enc.layer.{i}" for i in range(14)])
    assert len(plot_trajectory(many, tmp_path / "t")) == 2
    assert len(plot_heatmap(many, tmp_path / "h", "effective_rank_ratio")) == 2
    runs = {"lora-r8": sample(), "full": sample(steps=(0, 4, 8))}
    assert [p.suffix for p in plot_runs(runs, tmp_path / "runs")] == [".pdf", ".png"]
    assert plot_heatmap(sample(), tmp_path / "none", "no_such_metric") == []
    assert plot_trajectory(Trajectory(), tmp_path / "empty") == []


def test_untouched_restores_every_generator_and_flag():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).train()
    model[0].eval()
    before = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with pytest.raises(RuntimeError):
        with untouched(model):
            assert not model.training and not torch.is_grad_enabled()
            random.random(), np.random.rand(100), torch.rand(100), torch.randn(3)
            raise RuntimeError("a failed measurement")
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
    assert model.training and not model[0].training and model[1].training
    assert torch.is_grad_enabled() and before  # noqa: B015


def test_untouched_runs_the_forward_under_accelerates_autocast_wrapper_unwrapped():
    from types import MethodType

    model = torch.nn.Linear(2, 2)
    model._original_forward = model.forward
    model.forward = MethodType(lambda self, x: "autocast", model)  # what accelerate installs
    with untouched(model):
        assert torch.is_tensor(model(torch.ones(1, 2)))
    assert model(torch.ones(1, 2)) == "autocast"
