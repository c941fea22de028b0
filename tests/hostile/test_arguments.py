"""Bad arguments: refused in one line naming the option, before any model is loaded (layer
names: as soon as the layers are known, before the capture)."""

import json

import pytest

import repspace.compare.api as api
import repspace.compare.engine as engine
from repspace.cli import main
from tests.hostile.conftest import FAST, refused


@pytest.fixture
def no_model(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a model was loaded before the argument check")

    monkeypatch.setattr(api, "load_checkpoint", boom)


@pytest.fixture
def no_capture(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the capture ran before the layer-name check")

    monkeypatch.setattr(engine, "capture_sides", boom)


def _compare(ws, *extra):
    # FAST first: a later repetition of an option wins in argparse
    return ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST, "-o", "out", *extra]


@pytest.mark.parametrize(
    "args,names",
    [
        (["--metrics", "linear_ckaa"], "linear_ckaa"),
        (["--metrics", "linear_cka,bogus"], "bogus"),
        (["--metrics", "cka"], "'cka'"),
        (["--metrics", ","], "--metrics"),
        (["--sample-rows", "-1"], "--sample-rows"),
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "-5"], "--batch-size"),
        (["--num-samples", "0"], "--num-samples"),
        (["--max-length", "0"], "--max-length"),
        (["--dist-timeout", "-1"], "--dist-timeout"),
        (["--layers", ","], "--layers"),
        (["--spectrum-layers", ","], "--spectrum-layers"),
        (["--sample-rows", "0", "--metrics", "rbf_cka"], "--sample-rows"),
        (["--tuned-per-pass", "0"], "--tuned-per-pass"),
        (["--batch-size", "abc"], "--batch-size"),
        (["--dtype", "float8"], "--dtype"),
        (["--frobnicate"], "--frobnicate"),
        (["--pooling", "median"], "--pooling"),
    ],
)
def test_bad_compare_option_before_loading(ws, capsys, no_model, args, names):
    refused(capsys, ws.root, _compare(ws, *args), names=names, out=ws.root / "work" / "out")


def test_missing_last_tuned_checkpoint_fails_before_loading(ws, capsys, no_model):
    missing = ws.root / "no-such-adapter"
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, missing, "--probe", ws.probe, *FAST],
        names=str(missing),
    )


def test_missing_probe_fails_before_loading(ws, capsys, no_model):
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.root / "nope.txt", *FAST],
        names="nope.txt",
    )


@pytest.mark.parametrize(
    "option,value",
    [
        ("--spectrum-layers", "encoder.layer.9"),
        ("--spectrum-layers", "encoder.layer.0,nope"),
        ("--embedding-layer", "pooler.dense"),
    ],
)
def test_unknown_layer_choice_before_capture(ws, capsys, no_capture, option, value):
    refused(capsys, ws.root, _compare(ws, option, value), names=option)


def test_layer_error_names_the_checkpoint(ws, capsys):
    # the third block exists in the base and the first tuned model, not in the second one
    line = refused(
        capsys,
        ws.root,
        [
            "compare",
            ws.base,
            ws.adapter,
            ws.small,
            "--probe",
            ws.probe,
            *FAST,
            "--layers",
            "encoder.layer.2",
        ],
        names="tiny-bert-2",
    )
    assert "encoder.layer.2" in line


def test_study_jobs(ws, capsys):
    cfg = ws.root / "study.toml"
    cfg.write_text('name = "t"\nmethods = ["lora"]\ntasks = ["vqa"]\n')
    refused(capsys, ws.root, ["study", cfg, "--jobs", "2"], names="--jobs")


def test_study_output_is_the_base_checkpoint(ws, capsys):
    cfg = ws.root / "study.toml"
    cfg.write_text(
        f'name = "t"\nbase = {json.dumps(str(ws.base))}\nmethods = ["base"]\ntasks = ["vqa"]\n'
    )
    refused(capsys, ws.root, ["study", cfg, "-o", ws.base], names=str(ws.base))


