"""Scene geometry and pixels: every scene-graph fact used by captions/VQA is visible in the image."""

import numpy as np
import pytest

from repspace.data import DOMAINS, ShapesWorld, shape_mask
from repspace.data.domains import BG_MIN_SHIFTED
from repspace.data.scene import GRID, cell_edges


def _samples(domain, n=60, size=32, split="train", seed=0):
    w = ShapesWorld(seed=seed, domain=domain, image_size=size)
    return [w.sample(split, i) for i in range(n)]


@pytest.mark.parametrize("size", [32, 48, 64])
@pytest.mark.parametrize("domain", ["source", "shifted"])
def test_objects_in_distinct_cells_with_margin(domain, size):
    edges = cell_edges(size)
    for s in _samples(domain, 40, size):
        cells = [(o.row, o.col) for o in s.scene.objects]
        assert len(set(cells)) == len(cells) and 1 <= len(cells) <= 3
        for o in s.scene.objects:
            x0, y0, x1, y1 = o.bbox
            assert edges[o.col] + 1 <= x0 < x1 <= edges[o.col + 1] - 1
            assert edges[o.row] + 1 <= y0 < y1 <= edges[o.row + 1] - 1
            assert x1 - x0 == y1 - y0
        assert s.scene.objects == tuple(sorted(s.scene.objects, key=lambda o: (o.col, o.row)))


def _palette_mask(img, rgb):
    return np.all(img == np.array(rgb, np.uint8), axis=-1)


@pytest.mark.parametrize("domain", ["source", "shifted"])
def test_colors_and_count_recomputed_from_pixels(domain):
    spec = DOMAINS[domain]
    edges = cell_edges(32)
    for s in _samples(domain):
        img = s.image
        # distinct object colours, read from pixels, equal the scene graph's colour set
        seen = {name for name, rgb in spec.colors.items() if _palette_mask(img, rgb).any()}
        assert seen == {o.color for o in s.scene.objects}
        # count: number of grid cells holding any object-coloured pixel
        obj_px = np.zeros(img.shape[:2], bool)
        for rgb in spec.colors.values():
            obj_px |= _palette_mask(img, rgb)
        occupied = sum(
            obj_px[edges[r] : edges[r + 1], edges[c] : edges[c + 1]].any()
            for r in range(GRID)
            for c in range(GRID)
        )
        assert occupied == len(s.scene.objects)
        # each object's pixels are exactly its colour, inside its bbox; nothing outside bboxes
        inside = np.zeros_like(obj_px)
        for o in s.scene.objects:
            x0, y0, x1, y1 = o.bbox
            inside[y0:y1, x0:x1] = True
            patch = _palette_mask(img[y0:y1, x0:x1], spec.colors[o.color])
            assert np.array_equal(patch, shape_mask(o.shape, x1 - x0))
        assert not (obj_px & ~inside).any()


def test_shape_and_size_recomputed_from_pixels_source():
    # fill ratio of the bbox separates square (1), circle (~pi/4) and triangle (~1/2)
    def classify(ratio):
        return "square" if ratio > 0.95 else ("circle" if ratio > 0.65 else "triangle")

    n = 0
    for s in _samples("source", 80):
        areas = {}
        for o in s.scene.objects:
            x0, y0, x1, y1 = o.bbox
            m = _palette_mask(s.image[y0:y1, x0:x1], DOMAINS["source"].colors[o.color])
            areas[o.size] = max(areas.get(o.size, 0), (x1 - x0))
            if o.size == "large":
                assert classify(m.mean()) == o.shape
                n += 1
        if len(areas) == 2:
            assert areas["large"] > areas["small"]
    assert n > 20


def test_shape_masks_distinct_and_symmetric():
    masks = {s: shape_mask(s, 16) for s in ("circle", "square", "triangle", "diamond", "cross")}
    keys = list(masks)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not np.array_equal(masks[a], masks[b])
        assert np.array_equal(masks[a], masks[a][:, ::-1])  # left-right symmetric
    with pytest.raises(ValueError):
        shape_mask("hexagon", 8)


def test_domains_differ_measurably():
    def bg_stats(domain):
        imgs = np.stack([s.image for s in _samples(domain, 30)]).astype(float)
        corner = imgs[:, :1, :1].reshape(-1, 3)  # the 1 px margin keeps corners background
        return imgs.mean(), corner.mean(), imgs[:, :1, :].std(axis=(1, 2)).mean()

    src, shf = bg_stats("source"), bg_stats("shifted")
    assert src[1] < 60 and shf[1] > 150  # dark vs light background
    assert src[2] == 0 and shf[2] > 3  # plain vs textured (top row varies along the row)
    assert shf[0] - src[0] > 100
    # shifted has shapes the source never shows
    shapes = {o.shape for s in _samples("shifted", 100) for o in s.scene.objects}
    assert {"diamond", "cross"} <= shapes
    assert {o.shape for s in _samples("source", 100) for o in s.scene.objects} == {
        "circle",
        "square",
        "triangle",
    }


def test_shifted_background_never_equals_object_color():
    for s in _samples("shifted", 20):
        inside = np.zeros(s.image.shape[:2], bool)
        for o in s.scene.objects:
            x0, y0, x1, y1 = o.bbox
            inside[y0:y1, x0:x1] |= shape_mask(o.shape, x1 - x0)
        assert s.image[~inside].min() >= BG_MIN_SHIFTED
    for rgb in DOMAINS["shifted"].colors.values():
        assert min(rgb) < BG_MIN_SHIFTED
