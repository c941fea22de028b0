"""Malformed and truncated files: checkpoints, adapters, manifests, probes, study configs."""

import json
import struct
import zlib

import pytest

from tests.hostile.conftest import FAST, refused


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_safetensors_weights_file(ws, capsys):
    f = ws.root / "tuned.safetensors"
    f.write_bytes((ws.base / "model.safetensors").read_bytes())
    _truncate(f)
    refused(capsys, ws.root, ["compare", ws.base, f, "--probe", ws.probe, *FAST], names=str(f))


@pytest.mark.parametrize(
    "header",
    [b"\xff" * 8, struct.pack("<Q", 10) + b"not json!!", struct.pack("<Q", 2) + b"[]", b"\x00\x01"],
)
def test_garbage_safetensors_header(ws, capsys, header):
    f = ws.root / "tuned.safetensors"
    f.write_bytes(header)
    refused(capsys, ws.root, ["compare", ws.base, f, "--probe", ws.probe, *FAST], names=str(f))


def test_truncated_pickle_weights_file(ws, capsys):
    import torch

    f = ws.root / "tuned.pt"
    torch.save({"w": torch.zeros(64, 64)}, f)
    _truncate(f, 0.3)
    refused(capsys, ws.root, ["compare", ws.base, f, "--probe", ws.probe, *FAST], names=str(f))


def test_truncated_model_safetensors_in_a_model_folder(ws, capsys):
    _truncate(ws.base / "model.safetensors")
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST],
        names=str(ws.base),
    )


def test_truncated_adapter_weights(ws, capsys):
    _truncate(ws.adapter / "adapter_model.safetensors")
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST],
        names=str(ws.adapter / "adapter_model.safetensors"),
    )


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2, 3]",
        '"a string"',
        "",
        '{"model_type": "no-such-model"}',
        '{"model_type": "bert", "hidden_size": "big"}',
    ],
)
def test_broken_config_json(ws, capsys, content):
    (ws.base / "config.json").write_text(content)
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST],
        names=str(ws.base),
    )


def test_architectures_not_a_list(ws, capsys):
    cfg = json.loads((ws.base / "config.json").read_text())
    cfg["architectures"] = {"evil": 1}
    (ws.base / "config.json").write_text(json.dumps(cfg))
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST],
        names=str(ws.base),
    )


@pytest.mark.parametrize(
    "field,value",
    [
        ("r", "abc"),
        ("r", 10**9),
        ("r", -4),
        ("r", True),
        ("lora_alpha", [1]),
        ("base_model_name_or_path", 42),
        ("peft_type", {"x": 1}),
    ],
)
def test_adapter_config_with_wrong_types(ws, capsys, field, value):
    path = ws.adapter / "adapter_config.json"
    cfg = json.loads(path.read_text())
    cfg[field] = value
    path.write_text(json.dumps(cfg))
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST],
        names=str(path),
    )


@pytest.mark.parametrize("content", ["[]", "{broken", "\udcff".encode("utf-8", "surrogatepass")])
def test_adapter_config_not_an_object(ws, capsys, content):
    path = ws.adapter / "adapter_config.json"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST],
        names=str(path),
    )


@pytest.mark.parametrize(
    "manifest",
    [
        "[1]",
        "{oops",
        '{"schema": "repspace.run", "weights_format": ["x"]}',
        '{"schema": "repspace.run", "weights_format": "repspace.trainable", '
        '"method_config": "lora", "task": "vqa"}',
        '{"schema": "repspace.run", "weights_format": "repspace.trainable", '
        '"method_config": {}, "task": ["vqa"]}',
        '{"schema": "repspace.run", "weights_format": "repspace.future"}',
    ],
)
def test_broken_run_manifest(ws, capsys, manifest):
    run = ws.root / "run"
    run.mkdir()
    (run / "repspace_manifest.json").write_text(manifest)
    refused(capsys, ws.root, ["compare", ws.base, run, "--probe", ws.probe, *FAST], names=str(run))


