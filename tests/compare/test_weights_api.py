"""`repspace weights` as an API (issue 30 item 5): a settings class checked before anything is
read (errors name the field; the CLI names the option), one function that gives the same
numbers and files as the command, and progress bars with totals (issue 27)."""

import json

import pytest

from repspace.cli import main
from repspace.compare import weights_api
from repspace._constraints import SettingError
from repspace.compare.weights_api import WeightsConfig, weights_report


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("top_k", 0, "top_k must be an integer ≥ 1; got"),
        ("top_k", True, "top_k must be an integer ≥ 1; got"),
        ("threshold", 0.0, "threshold must be a number in (0, 1]"),
        ("threshold", 1.5, "threshold must be a number in (0, 1]"),
        ("side", "up", "side must be one of left, right"),
        ("num_samples", -1, "num_samples must be an integer ≥ 1"),
        ("batch_size", 2.5, "batch_size must be an integer ≥ 1"),
        ("merge_dtypes", ("float8",), "merge_dtypes must be dtypes from float32"),
        ("report", 3, "report must be a path"),
    ],
)
def test_every_bad_setting_is_one_line_naming_the_field(field, value, words):
    with pytest.raises(SettingError) as info:
        WeightsConfig(**{field: value})
    message = str(info.value)
    assert info.value.field == field and message.startswith(field) and words in message
    assert "\n" not in message and "--" not in message  # the API's vocabulary, not the CLI's


def test_unknown_options_list_the_known():
    with pytest.raises(ValueError, match="unknown option.*top_kk.*the options are"):
        weights_report("base", ["tuned"], top_kk=3)


def test_bad_settings_fail_before_any_model_or_file_is_read(
    monkeypatch, base_dir, lora_dir, tmp_path
):
    import repspace.checkpoints as checkpoints

    def no_loading(*a, **k):
        raise AssertionError("a model was loaded before the settings were checked")

    monkeypatch.setattr(checkpoints, "load_checkpoint", no_loading)
    monkeypatch.setattr(checkpoints, "preflight_checkpoints", no_loading)
    with pytest.raises(SettingError, match="^threshold"):
        weights_report(str(base_dir), [str(lora_dir)], threshold=2.0, output=tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_the_cli_names_the_option(base_dir, lora_dir, tmp_path, capsys):
    for args, option in (
        (["--top-k", "0"], "--top-k must be an integer ≥ 1"),
        (["--num-samples", "0"], "--num-samples must be an integer ≥ 1"),
        (["--merge-dtype", "float8"], "--merge-dtype must be dtypes from float32"),
    ):
        assert (
            main(["weights", str(base_dir), str(lora_dir), "-o", str(tmp_path / "w"), *args]) == 2
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and option in err[0], err
    assert not (tmp_path / "w").exists()


def test_the_api_writes_what_the_command_writes(base_dir, lora_dir, tmp_path, capsys):
    assert (
        main(
            [
                "weights",
                str(base_dir),
                str(lora_dir),
                "-o",
                str(tmp_path / "cli"),
                "--top-k",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    report = weights_report(
        str(base_dir),
        [str(lora_dir)],
        WeightsConfig(top_k=3, progress=False),
        output=tmp_path / "api",
    )
    assert report.output == tmp_path / "api"
    cli = (tmp_path / "cli" / "weights.json").read_text()
    api = (tmp_path / "api" / "weights.json").read_text()
    assert api == cli == json.dumps(report.to_dict(), indent=2, allow_nan=True)
    assert (tmp_path / "api" / "weights.csv").read_text() == (
        tmp_path / "cli" / "weights.csv"
    ).read_text()
    lines = weights_api.summary_lines(report)
    assert lines[0] in printed and lines[0].startswith("lora-r4: 6 changed linear maps")
    # without an output: measured, nothing written
    bare = weights_report(str(base_dir), [str(lora_dir)], top_k=3, progress=False)
    assert bare.output is None and json.dumps(bare.to_dict(), indent=2, allow_nan=True) == api


def test_weights_shows_bars_with_totals(base_dir, lora_dir, tmp_path, capsys):
    weights_report(str(base_dir), [str(lora_dir)], progress=True)  # the CLI's on a terminal
    err = capsys.readouterr().err
    assert "weights" in err and "1/1" in err  # one bar over the checkpoints
    assert "ΔW spectra" in err  # and one over the linear maps, with their count
    assert any(f"/{n} " in err or f"/{n}[" in err for n in range(6, 40))


def test_a_repspace_run_folder_is_read(tmp_path):
    """`repspace weights BASE runs/x` (the first-hour recipe): the run-folder loader is
    registered by the command itself (it failed with 'import repspace.training first')."""
    import subprocess
    import sys

    from repspace.training import TrainConfig, train

    run = tmp_path / "lora-run"
    train(
        TrainConfig(
            base="embedded",
            method="lora",
            task="vqa",
            steps=2,
            batch_size=4,
            n_train=8,
            n_eval=4,
            output_dir=str(run),
        ),
        progress=False,
    )
    # a fresh interpreter: nothing else has imported repspace.training
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "repspace",
            "weights",
            "embedded",
            str(run),
            "-o",
            str(tmp_path / "w"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "lora-run: 6 changed linear maps" in proc.stdout
        and (tmp_path / "w" / "weights.json").is_file()
    )
