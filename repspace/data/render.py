"""Rasterise a :class:`~repspace.data.scene.Scene` into an RGB ``uint8`` image (H x W x 3).

Vectorised numpy throughout: a shape is a boolean mask of its bounding box, computed once per
``(shape, side)`` and cached, then written with one fancy-index assignment; the textured
background is a handful of whole-image array operations.  No anti-aliasing on purpose: object
pixels carry *exactly* their palette colour, so tests (and users) can read attributes back
from pixels.

Shape masks use pixel centres ``u, v`` in ``[-1, 1]`` (x right, y down):

==========  ===============================
circle      ``u^2 + v^2 <= 1``
square      everything
triangle    ``|u| <= (v + 1) / 2`` (apex up)
diamond     ``|u| + |v| <= 1``
cross       ``|u| <= 1/3  or  |v| <= 1/3``
==========  ===============================
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from repspace.data.domains import BG_MIN_SHIFTED, get_domain
from repspace.data.scene import Scene

__all__ = ["shape_mask", "render_background", "render_scene"]


@lru_cache(maxsize=256)
def shape_mask(shape: str, side: int) -> np.ndarray:
    """Boolean ``(side, side)`` mask of ``shape`` filling its square bounding box (read-only)."""
    c = (np.arange(side) + 0.5) / side * 2.0 - 1.0
    u, v = c[None, :], c[:, None]
    if shape == "circle":
        m = u * u + v * v <= 1.0
    elif shape == "square":
        m = np.ones((side, side), dtype=bool)
    elif shape == "triangle":
        m = np.abs(u) <= (v + 1.0) / 2.0
    elif shape == "diamond":
        m = np.abs(u) + np.abs(v) <= 1.0
    elif shape == "cross":
        m = (np.abs(u) <= 1.0 / 3.0) | (np.abs(v) <= 1.0 / 3.0)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    m = np.broadcast_to(m, (side, side)).copy()
    m.setflags(write=False)
    return m


@lru_cache(maxsize=16)
def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return x, y


def render_background(domain: str, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """Background of a domain as ``(image_size, image_size, 3)`` uint8.

    ``plain``: the constant ``bg_rgb`` (``rng`` unused).  ``textured``: per-image tint
    ``bg_rgb + U(-25, 25)^3`` plus a grey luminance texture ``A sin(2 pi f (x cos t + y sin t) + phi)
    + N(0, 8^2)`` (A ~ U(8, 20), f ~ U(2, 5) cycles per image, t, phi uniform), clipped to
    ``[BG_MIN_SHIFTED, 255]`` so it can never equal an object colour.
    """
    spec = get_domain(domain)
    if spec.background == "plain":
        return np.broadcast_to(np.array(spec.bg_rgb, np.uint8), (image_size, image_size, 3)).copy()
    tint = np.asarray(spec.bg_rgb, np.float32) + rng.uniform(-25, 25, 3).astype(np.float32)
    amp, freq, theta, phase = (
        rng.uniform(8, 20),
        rng.uniform(2, 5),
        rng.uniform(0, np.pi),
        rng.uniform(0, 2 * np.pi),
    )
    x, y = _coords(image_size)
    lum = amp * np.sin(2 * np.pi * freq * (x * np.cos(theta) + y * np.sin(theta)) + phase)
    lum += rng.normal(0.0, 8.0, (image_size, image_size)).astype(np.float32)
    img = tint[None, None, :] + lum[:, :, None]
    return np.clip(np.rint(img), BG_MIN_SHIFTED, 255).astype(np.uint8)


def render_scene(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Render ``scene`` to an ``(H, W, 3)`` uint8 image; ``rng`` drives only the background texture."""
    spec = get_domain(scene.domain)
    img = render_background(scene.domain, scene.image_size, rng)
    for o in scene.objects:
        x0, y0, x1, y1 = o.bbox
        patch = img[y0:y1, x0:x1]  # a view: assignment writes into img
        patch[shape_mask(o.shape, x1 - x0)] = spec.colors[o.color]
    return img