@pytest.mark.parametrize("line", ["[1, 2]", '"just a string"', "{oops", "42"])
def test_jsonl_probe_line_that_is_not_an_object(ws, capsys, line):
    probe = ws.root / "probe.jsonl"
    probe.write_text('{"text": "a red circle"}\n' + line + "\n")
    refused(
        capsys, ws.root, ["compare", ws.base, ws.adapter, "--probe", probe, *FAST], names=str(probe)
    )


def test_probe_text_not_utf8(ws, capsys):
    probe = ws.root / "latin1.txt"
    probe.write_bytes("a red circle caf\xe9\n".encode("latin-1"))
    refused(
        capsys, ws.root, ["compare", ws.base, ws.adapter, "--probe", probe, *FAST], names=str(probe)
    )


def test_probe_csv_without_text_or_image_columns(ws, capsys):
    probe = ws.root / "probe.csv"
    probe.write_text("foo,bar\n1,2\n3,4\n")
    refused(
        capsys, ws.root, ["compare", ws.base, ws.adapter, "--probe", probe, *FAST], names=str(probe)
    )


def _png(width, height):
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("kind", ["bomb", "not-an-image", "empty"])
def test_bad_image_in_an_image_probe_folder(ws, capsys, kind):
    folder = ws.root / "images"
    folder.mkdir()
    (folder / "ok.png").write_bytes(_png(4, 4))
    bad = folder / "bad.png"
    bad.write_bytes(
        {"bomb": _png(40000, 40000), "not-an-image": b"<html>hi</html>", "empty": b""}[kind]
    )
    refused(
        capsys, ws.root, ["compare", ws.base, ws.adapter, "--probe", folder, *FAST], names=str(bad)
    )


def test_study_config_with_a_key_typo_in_train(ws, capsys):
    cfg = ws.root / "study.toml"
    cfg.write_text('name = "t"\nmethods = ["lora"]\ntasks = ["vqa"]\n[train]\nwarmup_ratoi = 0.1\n')
    refused(capsys, ws.root, ["study", cfg, "-o", ws.root / "work" / "s"], names="warmup_ratoi")


def test_study_config_that_is_not_toml(ws, capsys):
    cfg = ws.root / "study.toml"
    cfg.write_text('name = "t\nmethods = [lora\n')
    refused(capsys, ws.root, ["study", cfg, "-o", ws.root / "work" / "s"], names=str(cfg))


def test_run_manifest_with_an_absurd_rank(ws, capsys):
    import torch
    from safetensors.torch import save_file

    run = ws.root / "run"
    run.mkdir()
    save_file({"w": torch.zeros(2)}, run / "weights.safetensors")
    (run / "repspace_manifest.json").write_text(
        json.dumps(
            {
                "schema": "repspace.run",
                "weights_format": "repspace.trainable",
                "task": "vqa",
                "method_config": {"method": "lora", "r": 10**9},
                "base": str(ws.base),
            }
        )
    )
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, run, "--probe", ws.probe, *FAST],
        names=str(run / "repspace_manifest.json"),
    )


@pytest.mark.parametrize("where", ["config.json", "model.safetensors", "probe", "image"])
def test_named_pipe_instead_of_a_file(ws, capsys, where):
    import os

    if where == "probe":
        fifo = ws.root / "fifo.txt"
        args = ["compare", ws.base, ws.adapter, "--probe", fifo, *FAST]
    elif where == "image":
        (ws.root / "images").mkdir()
        fifo = ws.root / "images" / "a.png"
        args = ["compare", ws.base, ws.adapter, "--probe", ws.root / "images", *FAST]
    else:
        fifo = ws.base / where
        fifo.unlink()
        args = ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST]
    os.mkfifo(fifo)
    refused(capsys, ws.root, args, names=str(fifo))


