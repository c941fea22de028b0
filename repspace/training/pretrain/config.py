"""The pretrain recipe's settings (:class:`PretrainConfig`, recorded verbatim in the
manifest), checked when they are made: a bad one is a one-line
:class:`~repspace._constraints.SettingError` naming the field, before any data is rendered
or any model is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from repspace._constraints import Check, Interval, Options, Validated
from repspace.training.config import SEED

__all__ = ["PretrainConfig", "QUICK", "RECIPES", "RECIPE", "TARGET_NOTES", "ARCHITECTURE_KEYS"]

#: Recipe id per corpus (recorded in the manifest); the shipped model is v2.
RECIPES = {
    "canonical": "repspace.pretrain.tiny_blip_captioning/v1",
    "captions+itm": "repspace.pretrain.tiny_blip_captions_itm/v2-no-text",
    "captions+itm+text": "repspace.pretrain.tiny_blip_captions_itm_text/v2",
}
RECIPE = RECIPES["captions+itm+text"]

# what PretrainConfig.architecture may set: tiny_blip_config's sizes (image_size is its own field)
ARCHITECTURE_KEYS = (
    "patch_size",
    "vision_hidden",
    "vision_layers",
    "text_hidden",
    "text_layers",
    "num_heads",
    "mlp_ratio",
)


def _architecture(value) -> bool:
    return (
        isinstance(value, dict)
        and set(value) <= set(ARCHITECTURE_KEYS)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value.values())
    )


@dataclass(frozen=True)
class PretrainConfig(Validated):
    """Every knob of the recipe (recorded verbatim in the manifest).

    Attributes:
        seed: initialisation and data-order seed.
        data_seed: shapes-world seed (the data itself; 0 is the canonical world every
            repspace evaluation uses).
        steps, batch_size: optimisation steps and images per step.
        lr, weight_decay, warmup_ratio, max_grad_norm: AdamW peak learning rate, decoupled weight
            decay, share of steps of linear warm-up (then cosine to 0), max gradient norm.
        n_train, n_eval: rendered train images (distinct scenes) and held-out test images.
        image_size: image side in pixels.
        max_new_tokens: generation budget for evaluation captions (a caption is <= 16 tokens).
        architecture: keyword arguments of :func:`repspace.models.tiny_blip_config`.
        corpus: the text targets (:mod:`repspace.training.pretrain_corpus`):
            ``"captions+itm+text"`` (v2: the three reference captions, generated image-text
            matching, and a text-only question-answer stream), ``"captions+itm"`` (v2 without
            the text stream) or ``"canonical"`` (v1: the canonical caption only).
        text_batch_size: texts per step of the text-only stream (``+text`` corpora only).
    """

    seed: int = 0
    data_seed: int = 0
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    max_grad_norm: float = 1.0
    n_train: int = 30000
    n_eval: int = 200
    image_size: int = 32
    max_new_tokens: int = 24
    architecture: dict = field(
        default_factory=lambda: dict(
            patch_size=4,
            vision_hidden=96,
            vision_layers=3,
            text_hidden=96,
            text_layers=3,
            num_heads=4,
            mlp_ratio=4,
        )
    )
    corpus: str = "captions+itm+text"
    text_batch_size: int = 32

    _command: ClassVar = "pretrain"
    _constraints: ClassVar = {
        "seed": [SEED],
        "data_seed": [SEED],
        "steps": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "lr": [Interval(float, 0, None, closed="neither")],
        "weight_decay": [Interval(float, 0, None)],
        "warmup_ratio": [Interval(float, 0, 1, closed="left")],
        "max_grad_norm": [Interval(float, 0, None, closed="neither")],
        "n_train": [Interval(int, 1, None)],
        "n_eval": [Interval(int, 2, None)],  # CIDEr-D's document frequencies need two images
        "image_size": [Interval(int, 1, None)],
        "max_new_tokens": [Interval(int, 1, None)],
        "architecture": [
            Check(
                _architecture,
                "a mapping of tiny_blip_config's sizes ("
                f"{', '.join(ARCHITECTURE_KEYS)}) to positive integers",
            )
        ],
        "corpus": [Options(*RECIPES)],
        "text_batch_size": [Interval(int, 1, None)],
    }


#: Tiny settings for tests and smoke runs (same architecture, seconds on a CPU).
QUICK = PretrainConfig(steps=4, batch_size=8, n_train=64, n_eval=8, max_new_tokens=8)


TARGET_NOTES = {
    "canonical": "canonical caption (captions[0])",
    "captions+itm+text": "as captions+itm, plus a text-only stream of 'question answer' texts about train "
    "scenes of both domains (no image; text_batch_size per step)",
    "captions+itm": "one of 5 texts per image and step: captions[0], captions[1], captions[2] (count as a "
    "digit for half the images), '<true caption> ? yes', '<non-matching caption> ? no' "
    "(loss on answer + [SEP] only); repspace.training.pretrain_corpus",
}
