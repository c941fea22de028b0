"""ShapesWorld: determinism, split disjointness and stability, nested fractions, datasets, probe set."""

import time

import numpy as np
import pytest
import torch

from repspace.data import (
    ShapesWorld,
    ShapesWorldConfig,
    caption_region,
    captions,
    collate,
    make_probe_set,
)


def _bytes(world, split, idx):
    return b"".join(world.image(split, i).tobytes() for i in idx)


@pytest.mark.parametrize("domain", ["source", "shifted"])
def test_same_seed_identical_bytes_different_seed_differs(domain):
    a = ShapesWorld(seed=7, domain=domain)
    b = ShapesWorld(seed=7, domain=domain)
    c = ShapesWorld(seed=8, domain=domain)
    assert _bytes(a, "train", range(20)) == _bytes(b, "train", range(20))
    assert [a.sample("val", i).qa for i in range(20)] == [b.sample("val", i).qa for i in range(20)]
    assert _bytes(a, "train", range(20)) != _bytes(c, "train", range(20))
    # request order does not matter: a sample is a pure function of (seed, domain, split, index)
    assert (
        a.image("test", 5).tobytes()
        == ShapesWorld(seed=7, domain=domain).image("test", 5).tobytes()
    )


def test_samples_stable_when_other_split_sizes_change():
    small = ShapesWorld(seed=3, n_train=10, n_val=5, n_test=5)
    big = ShapesWorld(seed=3, n_train=500, n_val=50, n_test=70)
    for split in ("train", "val", "test"):
        assert _bytes(small, split, range(5)) == _bytes(big, split, range(5))
    assert small.sample("val", 4).captions == big.sample("val", 4).captions


def test_splits_disjoint_in_caption_space():
    w = ShapesWorld(seed=0, n_train=400, n_val=100, n_test=100)
    caps = {s: {captions(w.scene(s, i))[0] for i in w.indices(s)} for s in ("train", "val", "test")}
    assert not caps["train"] & caps["val"]
    assert not caps["train"] & caps["test"]
    assert not caps["val"] & caps["test"]
    # every reference caption (not only the canonical one) is new to train
    train_all = {c for i in w.indices("train") for c in captions(w.scene("train", i))}
    test_all = {c for i in w.indices("test") for c in captions(w.scene("test", i))}
    assert not train_all & test_all
    for s in ("train", "val", "test"):
        assert all(caption_region(c) == s for c in caps[s])


def test_probe_uses_held_out_compositions():
    p = make_probe_set(30, seed=0)
    assert all(caption_region(c) == "test" for c in p.captions)


def test_data_fraction_nested_and_sized():
    def idx(f):
        return set(ShapesWorld(seed=1, n_train=200, data_fraction=f).indices("train").tolist())

    i25, i50, i100 = idx(0.25), idx(0.5), idx(1.0)
    assert len(i25) == 50 and len(i50) == 100 and len(i100) == 200
    assert i25 < i50 < i100
    assert len(idx(0.001)) == 1  # never empty
    # the subset is not just a prefix (it is a random subsample)
    assert i50 != set(range(100))
    # fractions only touch train
    w = ShapesWorld(seed=1, n_val=30, data_fraction=0.1)
    assert len(w.indices("val")) == 30
    assert len(w.caption_dataset("train")) == 200


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seed": -1},
        {"domain": "mars"},
        {"image_size": 8},
        {"n_train": -1},
        {"data_fraction": 0.0},
        {"data_fraction": 1.5},
        {"min_objects": 3, "max_objects": 2},
        {"max_objects": 10},
        {"holdout": (0.0, 0.1)},
        {"holdout": (0.6, 0.5)},
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        ShapesWorldConfig(**kwargs)


def test_bad_split_and_index():
    w = ShapesWorld()
    with pytest.raises(ValueError, match="split"):
        w.indices("dev")
    with pytest.raises(ValueError, match="index"):
        w.scene("train", -1)


@pytest.mark.parametrize("size", [32, 48, 64])
def test_caption_dataset_items(size):
    w = ShapesWorld(seed=0, image_size=size, n_train=6)
    ds = w.caption_dataset("train")
    item = ds[0]
    assert set(item) == {"image", "caption", "captions", "id"}
    assert item["image"].shape == (size, size, 3) and item["image"].dtype == np.uint8
    assert item["caption"] == item["captions"][0] and len(item["captions"]) == 3
    assert item["id"] == "source/train/0"
    f = w.caption_dataset("train", image_format="float")[0]["image"]
    assert f.shape == (3, size, size) and f.dtype == torch.float32
    assert torch.equal(f, torch.from_numpy(item["image"]).permute(2, 0, 1).float() / 255)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))  # default collate works
    assert batch["image"].shape == (4, size, size, 3)
    with pytest.raises(ValueError):
        w.caption_dataset("train", image_format="bgr")


def test_vqa_dataset_items_and_filter():
    w = ShapesWorld(seed=0, domain="shifted", n_val=40)
    ds = w.vqa_dataset("val")
    types = [qa.qtype for _, qa in ds.items]
    assert set(types) == {"color", "shape", "count", "relation", "exist"}
    assert types.count("count") == 40 and types.count("exist") == 40  # always askable
    item = ds[0]
    assert {"image", "question", "answer", "answers", "question_type", "caption", "id"} <= set(item)
    assert item["answers"] == [item["answer"]]
    only = w.vqa_dataset("val", question_types=["count"])
    assert len(only) == 40 and all(only[i]["question_type"] == "count" for i in range(3))
    with pytest.raises(ValueError, match="unknown question types"):
        w.vqa_dataset("val", question_types=["why"])
    batch = collate([ds[i] for i in range(3)])
    assert batch["image"].shape == (3, 32, 32, 3) and len(batch["question"]) == 3


def test_yes_no_answers_balanced_enough():
    ds = ShapesWorld(seed=0, n_train=300).vqa_dataset("train", question_types=["exist", "relation"])
    answers = [qa.answer for _, qa in ds.items]
    frac_yes = answers.count("yes") / len(answers)
    assert 0.3 < frac_yes < 0.7


def test_probe_set():
    p = make_probe_set(12, seed=5, domain="shifted", image_size=48)
    assert p.images.shape == (12, 48, 48, 3) and p.images.dtype == np.uint8
    assert len(p.captions) == len(p.texts) == len(p.ids) == len(p.scenes) == 12
    assert p.texts != p.captions  # unpaired texts come from other scenes
    q = make_probe_set(12, seed=5, domain="shifted", image_size=48)
    assert p.images.tobytes() == q.images.tobytes() and p.texts == q.texts
    # probe samples are not test samples
    w = ShapesWorld(seed=5, domain="shifted", image_size=48)
    assert p.images[0].tobytes() != w.image("test", 0).tobytes()
    with pytest.raises(ValueError):
        make_probe_set(0)


def test_generation_is_fast():
    # thousands of 32 px images per second on one core; the bound is loose for shared CI machines
    w = ShapesWorld(seed=0)
    w.image("train", 0)
    t = time.perf_counter()
    w.images("train", range(400))
    assert time.perf_counter() - t < 2.0


def test_config_and_overrides():
    cfg = ShapesWorldConfig(seed=4, n_train=10)
    w = ShapesWorld(cfg, domain="shifted")
    assert w.config.seed == 4 and w.config.domain == "shifted" and w.split_size("train") == 10
    assert ShapesWorld(seed=4, n_train=10).config == cfg
