"""Round two (issue 26), `repspace train` / `pretrain` and their data: degenerate data refused
before training, outputs never inside or around any input of the run (data files
included), absurd method options refused at the door naming the option, and every data
decoding error naming its file (docs/security.md)."""

import json
import shutil

import pytest

from repspace import checkpoints
from repspace.training.data import nested_subset
from tests.hostile.conftest import refused

TRAIN = [
    "train",
    "--method",
    "lora",
    "--task",
    "classify",
    "--steps",
    "1",
    "--batch-size",
    "4",
    "--n-eval",
    "4",
    "--option",
    "r=2",
    "--no-progress",
]
ROWS = [
    ("a red circle", "red"),
    ("a blue square", "blue"),
    ("a green star", "green"),
    ("a red square", "red"),
    ("a blue circle", "blue"),
    ("a green circle", "green"),
]


@pytest.fixture
def no_model(monkeypatch):
    """Refusals that must come before the base is loaded: loading fails the test."""

    def boom(*a, **k):
        raise AssertionError("the base was loaded before the data / option check")

    monkeypatch.setattr(checkpoints, "load_checkpoint", boom)


def _texts(path, rows, prefix: bytes = b"", encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        prefix
        + "".join(
            json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in rows
        ).encode(encoding)
    )
    return path


def _spec(folder, train="train.jsonl", test="test.jsonl", prefix: bytes = b""):
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "spec.json"
    spec.write_bytes(
        prefix
        + json.dumps(
            {"task": "classify", "train": {"texts": train}, "test": {"texts": test}}
        ).encode()
    )
    return spec


def _data(folder, rows=ROWS):
    _texts(folder / "train.jsonl", rows)
    _texts(folder / "test.jsonl", ROWS)
    return _spec(folder)


# -- degenerate data -----------------------------------------------------------------------
def test_classify_where_every_label_is_the_same_is_refused(ws, capsys, no_model):
    spec = _data(ws.root / "data", [(t, "red") for t, _ in ROWS])
    line = refused(
        capsys,
        ws.root,
        [*TRAIN, "--base", ws.base, "--data", spec, "-o", "run"],
        names=str(ws.root / "data" / "train.jsonl"),
        out=ws.root / "work" / "run",
    )
    assert "'red': 6" in line and "two classes" in line


def test_classify_with_one_class_left_by_the_data_fraction_is_refused(ws, capsys, no_model):
    keep = set(nested_subset(20, 0.1, 0).tolist())  # the 2 records --data-fraction 0.1 keeps
    rows = [(f"shape number {i}", "red" if i in keep else "blue") for i in range(20)]
    spec = _data(ws.root / "data", rows)
    line = refused(
        capsys,
        ws.root,
        [*TRAIN, "--base", ws.base, "--data", spec, "-o", "run", "--data-fraction", "0.1"],
        names=str(ws.root / "data" / "train.jsonl"),
    )
    assert "--data-fraction 0.1" in line and "'red': 2" in line


def test_classify_on_a_one_class_shapes_world_is_refused(ws, capsys, no_model):
    # one scene of one shape: its leftmost and rightmost colours are the same
    line = refused(
        capsys,
        ws.root,
        [*TRAIN, "--base", ws.base, "--n-train", "1", "-o", "run"],
        names="shapes world",
    )
    assert "--n-train" in line and "count per class" in line


def test_a_split_without_records_names_its_file(ws, capsys, no_model):
    from PIL import Image

    data = ws.root / "data"
    (data / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(data / "images" / "1.png")
    (data / "train.json").write_text(json.dumps({"images": [], "annotations": []}))
    (data / "test.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "1.png"}],
                "annotations": [{"image_id": 1, "caption": "x"}],
            }
        )
    )
    spec = data / "coco.json"
    spec.write_text(
        json.dumps(
            {
                "task": "captioning",
                "train": {"annotations": "train.json", "images": "images"},
                "test": {"annotations": "test.json", "images": "images"},
            }
        )
    )
    line = refused(
        capsys,
        ws.root,
        [
            "train",
            "--method",
            "lora",
            "--task",
            "captioning",
            "--base",
            ws.base,
            "--data",
            spec,
            "-o",
            "run",
            "--steps",
            "1",
        ],
        names=str(data / "train.json"),
    )
    assert "no records" in line