def test_study_output_is_someone_elses_folder(ws, capsys):
    cfg = ws.root / "study.toml"
    cfg.write_text('name = "t"\nmethods = ["base"]\ntasks = ["vqa"]\n')
    folder = ws.root / "work" / "docs"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    refused(capsys, ws.root, ["study", cfg, "-o", folder], names=str(folder))


def test_train_unknown_method(ws, capsys):
    refused(
        capsys,
        ws.root,
        ["train", "--method", "lorra", "--task", "vqa", "--output", "run"],
        names="lorra",
        out=ws.root / "work" / "run",
    )


def test_train_output_under_a_file(ws, capsys):
    (ws.root / "work" / "afile").write_text("x")
    refused(
        capsys,
        ws.root,
        ["train", "--method", "lora", "--task", "vqa", "--output", "afile/run", "--no-progress"],
        names="afile",
    )


def test_train_output_is_someone_elses_folder(ws, capsys):
    folder = ws.root / "work" / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
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
            folder,
            "--overwrite",
            "--no-progress",
        ],
        names=str(folder),
    )


def test_layers_of_a_missing_model(ws, capsys):
    refused(capsys, ws.root, ["layers", ws.root / "nope"], names="nope")


def test_no_traceback_for_an_unexpected_error_and_debug_shows_it(ws, capsys, monkeypatch):
    def bug(*a, **k):
        raise ZeroDivisionError("a repspace bug")

    monkeypatch.setattr(api, "load_checkpoint", bug)
    rc = main([str(a) for a in _compare(ws)])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.splitlines()) == 1 and "--debug" in err and "Traceback" not in err
    rc = main([str(a) for a in _compare(ws, "--debug")])
    err = capsys.readouterr().err
    assert (
        rc == 1
        and "Traceback" in err
        and err.splitlines()[-1].startswith("repspace compare: error")
    )


def test_train_absurd_lora_rank(ws, capsys):
    refused(
        capsys,
        ws.root,
        [
            "train",
            "--method",
            "lora",
            "--task",
            "vqa",
            "--option",
            "r=1000000000",
            "--output",
            "run",
            "--no-progress",
        ],
        names="--option r must be an integer from 1 to 65536; got 1000000000",
        out=ws.root / "work" / "run",
    )


def test_too_few_probe_samples_before_loading(ws, capsys, no_model):
    probe = ws.root / "three.txt"
    probe.write_text("a red circle\na blue square\na star\n")
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", probe, *FAST, "-o", "out"],
        names=str(probe),
        out=ws.root / "work" / "out",
    )


@pytest.mark.parametrize("name", ["../../escape", "/abs", ".hidden", "a/b"])
def test_study_name_cannot_leave_the_studies_folder(ws, capsys, name):
    cfg = ws.root / "study.toml"
    cfg.write_text(f'name = {json.dumps(name)}\nmethods = ["base"]\ntasks = ["vqa"]\n')
    refused(capsys, ws.root, ["study", cfg], names="name")


def test_demo_into_someone_elses_folder(ws, capsys):
    folder = ws.root / "work" / "docs"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    refused(capsys, ws.root, ["demo", "--quick", "-o", folder], names=str(folder))


def test_train_json_refusal_is_one_line_on_stderr(ws, capsys):
    (ws.root / "work" / "afile").write_text("x")
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
            "afile/run",
            "--no-progress",
            "--json",
        ],
        names="afile",
    )


def test_output_refusal_does_not_depend_on_the_rank(ws, capsys, monkeypatch, no_model):
    """Under torchrun every rank checks -o before loading: one rank refusing alone would leave
    the others waiting for it at the first collective."""
    out = ws.root / "work" / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    monkeypatch.setenv("RANK", "1")
    refused(capsys, ws.root, _compare(ws, "-o", out), names=str(out))
