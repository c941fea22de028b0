"""Image utilities shared by the synthetic world and the real-data loaders (no torchvision).

Images are ``(H, W, 3)`` uint8 numpy arrays everywhere; :func:`to_float_tensor` converts to
the ``(3, H, W)`` float32 layout models take.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = [
    "load_image",
    "open_image",
    "to_rgb",
    "decode_rgb",
    "plain_rgb",
    "to_float_tensor",
    "collate",
    "MAX_IMAGE_PIXELS",
]

# Images above this many pixels are refused before any pixel is decoded (a decompression
# bomb: a few kB of PNG claiming 40000 x 40000 pixels).  Pillow's own default threshold,
# held here so that a program setting ``PIL.Image.MAX_IMAGE_PIXELS = None`` cannot lift it.
MAX_IMAGE_PIXELS = 89_478_485

# Modes whose ``convert("RGB")`` is the faithful rendering (no transparency): 1-bit, 8-bit
# grey and palette, RGB (+ padding) and the colorimetric spaces Pillow converts exactly.
_PLAIN_MODES = frozenset({"RGB", "RGBX", "L", "1", "P", "YCbCr", "LAB", "HSV"})
# 16-bit grey (PNG, TIFF, PGM): ``convert("RGB")`` clips every value above 255 to white.
_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# Modes with an alpha channel: composited onto white, as transformers' ``convert_to_rgb``
# (and so every image processor with ``do_convert_rgb``) does.
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_REFUSED = {
    "I": "32-bit integer pixels with no defined white level",
    "F": "32-bit floating-point pixels with no defined white level",
    "CMYK": "print colours (CMYK), whose RGB rendering depends on an ink profile repspace does "
    "not guess",
}


def _has_alpha(image) -> bool:
    return image.mode in _ALPHA_MODES or image.info.get("transparency") is not None


def plain_rgb(image, where: str) -> bool:
    """Whether ``image.convert("RGB")`` renders ``image`` faithfully (True), or :func:`to_rgb`
    must convert it (False: 16-bit grey, transparency); ``ValueError`` naming ``where`` and
    the mode for a mode repspace cannot render faithfully (32-bit integer or float, CMYK, …)."""
    mode = image.mode
    if mode in _SIXTEEN_BIT or _has_alpha(image):
        return False
    if mode in _PLAIN_MODES:
        return True
    why = _REFUSED.get(mode, "a pixel format repspace does not convert")
    raise ValueError(
        f"{where}: mode {mode} ({why}); save it as an 8-bit or 16-bit RGB, "
        "RGBA or greyscale image (e.g. PNG) and retry"
    )


def to_rgb(image, where: str):
    """``image`` (a PIL image) as an 8-bit RGB PIL image, converted faithfully:

    - 16-bit grey: scaled by 255/65535 (``convert("RGB")`` would clip every value above 255,
      turning a normal 16-bit image near-white);
    - transparency (an alpha channel, or a palette / grey / RGB colour key): composited onto
      white, as transformers' ``convert_to_rgb`` does;
    - modes :func:`plain_rgb` refuses: ``ValueError`` naming ``where`` and the mode.
    """
    import numpy as np
    from PIL import Image

    if plain_rgb(image, where):
        return image.convert("RGB")
    if image.mode in _SIXTEEN_BIT:
        raw = np.asarray(image).astype(np.uint32)
        grey = ((raw * 255 + 32767) // 65535).astype(np.uint8)  # rounded, 0 -> 0, 65535 -> 255
        rgb = np.repeat(grey[..., None], 3, axis=2)
        key = image.info.get("transparency")
        if isinstance(key, int) and not isinstance(key, bool):
            rgb[raw == key] = 255
        return Image.fromarray(rgb, "RGB")
    if image.mode == "La":  # premultiplied: Pillow converts it to LA only
        image = image.convert("LA")
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


@contextlib.contextmanager
def open_image(path: str | os.PathLike, where: str | None = None) -> Iterator:
    """Open image ``path`` with PIL, reading its header only (no pixel decoded): a missing
    file, a named pipe (which would block), a file PIL cannot identify, an empty image or a
    decompression bomb (more than :data:`MAX_IMAGE_PIXELS` pixels, whatever PIL's own
    setting) fails in one line naming ``where`` (default: the path)."""
    import warnings

    from PIL import Image

    path = os.fspath(path)
    where = where or f"image {path}"
    if not os.path.exists(path):
        raise ValueError(f"{where}: does not exist")
    if not os.path.isfile(path):  # a pipe named x.png would block the reader forever
        raise ValueError(f"{where}: not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(
            f"{where}: claims more pixels than can be decoded safely ({_reason(exc)}); "
            "resize it or remove it"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure of a (hostile) file's header is its own
        raise ValueError(
            f"{where}: cannot be used ({_reason(exc)}); replace or remove it"
        ) from None
    try:
        w, h = image.size
        if w < 1 or h < 1:
            raise ValueError(f"{where}: empty ({w}x{h})")
        if w * h > MAX_IMAGE_PIXELS:
            raise ValueError(
                f"{where}: {w}x{h} = {w * h:,} pixels, above the limit of "
                f"{MAX_IMAGE_PIXELS:,} against decompression bombs; resize it or "
                "remove it"
            )
        yield image
    finally:
        image.close()


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__


def decode_rgb(image, where: str):
    """:func:`to_rgb` of an image opened by :func:`open_image`, decoding its pixels: a
    truncated or corrupt file fails in one line naming ``where``."""
    try:
        return to_rgb(image, where)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise OSError, SyntaxError, …
        raise ValueError(
            f"{where}: cannot be decoded ({_reason(exc)}); replace or remove it"
        ) from None


def load_image(path: str | os.PathLike, image_size: int | None = None) -> np.ndarray:
    """Read an image with PIL as RGB ``(H, W, 3)`` uint8 (converted faithfully,
    :func:`to_rgb`), resized to ``image_size`` square (bicubic) if given.

    Raises a one-line ``ValueError`` naming the file when it is missing, not an image, too
    large (:func:`open_image`) or in a mode repspace cannot render.
    """
    from PIL import Image

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"image file does not exist: {path}")
    where = f"cannot read image {path}"
    with open_image(path, where) as im:
        im = decode_rgb(im, where)
        if image_size is not None:
            im = im.resize((image_size, image_size), Image.Resampling.BICUBIC)
        return np.asarray(im, dtype=np.uint8).copy()


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
