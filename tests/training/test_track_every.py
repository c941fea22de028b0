"""`repspace train --track-every N`: the distortion tracker inside repspace's own training
loop changes no weight and no loss, measures at step 0 and every N steps (across a stage
boundary and an interruption), and its last values are compare's of the saved run."""

import json

import pytest
import torch
from safetensors.torch import load_file

from repspace._constraints import SettingError
from repspace.training import train

from conftest import small_config


def _equal(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def _weights(run_dir):
    return load_file(str(run_dir / "weights.safetensors"))


@pytest.mark.parametrize("method", ["lora", "pt_lora"])
def test_tracking_changes_nothing_and_measures_every_n_steps(tiny_base, tmp_path, method):
    base = tiny_base("blip")
    kw = dict(method=method, steps=6, n_train=8, batch_size=4)
    plain = train(
        small_config(base, tmp_path, output_dir=str(tmp_path / "plain"), **kw), progress=False
    )
    tracked = train(
        small_config(base, tmp_path, output_dir=str(tmp_path / "tracked"), **kw),
        progress=False,
        track_every=3,
        track_samples=16,
    )
    assert tracked.losses == plain.losses  # bit for bit: every RNG state restored
    assert _equal(_weights(plain.run_dir), _weights(tracked.run_dir))
    assert (
        plain.manifest["config_hash"] == tracked.manifest["config_hash"]
    )  # not part of the config
    traj = json.loads((tmp_path / "tracked" / "track" / "trajectory.json").read_text())
    steps = sorted({int(r["step"]) for r in traj["records"]}) if "records" in traj else None
    csv = (tmp_path / "tracked" / "track" / "trajectory.csv").read_text().splitlines()
    steps = steps or sorted({int(line.split(",")[0]) for line in csv[1:]})
    assert steps == [0, 3, 6]
    first = [line for line in csv[1:] if line.startswith("0,") and ",linear_cka," in line]
    # step 0: LoRA's zero B leaves the base; PT-LoRA's initial prefix already moves the text
    # tokens' states a little (its stage 1 starts from a random prefix)
    tol = 0 if method == "lora" else 1e-3
    assert first and all(
        float(line.split(",")[-1]) == pytest.approx(1.0, abs=tol) for line in first
    )
    assert (tmp_path / "tracked" / "track" / "figures").is_dir()


def test_an_interrupted_tracked_run_continues_its_trajectory(tiny_base, tmp_path):
    base = tiny_base("blip")
    cfg = small_config(
        base,
        tmp_path,
        output_dir=str(tmp_path / "cut"),
        method="lora",
        steps=6,
        n_train=8,
        batch_size=4,
        save_every=100,
    )

    def stop(step, loss):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, callback=stop, track_every=2, track_samples=16)
    csv = (tmp_path / "cut" / "track" / "trajectory.csv").read_text().splitlines()
    assert sorted({int(line.split(",")[0]) for line in csv[1:]}) == [0, 2, 4]
    train(cfg, progress=False, track_every=2, track_samples=16)
    csv = (tmp_path / "cut" / "track" / "trajectory.csv").read_text().splitlines()
    assert sorted({int(line.split(",")[0]) for line in csv[1:]}) == [0, 2, 4, 6]


def test_a_bad_tracking_argument_fails_before_training(tiny_base, tmp_path):
    base = tiny_base("blip")
    cfg = small_config(base, tmp_path, output_dir=str(tmp_path / "bad"), method="lora", steps=4)
    with pytest.raises(SettingError, match="^track_every must be an integer ≥ 1; got 0$"):
        train(cfg, progress=False, track_every=0)
    assert not (tmp_path / "bad").exists()  # refused before the run folder was made
