"""Image utilities shared by the synthetic world and the real-data loaders (no torchvision).

Images are ``(H, W, 3)`` uint8 numpy arrays everywhere; :func:`to_float_tensor` converts to
the ``(3, H, W)`` float32 layout models take.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

__all__ = ["load_image", "to_float_tensor", "collate"]


def load_image(path: str | os.PathLike, image_size: int | None = None) -> np.ndarray:
    """Read an image with PIL as RGB ``(H, W, 3)`` uint8, resized to ``image_size`` square (bicubic) if given.

    Raises a one-line ``ValueError`` naming the file when it is missing or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"image file does not exist: {path}")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if image_size is not None:
                im = im.resize((image_size, image_size), Image.Resampling.BICUBIC)
            return np.asarray(im, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {path}: {type(e).__name__}: {e}") from None


def to_float_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32 tensor in [0, 1] (no normalisation)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {tuple(image.shape)}")
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate dataset items: images (numpy or tensors) are stacked into one tensor, everything
    else (strings, lists of references of varying length, ids) is kept as a list per key.

    Use as ``DataLoader(ds, collate_fn=collate)``; torch's default collate fails on
    reference lists of different lengths (COCO images have 5-7 captions).
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    out: dict[str, Any] = {}
    for key in batch[0]:
        vals = [b[key] for b in batch]
        if isinstance(vals[0], np.ndarray):
            out[key] = torch.from_numpy(np.stack(vals))
        elif isinstance(vals[0], torch.Tensor):
            out[key] = torch.stack(vals)
        else:
            out[key] = vals
    return out