def test_corrupt_or_foreign_cached_study_cells_are_not_trusted(tmp_path):
    from repspace.study.runner import CELL_SCHEMA, _read_record

    cells = tmp_path / "study" / "cells"
    cells.mkdir(parents=True)
    good = {
        "schema": CELL_SCHEMA,
        "key": "k",
        "metrics": {},
        "layers": [],
        "scores": {},
        "params": {},
        "cell": {},
        "run_dir": "runs/x",
    }
    cases = {
        "list": [1],
        "metrics-type": {**good, "metrics": []},
        "escape": {**good, "run_dir": "../../elsewhere/run"},
        "absolute": {**good, "run_dir": "/etc"},
    }
    for name, payload in cases.items():
        (cells / f"{name}.json").write_text(json.dumps(payload))
        assert _read_record(cells / f"{name}.json", "k") is None, name
    (cells / "ok.json").write_text(json.dumps(good))
    assert _read_record(cells / "ok.json", "k") == good


def test_model_folder_missing_weights_is_not_filled_with_random_values(ws, capsys):
    import shutil

    tuned = ws.root / "tuned"
    shutil.copytree(ws.base, tuned)
    cfg = json.loads((tuned / "config.json").read_text())
    cfg["num_hidden_layers"] = 4  # one block more than its weights hold
    (tuned / "config.json").write_text(json.dumps(cfg))
    line = refused(
        capsys,
        ws.root,
        ["compare", ws.base, tuned, "--probe", ws.probe, *FAST, "--layers", "encoder.layer.0"],
        names=str(tuned),
    )
    assert "random" in line and "encoder.layer.3" in line


def test_nan_weights_error_names_the_checkpoint(ws, capsys):
    import shutil

    from safetensors.torch import load_file, save_file

    good, bad = ws.root / "good", ws.root / "bad"
    shutil.copytree(ws.base, good)
    shutil.copytree(ws.base, bad)
    state = load_file(bad / "model.safetensors")
    key = next(k for k in state if k.endswith("encoder.layer.0.output.dense.weight"))
    state[key] = state[key] * float("nan")
    save_file(state, bad / "model.safetensors", metadata={"format": "pt"})
    line = refused(
        capsys, ws.root, ["compare", ws.base, good, bad, "--probe", ws.probe, *FAST], names="'bad'"
    )
    assert "non-finite" in line


@pytest.mark.parametrize("where", ["config.json", "adapter_config.json", "manifest", "jsonl"])
def test_deeply_nested_json(ws, capsys, where):
    deep = "[" * 100000 + "]" * 100000
    if where == "config.json":
        target, args = (
            ws.base / "config.json",
            ["compare", ws.base, ws.adapter, "--probe", ws.probe],
        )
    elif where == "adapter_config.json":
        target = ws.adapter / "adapter_config.json"
        args = ["compare", ws.base, ws.adapter, "--probe", ws.probe]
    elif where == "manifest":
        (ws.root / "run").mkdir()
        target = ws.root / "run" / "repspace_manifest.json"
        args = ["compare", ws.base, ws.root / "run", "--probe", ws.probe]
    else:
        target = ws.root / "probe.jsonl"
        args = ["compare", ws.base, ws.adapter, "--probe", target]
    target.write_text(deep)
    refused(capsys, ws.root, [*args, *FAST], names=str(target))


@pytest.mark.parametrize("content", ["text\nabc\x00def\n", "text\n" + "x" * 200000 + "\n"])
def test_csv_probe_with_nul_bytes_or_a_giant_field(ws, capsys, content):
    probe = ws.root / "probe.csv"
    probe.write_text(content)
    refused(
        capsys, ws.root, ["compare", ws.base, ws.adapter, "--probe", probe, *FAST], names=str(probe)
    )


@pytest.mark.parametrize(
    "suffix,content",
    [
        (".toml", b'name = "caf\xe9"\n'),
        (".json", b"[" * 50000),
        (".yaml", b"!!python/object/apply:os.system ['touch PWNED']"),
        (".yaml", b"- just\n- a list\n"),
    ],
)
def test_study_config_hostile_files(ws, capsys, suffix, content):
    cfg = ws.root / f"study{suffix}"
    cfg.write_bytes(content)
    refused(
        capsys,
        ws.root,
        ["study", cfg, "-o", ws.root / "work" / "s"],
        names=str(cfg),
        out=ws.root / "work" / "s",
    )
