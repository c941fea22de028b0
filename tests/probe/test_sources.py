"""Probe data sources and their conversion into model inputs."""

import json

import numpy as np
import pytest
from PIL import Image

from repspace.probe import ProbeSet, load_probe, make_batches


def write_images(folder, n, size=8):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        name = f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / name)
        names.append(name)
    return names


def test_text_file_skips_blank_lines_and_subsets_deterministically(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("one\n\ntwo\nthree\n  \nfour\n")
    probe = load_probe(f)
    assert probe.texts == ["one", "two", "three", "four"] and probe.modalities == ("text",)
    a, b = load_probe(f, num_samples=2, seed=1), load_probe(f, num_samples=2, seed=1)
    assert a.texts == b.texts and len(a) == 2 and set(a.texts) <= set(probe.texts)
    assert a.sha256() == b.sha256() != probe.sha256()


def test_jsonl_with_images_and_questions(tmp_path):
    names = write_images(tmp_path / "imgs", 3)
    f = tmp_path / "vqa.jsonl"
    f.write_text(
        "\n".join(
            json.dumps({"image": f"imgs/{n}", "question": f"what is {i}?"})
            for i, n in enumerate(names)
        )
    )
    probe = load_probe(f)
    assert probe.modalities == ("text", "image") and probe.texts[2] == "what is 2?"
    assert probe.images[0].endswith("imgs/img0.png")


def test_csv_and_image_folder_with_captions(tmp_path):
    names = write_images(tmp_path / "d", 4)
    with open(tmp_path / "d" / "captions.csv", "w") as f:
        f.write("image,caption\n" + "".join(f"{n},picture {i}\n" for i, n in enumerate(names)))
    probe = load_probe(tmp_path / "d")
    assert len(probe) == 4 and probe.texts[1] == "picture 1"
    bare = tmp_path / "bare"
    write_images(bare, 2)
    assert load_probe(bare).modalities == ("image",)


@pytest.mark.parametrize(
    "content,match",
    [
        ('{"text": "a"}\nnot json\n', "line 2 is not valid JSON"),
        ('{"text": "a", "image": "missing.png"}\n', "does not exist"),
        ('{"text": "a"}\n{"caption": 3}\n', "record 1 has no text field"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, content, match):
    f = tmp_path / "bad.jsonl"
    f.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_probe(f)


def test_other_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_probe(tmp_path / "nope.txt")
    (tmp_path / "x.parquet").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown format"):
        load_probe(tmp_path / "x.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_probe(tmp_path / "empty")
    (tmp_path / "blank.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="empty"):
        load_probe(tmp_path / "blank.txt")
    with pytest.raises(ValueError, match="2 texts but 1 images"):
        ProbeSet("x", ["a", "b"], [np.zeros((2, 2, 3))])


def test_builtin_probe_is_deterministic():
    a, b = load_probe("builtin", num_samples=6), load_probe("builtin", num_samples=6)
    assert a.sha256() == b.sha256() and a.modalities == ("text", "image")
    assert a.images[0].shape == (32, 32, 3) and a.images[0].dtype == np.uint8


def test_make_batches_for_a_text_model_and_missing_modality(tmp_path):
    from tests.compare.conftest import tiny_bert, word_tokenizer

    probe = ProbeSet("t", ["a red circle", "the blue square is left of a star"] * 3)
    batches = list(make_batches(probe, tiny_bert(), word_tokenizer(), batch_size=4))
    assert [b["input_ids"].shape[0] for b in batches] == [4, 2]
    assert {"input_ids", "attention_mask"} <= set(batches[0])
    assert batches[1]["input_ids"].shape[1] == 8  # padded per batch, not globally
    images_only = ProbeSet("imgs", None, [np.zeros((4, 4, 3), np.uint8)])
    with pytest.raises(
        ValueError, match="needs text inputs but the probe data imgs has only image"
    ):
        next(make_batches(images_only, tiny_bert(), word_tokenizer()))
    with pytest.raises(ValueError, match="no tokenizer or processor"):
        next(make_batches(probe, tiny_bert(), None))
