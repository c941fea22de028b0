"""Paths read from manifests and resume states stay inside their folder (symlinks included)."""

import json
import os

import pytest
from safetensors.torch import save_file
import torch

from tests.hostile.conftest import FAST, refused


def _run_folder(ws, weights_file=None, **overrides):
    """A run folder whose manifest is complete enough to reach the weights-file check."""
    run = ws.root / "run"
    run.mkdir()
    manifest = {
        "schema": "repspace.run",
        "schema_version": 1,
        "weights_format": "repspace.trainable",
        "method": "lora",
        "method_config": {"method": "lora"},
        "task": "vqa",
        "base": str(ws.base),
    }
    if weights_file is not None:
        manifest["weights_file"] = weights_file
    manifest.update(overrides)
    (run / "repspace_manifest.json").write_text(json.dumps(manifest))
    return run


def _elsewhere(ws):
    """Someone else's weights, outside the run folder."""
    other = ws.root / "other"
    other.mkdir()
    save_file({"w": torch.zeros(2)}, other / "weights.safetensors")
    return other / "weights.safetensors"


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "deep-dotdot"])
def test_manifest_weights_file_outside_the_run(ws, capsys, kind):
    target = _elsewhere(ws)
    name = {
        "dotdot": "../other/weights.safetensors",
        "absolute": str(target),
        "deep-dotdot": "sub/../../other/weights.safetensors",
    }[kind]
    run = _run_folder(ws, name)
    line = refused(
        capsys, ws.root, ["compare", ws.base, run, "--probe", ws.probe, *FAST], names="weights_file"
    )
    assert str(run) in line


def test_manifest_weights_file_symlink_pointing_outside(ws, capsys):
    target = _elsewhere(ws)
    run = _run_folder(ws, "link.safetensors")
    os.symlink(target, run / "link.safetensors")
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, run, "--probe", ws.probe, *FAST],
        names="link.safetensors",
    )


def test_default_weights_file_is_a_symlink_outside(ws, capsys):
    target = _elsewhere(ws)
    run = _run_folder(ws)
    os.symlink(target, run / "weights.safetensors")
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, run, "--probe", ws.probe, *FAST],
        names="weights.safetensors",
    )


def test_weights_file_in_a_symlinked_subfolder(ws, capsys):
    target = _elsewhere(ws)
    run = _run_folder(ws, "sub/weights.safetensors")
    os.symlink(target.parent, run / "sub")
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, run, "--probe", ws.probe, *FAST],
        names="sub/weights.safetensors",
    )


@pytest.mark.parametrize("value", [["weights.safetensors"], 7, "", "weights\x00.safetensors"])
def test_weights_file_of_the_wrong_type(ws, capsys, value):
    run = _run_folder(ws, value)
    refused(
        capsys, ws.root, ["compare", ws.base, run, "--probe", ws.probe, *FAST], names="weights_file"
    )


def _resume_folder(ws, latest: dict):
    run = ws.root / "work" / "run"
    (run / "state").mkdir(parents=True)
    (run / "state" / "latest.json").write_text(json.dumps(latest))
    (run / "train_config.json").write_text("{}")
    return run


@pytest.mark.parametrize("where", ["dotdot", "absolute"])
def test_resume_state_dir_outside_the_run(ws, capsys, where):
    outside = ws.root / "stolen-state"
    outside.mkdir()
    run = _resume_folder(
        ws, {"dir": "../../stolen-state" if where == "dotdot" else str(outside), "step": 5}
    )
    refused(
        capsys,
        ws.root,
        [
            "train",
            "--method",
            "lora",
            "--task",
            "vqa",
            "--output",
            run,
            "--resume",
            "--no-progress",
        ],
        names="latest.json: dir",
    )


def test_resume_state_dir_symlinked_outside(ws, capsys):
    outside = ws.root / "stolen-state"
    outside.mkdir()
    run = _resume_folder(ws, {"dir": "step-000005", "step": 5})
    os.symlink(outside, run / "state" / "step-000005")
    refused(
        capsys,
        ws.root,
        [
            "train",
            "--method",
            "lora",
            "--task",
            "vqa",
            "--output",
            run,
            "--resume",
            "--no-progress",
        ],
        names="step-000005",
    )
