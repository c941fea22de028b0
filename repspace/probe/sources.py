"""Probe data: the inputs shown to the base and the tuned models.

Sources (``load_probe(source, ...)``):

- ``"builtin"``: the shapes world's probe set (images + captions), generated
  deterministically offline;
- ``"general"``: 256 diverse general-text sentences (:mod:`repspace.probe.general_text`),
  text only: how much a method disturbs the model away from the task's own inputs;
- ``*.txt``: one text sample per line;
- ``*.jsonl``: objects with ``"text"`` (or ``"caption"``/``"question"``) and/or
  ``"image"`` (a path relative to the file);
- ``*.csv``: columns ``image`` and/or ``text``/``caption``;
- a folder of images, with an optional ``captions.jsonl`` / ``captions.csv`` beside them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
TEXT_KEYS = ("text", "caption", "question", "sentence")
# Probe sources generated in memory (no file to check, read or keep an output away from).
BUILTIN_PROBES = ("builtin", "general")


@dataclass
class ProbeSet:
    """Paired probe samples: ``texts[i]`` and/or ``images[i]`` (HxWx3 uint8 or a path)."""

    source: str
    texts: list[str] | None = None
    images: list = field(default=None, repr=False)

    def __post_init__(self):
        n = {len(v) for v in (self.texts, self.images) if v is not None}
        if not n:
            raise ValueError(f"probe data {self.source}: no texts and no images")
        if len(n) != 1:
            raise ValueError(
                f"probe data {self.source}: {len(self.texts)} texts but {len(self.images)} images"
            )
        if n == {0}:
            raise ValueError(f"probe data {self.source}: empty")

    def __len__(self) -> int:
        return len(self.texts if self.texts is not None else self.images)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m, v in (("text", self.texts), ("image", self.images)) if v is not None)

    def subset(self, n: int | None, seed: int) -> "ProbeSet":
        """The first ``n`` samples of a seeded permutation (all samples when n is None)."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise ValueError(f"--num-samples must be ≥ 1; got {n}")
        return self.select(np.sort(np.random.default_rng(seed).permutation(len(self))[:n]))

    def select(self, indices) -> "ProbeSet":
        """The samples at ``indices`` (any iterable of ints, e.g. a ``range`` shard), in order."""
        pick = lambda v: None if v is None else [v[int(i)] for i in indices]  # noqa: E731
        return ProbeSet(self.source, pick(self.texts), pick(self.images))

    def sha256(self) -> str:
        """Content hash of the samples actually used (texts, image bytes or paths)."""
        h = hashlib.sha256()
        for t in self.texts or []:
            h.update(t.encode())
            h.update(b"\0")
        for im in self.images or []:
            if isinstance(im, np.ndarray):
                h.update(np.ascontiguousarray(im).tobytes())
            else:  # a file: its bytes determine the numbers, its name does not
                from repspace.checkpoints.hashing import file_sha256

                try:
                    h.update(bytes.fromhex(file_sha256(im)))
                except OSError as exc:
                    raise ValueError(
                        f"probe data {self.source}: image {im} is unreadable "
                        f"({exc.strerror or exc})"
                    ) from None
        return h.hexdigest()

    def describe(self) -> dict:
        return {
            "source": self.source,
            "num_samples": len(self),
            "modalities": list(self.modalities),
            "sha256": self.sha256(),
        }


def builtin_probe(n: int = 512, seed: int = 0) -> ProbeSet:
    """The shapes world's probe set (deterministic, offline)."""
    from repspace.data import make_probe_set

    probe = make_probe_set(n, seed=seed)
    return ProbeSet("builtin:shapes-world", list(probe.captions), list(probe.images))


def _text_of(obj: dict) -> str | None:
    for k in TEXT_KEYS:
        if isinstance(obj.get(k), str):
            return obj[k]
    return None


def check_image_files(paths, source: str) -> None:
    """Open each image's header (cheap: no pixels decoded) before any model is loaded: a file
    that is not an image, a decompression bomb (a tiny file claiming billions of pixels) or a
    pixel format repspace cannot render faithfully (32-bit integer or float, CMYK) fails here
    in one line naming it, not minutes later (or never, after eating the memory)."""
    from repspace.data.images import open_image, plain_rgb

    for p in paths:
        where = f"probe data {source}: image {p}"
        with open_image(p, where) as im:
            plain_rgb(im, where)