# -- decoding ------------------------------------------------------------------------------
def test_byte_order_marks_in_the_spec_and_texts_are_not_data(tmp_path):
    from repspace.training import TrainConfig
    from repspace.training.data import load_records

    bom = "\ufeff".encode()
    _texts(tmp_path / "train.jsonl", ROWS, prefix=bom)
    _texts(tmp_path / "test.jsonl", ROWS, prefix=bom)
    spec = _spec(tmp_path, prefix=bom)
    records = load_records(TrainConfig(method="lora", task="classify", data=str(spec)), "train")
    assert [r["text"] for r in records] == [t for t, _ in ROWS]


@pytest.mark.parametrize("encoding,fix", [("latin-1", "UTF-8"), ("utf-16", "UTF-16")])
def test_labelled_texts_in_another_encoding_name_the_file_and_the_fix(
    ws, capsys, no_model, encoding, fix
):
    data = ws.root / "data"
    _texts(
        data / "train.jsonl",
        [("un caf\xe9 rouge", "red"), ("a blue square", "blue")],
        encoding=encoding,
    )
    _texts(data / "test.jsonl", ROWS)
    line = refused(
        capsys,
        ws.root,
        [*TRAIN, "--base", ws.base, "--data", _spec(data), "-o", "run"],
        names=str(data / "train.jsonl"),
    )
    assert fix in line and "save it as UTF-8" in line


@pytest.mark.parametrize("content", ["[" * 100000 + "]" * 100000, '{"task": ' + "7" * 5000 + "}"])
def test_a_data_spec_too_deep_or_with_a_giant_number_names_the_file(ws, capsys, no_model, content):
    spec = ws.root / "spec.json"
    spec.write_text(content)
    refused(
        capsys, ws.root, [*TRAIN, "--base", ws.base, "--data", spec, "-o", "run"], names=str(spec)
    )


@pytest.mark.parametrize(
    "pattern", ["{image_id.__class__.__name__}.png", "{image_id:>999999999}", "{0}.png"]
)
def test_a_vqa_file_pattern_beyond_split_and_image_id_is_refused(ws, capsys, no_model, pattern):
    data = ws.root / "data"
    data.mkdir()
    spec = data / "vqa.json"
    entry = {
        "questions": "q.json",
        "annotations": "a.json",
        "images": "images",
        "file_pattern": pattern,
    }
    spec.write_text(json.dumps({"task": "vqa", "train": entry, "test": entry}))
    line = refused(
        capsys,
        ws.root,
        [
            "train",
            "--method",
            "lora",
            "--task",
            "vqa",
            "--base",
            ws.base,
            "--data",
            spec,
            "-o",
            "run",
            "--steps",
            "1",
        ],
        names=str(spec),
    )
    assert "file_pattern" in line


# -- outputs vs the run's inputs -------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(world, tmp_path_factory):
    """A finished classify run folder (what an earlier `repspace train -o run` left)."""
    from repspace.training import TrainConfig, train

    root = tmp_path_factory.mktemp("earlier-run")
    spec = _data(root / "data")
    run = root / "run"
    train(
        TrainConfig(
            base=str(world.base),
            method="lora",
            method_options={"r": 2},
            task="classify",
            data=str(spec),
            steps=1,
            batch_size=4,
            n_eval=4,
            output_dir=str(run),
        ),
        progress=False,
    )
    return run


