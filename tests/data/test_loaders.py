"""COCO caption and VQAv2 loaders on tiny fixture datasets built in tmp_path."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from repspace.data import CocoCaptions, VQADataset, collate, load_image


def _write_image(path, color, size=(20, 12)):
    Image.fromarray(np.full((size[1], size[0], 3), color, np.uint8)).save(path)


@pytest.fixture
def coco(tmp_path):
    img = tmp_path / "images"
    img.mkdir()
    _write_image(img / "a.jpg", (255, 0, 0))
    _write_image(img / "b.png", (0, 0, 255))
    _write_image(img / "c.png", (0, 255, 0))
    doc = {
        "images": [
            {"id": 1, "file_name": "a.jpg"},
            {"id": 2, "file_name": "b.png"},
            {"id": 3, "file_name": "c.png"},
        ],
        "annotations": [
            {"image_id": 1, "caption": "A red picture."},
            {"image_id": 2, "caption": "blue"},
            {"image_id": 1, "caption": "all red"},
        ],
    }
    ann = tmp_path / "captions.json"
    ann.write_text(json.dumps(doc))
    return ann, img, doc


def test_coco_items(coco):
    ann, img, _ = coco
    ds = CocoCaptions(ann, img, image_size=16)
    assert len(ds) == 2  # image 3 has no caption
    item = ds[0]
    assert (
        item["id"] == 1
        and item["captions"] == ["A red picture.", "all red"]
        and item["caption"] == "A red picture."
    )
    assert item["image"].shape == (16, 16, 3) and item["image"].dtype == np.uint8
    assert abs(int(item["image"][..., 0].mean()) - 255) < 8 and item["image"][..., 2].mean() < 8
    assert ds.references() == [["A red picture.", "all red"], ["blue"]]
    pairs = CocoCaptions(ann, img, image_size=16, per_caption=True, image_format="float")
    assert len(pairs) == 3 and [pairs[i]["caption"] for i in range(3)] == [
        "A red picture.",
        "all red",
        "blue",
    ]
    assert pairs[0]["image"].shape == (3, 16, 16) and pairs[0]["image"].dtype == torch.float32
    batch = collate([ds[0], ds[1]])  # reference lists of different lengths
    assert batch["image"].shape == (2, 16, 16, 3) and batch["captions"][1] == ["blue"]


def _rewrite(path, doc):
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("annotations"), "missing top-level key 'annotations'"),
        (
            lambda d: d["images"][1].pop("file_name"),
            r"images\[1\] is missing key\(s\) \['file_name'\]",
        ),
        (
            lambda d: d["annotations"][2].pop("caption"),
            r"annotations\[2\] is missing key\(s\) \['caption'\]",
        ),
        (
            lambda d: d["annotations"].append({"image_id": 99, "caption": "x"}),
            "refers to image_id 99, which is not in 'images'",
        ),
        (lambda d: d["images"].append({"id": 1, "file_name": "a.jpg"}), "repeats image id 1"),
        (lambda d: d.__setitem__("images", {}), "'images' must be a list"),
        (
            lambda d: d["images"][0].__setitem__("file_name", "gone.jpg"),
            r"image file for image_id 1 does not exist: .*gone\.jpg",
        ),
    ],
)
def test_coco_errors(coco, mutate, message):
    ann, img, doc = coco
    mutate(doc)
    with pytest.raises(ValueError, match=message) as e:
        CocoCaptions(_rewrite(ann, doc), img)
    assert "\n" not in str(e.value)
    assert "captions.json" in str(e.value)


def test_coco_file_errors(coco, tmp_path):
    _, img, _ = coco
    with pytest.raises(ValueError, match=r"caption annotations file does not exist: .*nope\.json"):
        CocoCaptions(tmp_path / "nope.json", img)
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [}')
    with pytest.raises(ValueError, match=r"bad\.json is not valid JSON: .* line 1"):
        CocoCaptions(bad, img)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="top level must be a JSON object"):
        CocoCaptions(bad, img)


def test_lazy_image_errors(coco):
    ann, img, _ = coco
    ds = CocoCaptions(ann, img, check_files=False)
    (img / "b.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"cannot read image .*b\.png"):
        ds[1]
    (img / "a.jpg").unlink()
    with pytest.raises(ValueError, match=r"image file does not exist: .*a\.jpg"):
        ds[0]
    with pytest.raises(ValueError, match="does not exist"):
        load_image(img / "missing.png")


@pytest.fixture
def vqa(tmp_path):
    img = tmp_path / "val2014"
    img.mkdir()
    _write_image(img / "COCO_val2014_000000000007.jpg", (10, 200, 10))
    _write_image(img / "COCO_val2014_000000000042.jpg", (200, 10, 10))
    qs = {
        "questions": [
            {"question_id": 70, "image_id": 7, "question": "What color is it?"},
            {"question_id": 71, "image_id": 7, "question": "How many?"},
            {"question_id": 420, "image_id": 42, "question": "Is it red?"},
        ]
    }
    anns = {
        "annotations": [
            {
                "question_id": 70,
                "image_id": 7,
                "multiple_choice_answer": "green",
                "answers": [{"answer": "green"}] * 9 + [{"answer": "lime"}],
            },
            {"question_id": 71, "answers": [{"answer": "one"}, {"answer": "1"}, {"answer": "1"}]},
            {
                "question_id": 420,
                "image_id": 42,
                "multiple_choice_answer": "yes",
                "answers": [{"answer": "yes"}] * 10,
            },
        ]
    }
    qf, af = tmp_path / "questions.json", tmp_path / "annotations.json"
    qf.write_text(json.dumps(qs))
    af.write_text(json.dumps(anns))
    return qf, af, img, qs, anns


def test_vqa_items(vqa):
    qf, af, img, _, _ = vqa
    ds = VQADataset(qf, img, af, split="val2014", image_size=8)
    assert len(ds) == 3
    item = ds[0]
    assert item["question"] == "What color is it?" and item["question_id"] == 70 and item["id"] == 7
    assert item["answer"] == "green" and len(item["answers"]) == 10
    assert item["image"].shape == (8, 8, 3) and item["image"][..., 1].mean() > 150
    assert ds[1]["answer"] == "1"  # no multiple_choice_answer: most frequent human answer
    assert ds.references()[2] == ["yes"] * 10
    no_answers = VQADataset(qf, img)
    assert "answers" not in no_answers[0] and "answer" not in no_answers[0]
    with pytest.raises(ValueError, match="without an annotations file"):
        no_answers.references()


def test_vqa_custom_file_pattern(vqa, tmp_path):
    qf, _, img, _, _ = vqa
    for i in (7, 42):
        _write_image(img / f"img{i}.png", (0, 0, 0))
    ds = VQADataset(qf, img, file_pattern="img{image_id}.png")
    assert ds.files[42].endswith("img42.png")
    with pytest.raises(ValueError, match="file_pattern"):
        VQADataset(qf, img, file_pattern="{name}.jpg")


@pytest.mark.parametrize(
    "target, mutate, message",
    [
        (
            "q",
            lambda q, a: q["questions"][1].pop("image_id"),
            r"questions\[1\] is missing key\(s\) \['image_id'\]",
        ),
        (
            "q",
            lambda q, a: q["questions"].append(dict(q["questions"][0])),
            "repeats question_id 70",
        ),
        (
            "q",
            lambda q, a: q["questions"][1].__setitem__("image_id", 5),
            r"image file for image_id 5 does not exist: .*COCO_val2014_000000000005\.jpg",
        ),
        (
            "a",
            lambda q, a: a["annotations"][0]["answers"].append({"text": "x"}),
            r"annotations\[0\]\.answers\[10\] is missing key",
        ),
        (
            "a",
            lambda q, a: a["annotations"][1].pop("answers"),
            r"annotations\[1\] is missing key\(s\) \['answers'\]",
        ),
        (
            "a",
            lambda q, a: a["annotations"][1].__setitem__("question_id", 5),
            "refers to question_id 5, which is not in",
        ),
        (
            "a",
            lambda q, a: a["annotations"][0].__setitem__("image_id", 42),
            "has image_id 42 but question 70 is about image 7",
        ),
        ("a", lambda q, a: a["annotations"].pop(), "no annotation for 1 question"),
        (
            "a",
            lambda q, a: a["annotations"][2].__setitem__("answers", []),
            "'answers' must be a non-empty list",
        ),
    ],
)
def test_vqa_errors(vqa, target, mutate, message):
    qf, af, img, qs, anns = vqa
    mutate(qs, anns)
    _rewrite(qf, qs)
    _rewrite(af, anns)
    with pytest.raises(ValueError, match=message) as e:
        VQADataset(qf, img, af)
    assert "\n" not in str(e.value)
    assert ("questions.json" if target == "q" else "annotations.json") in str(e.value)


def test_vqa_file_errors(vqa, tmp_path):
    qf, af, img, _, _ = vqa
    with pytest.raises(ValueError, match="VQA questions file does not exist"):
        VQADataset(tmp_path / "x.json", img)
    af.write_text("{not json")
    with pytest.raises(
        ValueError, match=r"VQA annotations file .*annotations\.json is not valid JSON"
    ):
        VQADataset(qf, img, af)
