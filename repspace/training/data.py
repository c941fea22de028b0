"""Task records for training and evaluation: the shapes world or real data on disk.

A *record* is a plain dict: ``image`` (``(H, W, 3)`` uint8 numpy, absent for text-only
data), and per task ``caption`` / ``captions`` (captioning) or ``question``, ``answer``,
``answers``, ``question_type`` and ``caption`` (the scene's caption, the context text-only
models answer from).  Captioning *training* records are one per (image, reference caption),
evaluation records one per image with all references.

Real data (``TrainConfig.data``) is a small JSON *data spec*; paths are relative to it::

    {"task": "captioning",
     "train": {"annotations": "captions_train.json", "images": "images"},
     "test":  {"annotations": "captions_test.json",  "images": "images"}}
    {"task": "vqa",
     "train": {"questions": "q_train.json", "annotations": "a_train.json", "images": "images",
               "split": "train2014", "file_pattern": "COCO_{split}_{image_id:012d}.jpg"},
     "test":  {...}}

    {"task": "classify",
     "train": {"texts": "train.jsonl"}, "test": {"texts": "test.jsonl"}}   # {"text", "label"} per line

(an optional ``"val"`` entry is used for ``eval_every``; else the test split).  COCO files
are read by :class:`repspace.data.CocoCaptions`, VQAv2 files by :class:`repspace.data.VQADataset`,
both validated eagerly with one-line errors.  ``data_fraction`` subsamples real training
data with the same nested rule as the shapes world; ``n_eval`` caps the held-out items.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["load_records", "nested_subset"]


def nested_subset(n: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the ``max(1, round(fraction * n))`` items with the smallest keys
    ``default_rng([seed, 0xFAC]).random(n)``: smaller fractions are subsets of larger ones."""
    if fraction >= 1.0 or n == 0:
        return np.arange(n)
    keep = max(1, int(round(fraction * n)))
    keys = np.random.default_rng([seed, 0xFAC]).random(n)
    return np.sort(np.argsort(keys, kind="stable")[:keep])


def load_records(cfg, split: str) -> list[dict]:
    """Records of ``split`` (``"train"``, ``"val"`` or ``"test"``) for ``cfg.task``."""
    if cfg.data is not None:
        return _real_records(cfg, split)
    return _shapes_records(cfg, split)


def _shapes_records(cfg, split: str) -> list[dict]:
    from repspace.data import ShapesWorld

    n = cfg.n_train if split == "train" else cfg.n_eval
    world = ShapesWorld(seed=cfg.data_seed, domain=cfg.domain, image_size=cfg.image_size,
                        n_train=cfg.n_train, n_val=cfg.n_eval, n_test=cfg.n_eval,
                        data_fraction=cfg.data_fraction if split == "train" else 1.0)
    if cfg.task == "classify":  # text only: no image is rendered
        from repspace.data.sentences import sentence_records

        return sentence_records(world, split)
    if cfg.task == "captioning":
        ds = world.caption_dataset(split)
        items = [ds[i] for i in range(len(ds))]
        if split == "train":
            return [{"image": it["image"], "caption": c, "captions": it["captions"], "id": it["id"]}
                    for it in items for c in it["captions"]]
        return items
    ds = world.vqa_dataset(split)
    images: dict[int, np.ndarray] = {}
    out = []
    for k, (idx, _) in enumerate(ds.items):
        if idx not in images:  # render each image once, not once per question
            images[idx] = world.image(split, idx, ds._scenes[idx])
        item = {key: v for key, v in _vqa_item(ds, k).items()}
        item["image"] = images[idx]
        out.append(item)
    return out


def _vqa_item(ds, k: int) -> dict:
    from repspace.data.text import captions

    idx, qa = ds.items[k]
    s = ds._scenes[idx]
    return {"question": qa.question, "answer": qa.answer, "answers": [qa.answer],
            "question_type": qa.qtype, "caption": captions(s)[0],
            "id": f"{ds.world.config.domain}/{ds.split}/{idx}"}


def _read_spec(path: str) -> dict:
    from repspace.data._io import read_json

    spec = read_json(path, "data spec")
    if not isinstance(spec, dict) or "train" not in spec or "test" not in spec:
        raise ValueError(f"{path}: a data spec must be a JSON object with 'train' and 'test' entries "
                         "(see repspace.training.data)")
    return spec


def _real_records(cfg, split: str) -> list[dict]:
    from repspace.data import CocoCaptions, VQADataset

    spec_path = Path(cfg.data)
    spec = _read_spec(str(spec_path))
    if spec.get("task", cfg.task) != cfg.task:
        raise ValueError(f"{spec_path}: data spec is for task {spec.get('task')!r}, not {cfg.task!r}")
    entry = spec.get(split) if split != "val" else spec.get("val", spec["test"])
    if not isinstance(entry, dict):
        raise ValueError(f"{spec_path}: entry {split!r} must be a JSON object of file names")
    root = spec_path.parent

    def path(key: str, required: bool = True):
        if key not in entry:
            if required:
                raise ValueError(f"{spec_path}: entry {split!r} is missing {key!r}")
            return None
        return root / str(entry[key])

    if cfg.task == "classify":
        rows = _labelled_texts(path("texts"))
        idx = nested_subset(len(rows), cfg.data_fraction, cfg.data_seed) if split == "train" else range(min(len(rows), cfg.n_eval))
        return [rows[int(i)] for i in idx]
    if cfg.task == "captioning":
        ds = CocoCaptions(path("annotations"), path("images"), image_size=cfg.image_size,
                          per_caption=split == "train")
        idx = nested_subset(len(ds), cfg.data_fraction, cfg.data_seed) if split == "train" else range(min(len(ds), cfg.n_eval))
        return [ds[int(i)] for i in idx]
    kwargs = {k: str(entry[k]) for k in ("split", "file_pattern") if k in entry}
    ds = VQADataset(path("questions"), path("images"), path("annotations"), image_size=cfg.image_size, **kwargs)
    idx = nested_subset(len(ds), cfg.data_fraction, cfg.data_seed) if split == "train" else range(min(len(ds), cfg.n_eval))
    out = []
    for i in idx:
        item = ds[int(i)]
        item.setdefault("question_type", "all")
        out.append(item)
    return out


def _labelled_texts(path: Path) -> list[dict]:
    """``{"text": ..., "label": ...}`` per line of a JSONL file, as classification records."""
    import json

    if not path.is_file():
        raise ValueError(f"{path}: no such file (a JSONL file of {{\"text\": ..., \"label\": ...}} lines)")
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {i + 1} is not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip() \
                or not isinstance(row.get("label"), (str, int)) or isinstance(row.get("label"), bool):
            raise ValueError(f"{path}: line {i + 1} must be an object with a non-empty string \"text\" "
                             "and a string or integer \"label\"")
        label = str(row["label"])
        out.append({"text": row["text"], "caption": row["text"], "answer": label, "answers": [label],
                    "question_type": "all", "id": f"{path.name}/{i + 1}"})
    if not out:
        raise ValueError(f"{path}: no records")
    return out
