"""Scene graphs of the shapes world and how to sample them.

A scene is 1..3 objects placed in distinct cells of a 3x3 grid.  Because every object lives
in its own cell (with a >= 1 px margin), objects never overlap or touch, and spatial relations
are defined on grid coordinates, so they are never ambiguous:

* ``a left of b``  <=> ``a.col < b.col``      (``right of`` symmetric)
* ``a above b``    <=> ``a.row < b.row``      (``below`` symmetric)

Objects in the same column are neither left nor right of each other.  Everything else (the
image, captions, questions, answers) is a deterministic function of the :class:`Scene` (plus,
for the image, a render RNG for background texture).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from repspace.data.domains import SIZES, get_domain

__all__ = ["GRID", "SceneObject", "Scene", "cell_edges", "position_name", "sample_scene"]

#: Grid side: objects occupy distinct cells of a GRID x GRID grid.
GRID = 3
_ROW_NAMES = ("top", "middle", "bottom")
_COL_NAMES = ("left", "center", "right")


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene.

    Attributes:
        shape, color, size: attribute names (``size`` is ``"small"`` or ``"large"``).
        row, col: grid cell, 0-based, row 0 = top, col 0 = left.
        bbox: ``(x0, y0, x1, y1)`` pixel box, end-exclusive; the shape is drawn inside it.
    """

    shape: str
    color: str
    size: str
    row: int
    col: int
    bbox: tuple[int, int, int, int]

    @property
    def position(self) -> str:
        """Cell name: ``"top left"``, ``"top"``, ..., ``"center"``, ..., ``"bottom right"``."""
        return position_name(self.row, self.col)


@dataclass(frozen=True)
class Scene:
    """A scene graph: the objects (sorted left-to-right, then top-to-bottom) and its rendering context."""

    objects: tuple[SceneObject, ...]
    domain: str
    image_size: int

    def count(self, shape: str | None = None, color: str | None = None) -> int:
        """Number of objects with the given shape and/or colour (all objects if both None)."""
        return sum(
            1
            for o in self.objects
            if (shape is None or o.shape == shape) and (color is None or o.color == color)
        )


def position_name(row: int, col: int) -> str:
    """Name of a grid cell: the middle row and centre column are left out unless both apply."""
    if row == 1 and col == 1:
        return "center"
    if row == 1:
        return _COL_NAMES[col]
    if col == 1:
        return _ROW_NAMES[row]
    return f"{_ROW_NAMES[row]} {_COL_NAMES[col]}"


@lru_cache(maxsize=32)
def cell_edges(image_size: int) -> tuple[int, ...]:
    """Pixel boundaries of the grid cells along one axis (``GRID + 1`` integers, 0..image_size)."""
    return tuple(int(round(e)) for e in np.linspace(0, image_size, GRID + 1))


def object_side(image_size: int, size: str) -> int:
    """Side (pixels) of an object's square bounding box: a fraction of the smallest cell, leaving >= 1 px margin."""
    edges = cell_edges(image_size)
    cell = min(b - a for a, b in zip(edges[:-1], edges[1:]))
    return max(3, min(cell - 2, int(SIZES[size] * cell)))


def sample_scene(
    rng: np.random.Generator,
    domain: str,
    image_size: int,
    min_objects: int = 1,
    max_objects: int = 3,
) -> Scene:
    """Draw a random scene: number of objects, distinct cells, attributes, and jitter inside each cell.

    All draws come from ``rng`` in a fixed order, so the scene is a pure function of the RNG
    state.  Objects are returned sorted by ``(col, row)``, the order captions describe them in.
    """
    spec = get_domain(domain)
    if image_size < 3 * GRID * 2:
        raise ValueError(f"image_size must be >= {3 * GRID * 2} pixels, got {image_size}")
    if not 1 <= min_objects <= max_objects <= GRID * GRID:
        raise ValueError(
            f"need 1 <= min_objects <= max_objects <= {GRID * GRID}, got {min_objects}, {max_objects}"
        )
    n = int(rng.integers(min_objects, max_objects + 1))
    cells = rng.choice(GRID * GRID, size=n, replace=False)
    colors = tuple(spec.colors)
    shapes = rng.integers(0, len(spec.shapes), size=n)
    cols_ = rng.integers(0, len(colors), size=n)
    sizes = rng.integers(0, 2, size=n)
    jitter = rng.random((n, 2))
    edges = cell_edges(image_size)
    objs = []
    for k in range(n):
        row, col = divmod(int(cells[k]), GRID)
        size = ("small", "large")[int(sizes[k])]
        side = object_side(image_size, size)
        # Offset inside the cell in [1, cell - side - 1]: a 1 px margin keeps neighbours apart.
        x0 = edges[col] + 1 + int(jitter[k, 0] * (edges[col + 1] - edges[col] - side - 1))
        y0 = edges[row] + 1 + int(jitter[k, 1] * (edges[row + 1] - edges[row] - side - 1))
        objs.append(
            SceneObject(
                shape=spec.shapes[int(shapes[k])],
                color=colors[int(cols_[k])],
                size=size,
                row=row,
                col=col,
                bbox=(x0, y0, x0 + side, y0 + side),
            )
        )
    objs.sort(key=lambda o: (o.col, o.row))
    return Scene(objects=tuple(objs), domain=domain, image_size=image_size)
