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

Before anything is trained (and before the base is loaded), :func:`check_data` refuses
degenerate data in one line naming the file: a split without records, and a ``classify``
training split whose labels are all one class, which trains to a loss of 0 and an
"accuracy 1.0" without learning anything.  :func:`data_inputs` lists every file
a run reads, so its output folder is kept away from them
(:func:`repspace.outputs.check_location`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["load_records", "nested_subset", "check_data", "data_inputs"]


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

    world = ShapesWorld(
        seed=cfg.data_seed,
        domain=cfg.domain,
        image_size=cfg.image_size,
        n_train=cfg.n_train,
        n_val=cfg.n_eval,
        n_test=cfg.n_eval,
        data_fraction=cfg.data_fraction if split == "train" else 1.0,
    )
    if cfg.task == "classify":  # text only: no image is rendered
        from repspace.data.sentences import sentence_records

        return sentence_records(world, split)
    if cfg.task == "captioning":
        ds = world.caption_dataset(split)
        items = [ds[i] for i in range(len(ds))]
        if split == "train":
            return [
                {"image": it["image"], "caption": c, "captions": it["captions"], "id": it["id"]}
                for it in items
                for c in it["captions"]
            ]
        return items
    ds = world.vqa_dataset(split)
    images: dict[int, np.ndarray] = {}
    out = []
    for k, (idx, _) in enumerate(ds.items):
        if idx not in images:  # render each image once, not once per question
            images[idx] = world.image(split, idx, ds._scenes[idx])
        out.append({**ds.text_item(k), "image": images[idx]})
    return out


def _read_spec(path: str) -> dict:
    from repspace.data._io import read_json

    spec = read_json(path, "data spec")
    if not isinstance(spec, dict) or "train" not in spec or "test" not in spec:
        raise ValueError(
            f"{path}: a data spec must be a JSON object with 'train' and 'test' entries "
            "(see repspace.training.data)"
        )
    return spec


# Keys of a data spec's split entry that name files or folders (relative to the spec).
_FILE_KEYS = ("texts", "annotations", "questions", "images")


def data_inputs(data: str | None) -> list[tuple[str, Path]]:
    """``(what, path)`` of the data spec ``data`` and of every file or folder its splits name
    (nothing for the shapes world, ``data=None``): what a run reads, which its output must
    not be, contain or lie inside."""
    if data is None:
        return []
    spec_path = Path(data)
    out: list[tuple[str, Path]] = [("data spec", spec_path)]
    spec = _read_spec(str(spec_path))
    for split in ("train", "val", "test"):
        entry = spec.get(split)
        if isinstance(entry, dict):
            out += [
                (f"{split} data ({key})", spec_path.parent / str(entry[key]))
                for key in _FILE_KEYS
                if isinstance(entry.get(key), str) and entry[key]
            ]
    return out


def _subset(n: int, cfg, split: str):
    return (
        nested_subset(n, cfg.data_fraction, cfg.data_seed)
        if split == "train"
        else range(min(n, cfg.n_eval))
    )


def _split_labels(cfg, split: str) -> tuple[str, list[str] | None, int]:
    """``(where, labels, n)`` of ``split`` as :func:`load_records` would build it, without
    decoding an image: ``where`` names its file, ``labels`` the class of each record
    (None where the task has no classes: captioning, and VQA, whose answers are text a
    generative model may learn whatever they are), ``n`` how many records."""
    if cfg.data is None:
        where = (
            f"the shapes world ({cfg.domain} domain, n_train {cfg.n_train}, n_eval {cfg.n_eval})"
        )
        if cfg.task != "classify":  # generated captions and questions: never one answer
            return where, None, cfg.n_train if split == "train" else cfg.n_eval
        records = _shapes_records(cfg, split)
        return where, [r["answer"] for r in records], len(records)
    from repspace.data import CocoCaptions, VQADataset

    spec_path, entry = _entry(cfg, split)
    if cfg.task == "classify":
        path = _entry_path(spec_path, entry, split, "texts")
        rows = _labelled_texts(path)
        labels = [rows[int(i)]["answer"] for i in _subset(len(rows), cfg, split)]
        return str(path), labels, len(labels)
    if cfg.task == "captioning":
        path = _entry_path(spec_path, entry, split, "annotations")
        ds = CocoCaptions(
            path,
            _entry_path(spec_path, entry, split, "images"),
            image_size=cfg.image_size,
            per_caption=split == "train",
        )
        return str(path), None, len(_subset(len(ds), cfg, split))
    kwargs = _vqa_kwargs(spec_path, entry, split)
    path = _entry_path(spec_path, entry, split, "annotations")
    ds = VQADataset(
        _entry_path(spec_path, entry, split, "questions"),
        _entry_path(spec_path, entry, split, "images"),
        path,
        image_size=cfg.image_size,
        **kwargs,
    )
    return str(path), None, len(_subset(len(ds), cfg, split))


def _counts(labels: list[str], limit: int = 8) -> str:
    from collections import Counter

    top = Counter(labels).most_common()
    text = ", ".join(f"{label!r}: {n}" for label, n in top[:limit])
    return text + (f", … ({len(top) - limit} more classes)" if len(top) > limit else "")


def check_data(cfg) -> None:
    """Refuse degenerate training data before anything is loaded or trained, in one line
    naming the data file and the count per class: a split with no records, and a
    ``classify`` training split with a single class (every label the same), on which a run
    reaches loss 0 and "accuracy 1.0" having learned nothing."""
    splits = ["train", "test"] + (["val"] if cfg.eval_every else [])
    for split in splits:
        where, labels, n = _split_labels(cfg, split)
        if n == 0:
            raise ValueError(
                f"{where}: the {split} split has no records; add some, or check the "
                "data spec and --data-fraction"
            )
        if split == "train" and labels is not None and len(set(labels)) < 2:
            frac = (
                f" after --data-fraction {cfg.data_fraction:g} ({n} records kept)"
                if cfg.data_fraction < 1
                else ""
            )
            raise ValueError(
                f"{where}: every training record has the same label{frac} "
                f"(count per class: {_counts(labels)}); a {cfg.task} run needs at least "
                f"two classes to learn anything (it would score 1.0 by answering "
                f"{labels[0]!r} always) — "
                + ("add records of other classes" if cfg.data is not None else "raise --n-train")
            )


def _entry(cfg, split: str) -> tuple[Path, dict]:
    spec_path = Path(cfg.data)
    spec = _read_spec(str(spec_path))
    if spec.get("task", cfg.task) != cfg.task:
        raise ValueError(
            f"{spec_path}: data spec is for task {spec.get('task')!r}, not {cfg.task!r}"
        )
    entry = spec.get(split) if split != "val" else spec.get("val", spec["test"])
    if not isinstance(entry, dict):
        raise ValueError(f"{spec_path}: entry {split!r} must be a JSON object of file names")
    return spec_path, entry


def _vqa_kwargs(spec_path: Path, entry: dict, split: str) -> dict:
    from repspace.data.vqa import check_file_pattern

    kwargs = {k: str(entry[k]) for k in ("split", "file_pattern") if k in entry}
    if "file_pattern" in entry:
        check_file_pattern(entry["file_pattern"], f"{spec_path}: entry {split!r}")
    return kwargs


def _entry_path(spec_path: Path, entry: dict, split: str, key: str, required: bool = True):
    if key not in entry:
        if required:
            raise ValueError(f"{spec_path}: entry {split!r} is missing {key!r}")
        return None
    if not isinstance(entry[key], str) or not entry[key]:
        raise ValueError(
            f"{spec_path}: entry {split!r}: {key!r} must be a file name (a string), "
            f"got {type(entry[key]).__name__}"
        )
    return spec_path.parent / entry[key]


def _real_records(cfg, split: str) -> list[dict]:
    from repspace.data import CocoCaptions, VQADataset

    spec_path, entry = _entry(cfg, split)

    def path(key: str):
        return _entry_path(spec_path, entry, split, key)

    if cfg.task == "classify":
        rows = _labelled_texts(path("texts"))
        return [rows[int(i)] for i in _subset(len(rows), cfg, split)]
    if cfg.task == "captioning":
        ds = CocoCaptions(
            path("annotations"),
            path("images"),
            image_size=cfg.image_size,
            per_caption=split == "train",
        )
        return [ds[int(i)] for i in _subset(len(ds), cfg, split)]
    kwargs = _vqa_kwargs(spec_path, entry, split)
    ds = VQADataset(
        path("questions"), path("images"), path("annotations"), image_size=cfg.image_size, **kwargs
    )
    out = []
    for i in _subset(len(ds), cfg, split):
        item = ds[int(i)]
        item.setdefault("question_type", "all")
        out.append(item)
    return out


def _labelled_texts(path: Path) -> list[dict]:
    """``{"text": ..., "label": ...}`` per line of a JSONL file, as classification records."""
    from repspace.data._io import read_jsonl

    if not path.is_file():
        raise ValueError(
            f'{path}: no such file (a JSONL file of {{"text": ..., "label": ...}} lines)'
        )
    out = []
    for line, row in read_jsonl(
        path, "labelled texts", 'write one {"text": ..., "label": ...} object per line'
    ):
        if (
            not isinstance(row.get("text"), str)
            or not row["text"].strip()
            or not isinstance(row.get("label"), (str, int))
            or isinstance(row.get("label"), bool)
        ):
            raise ValueError(
                f'{path}: line {line} must be an object with a non-empty string "text" '
                'and a string or integer "label"'
            )
        label = str(row["label"])
        out.append(
            {
                "text": row["text"],
                "caption": row["text"],
                "answer": label,
                "answers": [label],
                "question_type": "all",
                "id": f"{path.name}/{line}",
            }
        )
    if not out:
        raise ValueError(f"{path}: no records")
    return out
