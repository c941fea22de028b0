"""Real-data wiring (a tiny fake COCO / VQAv2 folder) and `repspace train` end to end."""

import argparse
import json

import numpy as np
import pytest

from repspace.training import load_run, train

from conftest import small_config


def _images(folder, ids, pattern):
    from PIL import Image

    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in ids:
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
            folder / pattern.format(image_id=i)
        )


def _coco(tmp_path):
    _images(tmp_path / "images", [1, 2, 3], "{image_id}.png")
    for split, ids in (("train", [1, 2]), ("test", [3])):
        doc = {
            "images": [{"id": i, "file_name": f"{i}.png"} for i in ids],
            "annotations": [
                {"image_id": i, "caption": c}
                for i in ids
                for c in ("a red circle at the top left", "there is a red circle")
            ],
        }
        (tmp_path / f"captions_{split}.json").write_text(json.dumps(doc))
    spec = {
        "task": "captioning",
        "train": {"annotations": "captions_train.json", "images": "images"},
        "test": {"annotations": "captions_test.json", "images": "images"},
    }
    (tmp_path / "coco.json").write_text(json.dumps(spec))
    return tmp_path / "coco.json"


def _vqa(tmp_path):
    _images(tmp_path / "images", [1, 2, 3], "img{image_id}.png")
    spec = {"task": "vqa"}
    for split, ids in (("train", [1, 2]), ("test", [3])):
        qs = [
            {"question_id": 10 * i + k, "image_id": i, "question": q}
            for i in ids
            for k, q in enumerate(("what color is the circle?", "is there a red square?"))
        ]
        anns = [
            {"question_id": q["question_id"], "answers": [{"answer": a} for a in ["red"] * 10]}
            for q in qs
        ]
        (tmp_path / f"q_{split}.json").write_text(json.dumps({"questions": qs}))
        (tmp_path / f"a_{split}.json").write_text(json.dumps({"annotations": anns}))
        spec[split] = {
            "questions": f"q_{split}.json",
            "annotations": f"a_{split}.json",
            "images": "images",
            "file_pattern": "img{image_id}.png",
        }
    (tmp_path / "vqa.json").write_text(json.dumps(spec))
    return tmp_path / "vqa.json"


def test_coco_style_captioning(tiny_base, tmp_path):
    spec = _coco(tmp_path)
    res = train(
        small_config(tiny_base("blip"), tmp_path, task="captioning", data=str(spec), steps=2),
        progress=False,
    )
    assert res.manifest["data"] == str(spec) and res.manifest["domain"] is None
    assert res.manifest["n_train_items"] == 4 and res.manifest["n_eval_items"] == 1
    assert set(res.scores) == {"bleu_4", "cider_d"}


def test_vqav2_style_vqa_with_soft_accuracy(tiny_base, tmp_path):
    spec = _vqa(tmp_path)
    res = train(small_config(tiny_base("blip"), tmp_path, data=str(spec), steps=2), progress=False)
    assert res.manifest["n_train_items"] == 4 and "vqa_accuracy/all" in res.scores


def test_corrupt_annotation_file_is_one_line(tiny_base, tmp_path):
    spec = _coco(tmp_path)
    (tmp_path / "captions_train.json").write_text(
        json.dumps({"images": [{"id": 1}], "annotations": []})
    )
    with pytest.raises(ValueError, match=r"captions_train.json: images\[0\] is missing key") as exc:
        train(
            small_config(tiny_base("blip"), tmp_path, task="captioning", data=str(spec)),
            progress=False,
        )
    assert "\n" not in str(exc.value)


def _parse(argv):
    from repspace.training.cli import add_train_parser

    parser = argparse.ArgumentParser(prog="repspace")
    add_train_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_end_to_end(tiny_base, tmp_path, capsys):
    from repspace.training.cli import parse_option, run_train

    assert parse_option("r=8") == ("r", 8) and parse_option("towers=text,vision") == (
        "towers",
        ["text", "vision"],
    )
    out = tmp_path / "cli-run"
    argv = [
        "train",
        "--method",
        "full",
        "--task",
        "vqa",
        "--base",
        tiny_base("blip"),
        "--steps",
        "2",
        "--batch-size",
        "8",
        "--n-train",
        "2",
        "--n-eval",
        "2",
        "--image-size",
        "18",
        "--lr",
        "1e-3",
        "--option",
        "freeze_vision=true",
        "--output",
        str(out),
        "--no-progress",
    ]
    assert run_train(_parse(argv)) == 0
    text = capsys.readouterr().out
    assert "trainable parameters:" in text and "vqa_accuracy" in text and str(out) in text
    ckpt = load_run(out)
    assert ckpt.manifest["method_config"]["freeze_vision"] is True
    assert not any(p.requires_grad for n, p in ckpt.model.named_parameters() if "vision_model" in n)
    assert run_train(_parse(argv + ["--json"])) == 0  # finished: returned, not retrained
    assert json.loads(capsys.readouterr().out)["run_dir"] == str(out)
    with pytest.raises(ValueError, match="no unfinished run"):
        run_train(_parse(argv + ["--resume"]))
    with pytest.raises(ValueError, match="NAME=VALUE"):
        run_train(_parse(argv + ["--option", "r"]))
