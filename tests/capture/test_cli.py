"""`repspace layers MODEL` (wired through repspace.capture.cli)."""

import argparse

import pytest

from repspace.capture.cli import add_layers_parser, main, run_layers


@pytest.fixture
def checkpoint(_blip_caption, tmp_path):
    config = _blip_caption.config
    config.architectures = ["BlipForConditionalGeneration"]
    config.save_pretrained(tmp_path)  # config only: names need no weights
    return tmp_path


def test_parser_wiring():
    parser = argparse.ArgumentParser()
    add_layers_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["layers", "some/dir", "--format", "flat", "--select", "blocks"])
    assert args.command == "layers" and args.model == "some/dir" and args.select == ["blocks"]


def test_tree_flat_and_select(checkpoint, capsys):
    assert main(["layers", str(checkpoint)]) == 0
    tree = capsys.readouterr().out
    assert tree.startswith("BlipForConditionalGeneration")
    assert "layers  (container)" in tree and "(BlipEncoderLayer)  [blocks, vision]" in tree
    assert main(["layers", str(checkpoint), "--format", "flat"]) == 0
    flat = capsys.readouterr().out.splitlines()
    assert "vision_model.encoder.layers.0  (BlipEncoderLayer)  [blocks, vision]" in flat
    assert "text_decoder.bert.encoder.layer.1  (BlipTextLayer)  [blocks, text]" in flat
    assert main(["layers", str(checkpoint), "--select", "text_decoder.*.layer.*"]) == 0
    assert [l.split()[0] for l in capsys.readouterr().out.splitlines()] == [
        "text_decoder.bert.encoder.layer.0",
        "text_decoder.bert.encoder.layer.1",
    ]


def test_errors_are_one_line(checkpoint, tmp_path, capsys):
    assert main(["layers", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("repspace layers: error:") and err.count("\n") == 1
    assert main(["layers", str(checkpoint), "--select", "vision_model.layer.*"]) == 2
    assert "closest names" in capsys.readouterr().err
    assert (
        run_layers(
            argparse.Namespace(
                model=str(checkpoint),
                format="flat",
                select=None,
                model_class="NoSuchModel",
                depth=None,
            )
        )
        == 2
    )
