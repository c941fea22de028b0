"""Short, unambiguous layer names for tables, captions and figure axes (no plotting here,
so the terminal summary does not import matplotlib)."""

from __future__ import annotations

__all__ = ["short_layer_names", "layer_groups", "tower_short_names", "layer_title"]


def short_layer_names(layers: list[str]) -> list[str]:
    """Drop the dotted prefix all layer names share: ``encoder.layer.3`` → ``layer.3``."""
    if len(layers) < 2:
        return list(layers)
    parts = [name.split(".") for name in layers]
    # Keep a word before a bare index: "layer.3", not "3".
    keep = [2 if p[-1].isdigit() and len(p) > 1 else 1 for p in parts]
    common = 0
    while (
        all(len(p) - common > k for p, k in zip(parts, keep))
        and len({p[common] for p in parts}) == 1
    ):
        common += 1
    return [".".join(p[common:]) for p in parts]


def layer_groups(layers: list[str]) -> list[tuple[str | None, list[int]]]:
    """Consecutive runs of layers that belong to one tower (``vision_model``/``text_decoder``):
    ``[(tower name or None, [layer indices])]``.

    A tower is the first dotted component after the prefix all layers share; a lone layer
    with its own component (``embeddings`` before ``encoder.layer.*``) is not a tower and
    joins its neighbour, so a single-tower model gives one group named None."""
    if not layers:
        return []
    parts = [name.split(".") for name in layers]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    keys = [p[common] if len(p) > common + 1 else None for p in parts]
    runs: list[list] = []
    for i, key in enumerate(keys):
        if runs and runs[-1][0] == key:
            runs[-1][1].append(i)
        else:
            runs.append([key, [i]])
    merged: list[list] = []
    for key, idx in runs:  # a one-layer run is no tower: it joins the run before (or after)
        if merged and (len(idx) < 2 or len(merged[-1][1]) < 2):
            merged[-1][1].extend(idx)
            if len(merged[-1][1]) - len(idx) < 2:
                merged[-1][0] = key
        else:
            merged.append([key, list(idx)])
    if len(merged) == 1:
        return [(None, merged[0][1])]
    return [(key, idx) for key, idx in merged]


def tower_short_names(layers: list[str]) -> list[str]:
    """Short layer names that stay unambiguous across towers: ``text_decoder: layer.2``."""
    return [layer_title(layers, layer) for layer in layers]


def layer_title(layers: list[str], layer: str) -> str:
    """``layer``'s short name, prefixed by its tower when there are several."""
    for name, idx in layer_groups(layers):
        if layers.index(layer) in idx:
            short = short_layer_names([layers[i] for i in idx])[idx.index(layers.index(layer))]
            return f"{name}: {short}" if name else short
    return layer