def _faithful_images(probe: ProbeSet) -> ProbeSet:
    """``probe`` with every image file that a plain ``convert("RGB")`` would render wrongly
    (16-bit grey: near-white; transparency: whatever colour hides under it) replaced by its
    faithful RGB pixels (:func:`repspace.data.images.to_rgb`), decoded once here; other
    images stay paths, decoded batch by batch."""
    from repspace.data.images import decode_rgb, open_image, plain_rgb

    if not probe.images or all(isinstance(im, np.ndarray) for im in probe.images):
        return probe
    images = list(probe.images)
    for i, im in enumerate(images):
        if isinstance(im, np.ndarray):
            continue
        where = f"probe data {probe.source}: image {im}"
        with open_image(im, where) as opened:
            if not plain_rgb(opened, where):
                images[i] = np.asarray(decode_rgb(opened, where), dtype=np.uint8).copy()
    return ProbeSet(probe.source, probe.texts, images)


def _from_records(records: list[dict], base: Path, source: str) -> ProbeSet:
    texts = [_text_of(r) for r in records]
    images = [r.get("image") or r.get("file_name") for r in records]
    has_text, has_image = any(t is not None for t in texts), any(i for i in images)
    if has_text and any(t is None for t in texts):
        i = texts.index(None)
        raise ValueError(f"{source}: record {i} has no text field ({'/'.join(TEXT_KEYS)})")
    if has_image:
        for i, im in enumerate(images):
            if not im:
                raise ValueError(f"{source}: record {i} has no image field")
            if not isinstance(im, str):
                raise ValueError(
                    f"{source}: record {i}: image must be a file path (a string); "
                    f"got {type(im).__name__}"
                )
            if not (base / im).is_file():
                raise ValueError(f"{source}: record {i}: image {base / im} does not exist")
        images = [str(base / im) for im in images]
        check_image_files(images, source)
    return ProbeSet(source, texts if has_text else None, images if has_image else None)


def load_probe(
    source: str | Path = "builtin", num_samples: int | None = None, seed: int = 0
) -> ProbeSet:
    """Load probe data from ``source`` (see module docstring) and keep ``num_samples``."""
    if str(source) == "builtin":
        return builtin_probe(num_samples or 512, seed=seed)
    if str(source) == "general":
        from repspace.probe.general_text import GENERAL_SENTENCES

        return ProbeSet("builtin:general-text", list(GENERAL_SENTENCES)).subset(num_samples, seed)
    path = Path(source)
    if not path.exists():
        raise ValueError(f"probe data {path}: no such file or folder")
    if not (path.is_dir() or path.is_file()):  # a pipe or device would block or never end
        raise ValueError(f"probe data {path}: not a regular file or folder")
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for side in ("captions.jsonl", "captions.csv"):
            if (path / side).is_file():
                return load_probe(path / side, num_samples, seed)
        if not images:
            raise ValueError(
                f"probe data {path}: no images ({', '.join(IMAGE_SUFFIXES)}) and no "
                "captions.jsonl/captions.csv"
            )
        check_image_files(images, str(path))
        return _faithful_images(
            ProbeSet(str(path), None, [str(p) for p in images]).subset(num_samples, seed)
        )
    from repspace.data._io import read_csv, read_jsonl, read_text

    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = [line.strip() for line in read_text(path, "probe data").splitlines()]
        probe = ProbeSet(str(path), [line for line in lines if line])
    elif suffix == ".jsonl":
        records = [
            obj
            for _, obj in read_jsonl(
                path, "probe data", 'write one {"text": ..., "image": ...} object per line'
            )
        ]
        probe = _from_records(records, path.parent, str(path))
    elif suffix == ".csv":
        probe = _from_records(read_csv(path, "probe data"), path.parent, str(path))
    else:
        raise ValueError(
            f"probe data {path}: unknown format {suffix!r}; use .txt, .jsonl, "
            ".csv, a folder of images, or 'builtin'"
        )
    return _faithful_images(probe.subset(num_samples, seed))