@pytest.mark.parametrize("where,overwrite", [("spec", True), ("texts", True), ("texts", False)])
def test_data_inside_the_run_folder_is_never_deleted(
    ws, capsys, no_model, finished_run, where, overwrite
):
    run = ws.root / "work" / "run"
    shutil.copytree(finished_run, run)
    if where == "spec":  # the whole data folder inside the earlier run folder
        spec, named = _data(run / "data"), run / "data"
    else:  # the spec outside, one file it names inside
        _texts(run / "my-train.jsonl", ROWS)
        _texts(ws.root / "data" / "test.jsonl", ROWS)
        spec = _spec(ws.root / "data", train="../work/run/my-train.jsonl")
        named = "my-train.jsonl"
    line = refused(
        capsys,
        ws.root,
        [
            *TRAIN,
            "--base",
            ws.base,
            "--data",
            spec,
            "-o",
            run,
            *(["--overwrite"] if overwrite else []),
        ],
        names=str(named),
    )
    assert str(run) in line and "contains" in line


def test_a_run_folder_inside_the_training_images_is_refused(ws, capsys, no_model):
    from PIL import Image

    data = ws.root / "data"
    (data / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(data / "images" / "1.png")
    doc = {
        "images": [{"id": 1, "file_name": "1.png"}],
        "annotations": [{"image_id": 1, "caption": "x"}],
    }
    (data / "captions.json").write_text(json.dumps(doc))
    spec = data / "coco.json"
    entry = {"annotations": "captions.json", "images": "images"}
    spec.write_text(json.dumps({"task": "captioning", "train": entry, "test": entry}))
    out = data / "images" / "run"
    line = refused(
        capsys,
        ws.root,
        [
            "train",
            "--method",
            "lora",
            "--task",
            "captioning",
            "--base",
            ws.base,
            "--data",
            spec,
            "-o",
            out,
            "--steps",
            "1",
        ],
        names=str(data / "images"),
        out=out,
    )
    assert "is inside" in line


@pytest.mark.parametrize("where", ["cwd", "symlink"])
def test_pretrain_output_is_checked_like_every_output(ws, capsys, where):
    work = ws.root / "work"
    if where == "cwd":
        out, names = ".", str(work)
    else:
        (ws.root / "elsewhere").mkdir()
        (work / "link").symlink_to(ws.root / "elsewhere")
        out, names = "link", "symbolic link"
    refused(capsys, ws.root, ["pretrain", "--quick", "--no-progress", "-o", out], names=names)


# -- options -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method,option",
    [
        ("adapter", "init_scale=1e300"),
        ("adapter", "init_scale=Infinity"),
        ("adapter", "parallel_scale=1e300"),
        ("lora", "alpha=NaN"),
        ("lora", "alpha=1e300"),
    ],
)
def test_an_absurd_method_option_is_refused_at_the_door(ws, capsys, no_model, method, option):
    line = refused(
        capsys,
        ws.root,
        [
            "train",
            "--method",
            method,
            "--task",
            "classify",
            "--base",
            ws.base,
            "--option",
            option,
            "-o",
            "run",
            "--steps",
            "1",
        ],
        names=option.split("=")[0],
    )
    assert "lr" not in line


def test_a_non_finite_first_loss_blames_the_base_or_the_options_not_the_lr(ws, capsys):
    from safetensors.torch import load_file, save_file

    from repspace.cli import main

    bad = ws.root / "bad-base"
    shutil.copytree(ws.base, bad)
    state = load_file(bad / "model.safetensors")
    key = next(k for k in state if k.endswith("word_embeddings.weight"))
    state[key] = state[key] * float("inf")
    save_file(state, bad / "model.safetensors", metadata={"format": "pt"})
    spec = _data(ws.root / "data")
    capsys.readouterr()
    assert main([str(a) for a in [*TRAIN, "--base", bad, "--data", spec, "-o", "run"]]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "before any update" in line and str(bad) in line and "lower" not in line
