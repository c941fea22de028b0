"""The shapes world: configuration, deterministic splits, torch datasets and the probe set.

Determinism.  Sample ``index`` of split ``split`` is generated from its own RNG streams
``default_rng([seed, domain_id, split_id, index, stream])`` (stream 0: scene, 1: background
texture, 2: question choice), so a sample never depends on how many samples the other splits
(or its own split) have, nor on the order samples are requested in.

Disjoint splits.  Index-disjointness alone would let the same composition (and caption) land
in train and test.  Instead the *caption space* is partitioned: a stable hash of the canonical
caption (BLAKE2b, independent of the seed) maps it to ``u in [0, 1)``; ``u < 1 - val - test``
is train, the next ``val`` is val, the rest test.  A split's sampler redraws the scene until its
caption falls in the split's region.  Every reference caption determines the canonical one,
so **no caption (of the three) and no scene graph of val/test ever appears in train** — test
measures compositional generalisation within the closed vocabulary.

Data fractions.  ``data_fraction`` keeps ``max(1, round(f * n_train))`` train samples: those
with the smallest per-index keys ``default_rng([seed, domain_id, 0xFAC]).random(n_train)``, so
the 0.25 subset is a subset of the 0.5 subset (nested) for a fixed ``n_train``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from repspace.data.domains import DOMAINS
from repspace.data.images import to_float_tensor
from repspace.data.render import render_scene
from repspace.data.scene import Scene, sample_scene
from repspace.data.text import QA, QUESTION_TYPES, canonical_caption, captions, questions

__all__ = [
    "SPLITS",
    "ShapesWorldConfig",
    "Sample",
    "ShapesWorld",
    "ShapesCaptionDataset",
    "ShapesVQADataset",
    "ProbeSet",
    "make_probe_set",
    "caption_region",
]

SPLITS = ("train", "val", "test")
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2, "probe": 3, "probe_text": 4}
_DOMAIN_IDS = {"source": 0, "shifted": 1}
_MAX_TRIES = 10_000


@dataclass(frozen=True)
class ShapesWorldConfig:
    """Configuration of a :class:`ShapesWorld`.

    Attributes:
        seed: non-negative integer; every sample derives from ``(seed, domain, split, index)``.
        image_size: image side in pixels (>= 18; 32, 48, 64 are typical).
        domain: ``"source"`` (pre-training) or ``"shifted"``.
        n_train, n_val, n_test: split sizes (train before ``data_fraction``).
        data_fraction: in (0, 1]; nested deterministic subsample of train.
        min_objects, max_objects: objects per image (1..9; default 1..3).
        holdout: ``(val, test)`` shares of the caption-hash space; train gets the rest.
    """

    seed: int = 0
    image_size: int = 32
    domain: str = "source"
    n_train: int = 2000
    n_val: int = 200
    n_test: int = 200
    data_fraction: float = 1.0
    min_objects: int = 1
    max_objects: int = 3
    holdout: tuple[float, float] = field(default=(0.1, 0.1))

    def __post_init__(self) -> None:
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {sorted(DOMAINS)}, got {self.domain!r}")
        if not isinstance(self.image_size, (int, np.integer)) or self.image_size < 18:
            raise ValueError(f"image_size must be an integer >= 18, got {self.image_size!r}")
        for name in ("n_train", "n_val", "n_test"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if not 0.0 < float(self.data_fraction) <= 1.0:
            raise ValueError(f"data_fraction must be in (0, 1], got {self.data_fraction!r}")
        if not 1 <= self.min_objects <= self.max_objects <= 9:
            raise ValueError(
                f"need 1 <= min_objects <= max_objects <= 9, got {self.min_objects}, {self.max_objects}"
            )
        val, test = self.holdout
        if not (0.0 < val < 1.0 and 0.0 < test < 1.0 and val + test < 1.0):
            raise ValueError(
                f"holdout must be (val, test) with each in (0, 1) and sum < 1, got {self.holdout!r}"
            )


def caption_region(caption: str, holdout: tuple[float, float] = (0.1, 0.1)) -> str:
    """Split (``"train"``/``"val"``/``"test"``) whose region of caption space contains ``caption``."""
    h = hashlib.blake2b(caption.encode("utf-8"), digest_size=8).digest()
    u = int.from_bytes(h, "little") / 2.0**64
    val, test = holdout
    return "train" if u < 1.0 - val - test else ("val" if u < 1.0 - test else "test")


@dataclass(frozen=True)
class Sample:
    """One generated sample: its scene graph, image ``(H, W, 3)`` uint8, captions and VQA pairs."""

    id: str
    split: str
    index: int
    scene: Scene
    image: np.ndarray
    captions: list[str]
    qa: list[QA]

    @property
    def caption(self) -> str:
        """The canonical caption (``captions[0]``)."""
        return self.captions[0]


class ShapesWorld:
    """Deterministic generator of the shapes world for one configuration.

    ``ShapesWorld(cfg)`` or ``ShapesWorld(seed=1, domain="shifted")`` (keyword overrides of
    the default config).  Splits are ``"train"``, ``"val"``, ``"test"``; ``"probe"`` and
    ``"probe_text"`` are unbounded extra streams used by :func:`make_probe_set`.
    """

    def __init__(self, config: ShapesWorldConfig | None = None, **overrides) -> None:
        if config is None:
            config = ShapesWorldConfig(**overrides)
        elif overrides:
            from dataclasses import replace

            config = replace(config, **overrides)
        self.config = config

    # -- indexing ---------------------------------------------------------------------------
    def split_size(self, split: str) -> int:
        """Number of samples of ``split`` before the train ``data_fraction`` is applied."""
        self._check_split(split, probe=False)
        return int(getattr(self.config, f"n_{split}"))

    def indices(self, split: str) -> np.ndarray:
        """Sample indices of ``split`` (sorted int64); train is subsampled by ``data_fraction``."""
        n = self.split_size(split)
        if split != "train" or self.config.data_fraction >= 1.0:
            return np.arange(n, dtype=np.int64)
        keep = max(1, int(round(self.config.data_fraction * n))) if n else 0
        keys = np.random.default_rng(
            [self.config.seed, _DOMAIN_IDS[self.config.domain], 0xFAC]
        ).random(n)
        return np.sort(np.argsort(keys, kind="stable")[:keep]).astype(np.int64)

    def _check_split(self, split: str, probe: bool = True) -> None:
        allowed = tuple(_SPLIT_IDS) if probe else SPLITS
        if split not in allowed:
            raise ValueError(f"split must be one of {allowed}, got {split!r}")

    def _rng(self, split: str, index: int, stream: int) -> np.random.Generator:
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        c = self.config
        return np.random.default_rng(
            [c.seed, _DOMAIN_IDS[c.domain], _SPLIT_IDS[split], int(index), stream]
        )

    # -- generation ---------------------------------------------------------------------------
    def scene(self, split: str, index: int) -> Scene:
        """Scene graph of sample ``index`` of ``split`` (redrawn until its caption is in the split's region)."""
        self._check_split(split)
        c = self.config
        rng = self._rng(split, index, 0)
        region = "test" if split.startswith("probe") else split  # probes use held-out compositions
        for _ in range(_MAX_TRIES):
            s = sample_scene(rng, c.domain, c.image_size, c.min_objects, c.max_objects)
            if caption_region(canonical_caption(s), c.holdout) == region:
                return s
        raise RuntimeError(f"no {split} scene found in {_MAX_TRIES} draws; increase holdout shares")

    def image(self, split: str, index: int, scene: Scene | None = None) -> np.ndarray:
        """Rendered ``(image_size, image_size, 3)`` uint8 image of sample ``index``."""
        scene = self.scene(split, index) if scene is None else scene
        return render_scene(scene, self._rng(split, index, 1))

    def questions(self, split: str, index: int, scene: Scene | None = None) -> list[QA]:
        """VQA pairs of sample ``index`` (at most one per question type)."""
        scene = self.scene(split, index) if scene is None else scene
        return questions(scene, self._rng(split, index, 2))

    def sample(self, split: str, index: int) -> Sample:
        """Everything about sample ``index`` of ``split``."""
        s = self.scene(split, index)
        return Sample(
            id=f"{self.config.domain}/{split}/{int(index)}",
            split=split,
            index=int(index),
            scene=s,
            image=self.image(split, index, s),
            captions=captions(s),
            qa=self.questions(split, index, s),
        )

    def images(self, split: str, indices: Sequence[int] | None = None) -> np.ndarray:
        """Stack of images ``(n, H, W, 3)`` uint8 for ``indices`` (default: :meth:`indices`)."""
        idx = self.indices(split) if indices is None else indices
        size = self.config.image_size
        out = np.empty((len(idx), size, size, 3), dtype=np.uint8)
        for k, i in enumerate(idx):
            out[k] = self.image(split, int(i))
        return out

    def caption_dataset(self, split: str, image_format: str = "uint8") -> "ShapesCaptionDataset":
        """Torch dataset of ``split`` for captioning (one item per image)."""
        return ShapesCaptionDataset(self, split, image_format)

    def vqa_dataset(
        self,
        split: str,
        image_format: str = "uint8",
        question_types: Sequence[str] | None = None,
    ) -> "ShapesVQADataset":
        """Torch dataset of ``split`` for VQA (one item per image-question pair)."""
        return ShapesVQADataset(self, split, image_format, question_types)


def _format_image(img: np.ndarray, image_format: str):
    return img if image_format == "uint8" else to_float_tensor(img)


def _check_format(image_format: str) -> None:
    if image_format not in ("uint8", "float"):
        raise ValueError(
            f"image_format must be 'uint8' (HWC numpy) or 'float' (CHW tensor in [0, 1]), got {image_format!r}"
        )


class ShapesCaptionDataset(torch.utils.data.Dataset):
    """Items ``{"image", "caption", "captions", "id"}``.

    ``image``: ``(H, W, 3)`` uint8 numpy (``image_format="uint8"``) or ``(3, H, W)`` float32
    tensor in [0, 1] (``"float"``); ``caption``: canonical caption; ``captions``: all 3 references.
    """

    def __init__(self, world: ShapesWorld, split: str, image_format: str = "uint8") -> None:
        _check_format(image_format)
        self.world, self.split, self.image_format = world, split, image_format
        self.indices = world.indices(split)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        idx = int(self.indices[i])
        s = self.world.scene(self.split, idx)
        caps = captions(s)
        return {
            "image": _format_image(self.world.image(self.split, idx, s), self.image_format),
            "caption": caps[0],
            "captions": caps,
            "id": f"{self.world.config.domain}/{self.split}/{idx}",
        }


class ShapesVQADataset(torch.utils.data.Dataset):
    """Items ``{"image", "question", "answer", "answers", "question_type", "caption", "id"}``.

    One item per (image, question); each image contributes at most one question per type
    (``question_types`` filters the types).  ``answers`` is ``[answer]`` — a single reference,
    so :func:`repspace.evaluation.vqa_accuracy` scores it by exact match.  Scene graphs are
    generated once at construction to enumerate the items (cheap: no rendering).
    """

    def __init__(
        self,
        world: ShapesWorld,
        split: str,
        image_format: str = "uint8",
        question_types: Sequence[str] | None = None,
    ) -> None:
        _check_format(image_format)
        types = tuple(QUESTION_TYPES if question_types is None else question_types)
        bad = sorted(set(types) - set(QUESTION_TYPES))
        if bad:
            raise ValueError(f"unknown question types {bad}; choose from {QUESTION_TYPES}")
        self.world, self.split, self.image_format = world, split, image_format
        self._scenes: dict[int, Scene] = {}
        self.items: list[tuple[int, QA]] = []
        for idx in world.indices(split):
            s = world.scene(split, int(idx))
            self._scenes[int(idx)] = s
            self.items += [
                (int(idx), qa) for qa in world.questions(split, int(idx), s) if qa.qtype in types
            ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        idx, _ = self.items[i]
        image = self.world.image(self.split, idx, self._scenes[idx])
        return {"image": _format_image(image, self.image_format), **self.text_item(i)}

    def text_item(self, i: int) -> dict:
        """Item ``i`` without its image (which is the costly part to render): question,
        answer(s), question type, the scene's first caption and the item's id."""
        idx, qa = self.items[i]
        return {
            "question": qa.question,
            "answer": qa.answer,
            "answers": [qa.answer],
            "question_type": qa.qtype,
            "caption": captions(self._scenes[idx])[0],
            "id": f"{self.world.config.domain}/{self.split}/{idx}",
        }


@dataclass(frozen=True)
class ProbeSet:
    """Inputs for representation probing.

    Attributes:
        images: ``(n, H, W, 3)`` uint8.
        captions: canonical caption of each image (paired with ``images``).
        texts: ``n`` text-only inputs: captions of *other* scenes, for probing a text tower
            without paired images.
        ids: sample ids of ``images``.
        scenes: scene graphs of ``images``.
    """

    images: np.ndarray
    captions: list[str]
    texts: list[str]
    ids: list[str]
    scenes: list[Scene]


def make_probe_set(n: int, seed: int = 0, domain: str = "source", image_size: int = 32) -> ProbeSet:
    """``n`` held-out-composition probe images with captions, plus ``n`` unpaired texts.

    Probe samples use their own RNG streams (never train/val/test samples) and the test
    region of caption space, so a model pre-trained on the train split never saw them.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    w = ShapesWorld(seed=seed, domain=domain, image_size=image_size)
    scenes = [w.scene("probe", i) for i in range(n)]
    images = np.stack([w.image("probe", i, s) for i, s in enumerate(scenes)])
    texts = [captions(w.scene("probe_text", i))[0] for i in range(n)]
    return ProbeSet(
        images=images,
        captions=[captions(s)[0] for s in scenes],
        texts=texts,
        ids=[f"{domain}/probe/{i}" for i in range(n)],
        scenes=scenes,
    )
