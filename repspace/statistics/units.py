"""Which side-layers of a layer-pair accumulator change route together, and at what n.

A pair's cross terms need both of its sides on one route, so the unit of the rows-or-
moments choice is a connected component of the pair graph: with ``pairs="matched"`` each
layer with its namesake (one unit per layer), with ``pairs="all"`` every layer at once.
A unit keeps its rows while they are smaller than its moments
(:func:`repspace.statistics.routes.keeps_rows` generalised to several sides and pairs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from repspace.statistics.routes import FLOAT64

__all__ = ["Unit", "units_of", "unit_rows_bytes", "unit_moments_bytes"]

SideKey = tuple[str, str]  # ("base" | "tuned", layer)


@dataclass(frozen=True)
class Unit:
    """Side-layers ``sides`` and the ``pairs`` between them that switch route together."""

    sides: tuple[SideKey, ...]
    pairs: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        """How the report names it: the layer (matched pairs), else the layers joined."""
        layers = list(dict.fromkeys(layer for _, layer in self.sides))
        return layers[0] if len(layers) == 1 else "+".join(layers)


def units_of(pairs: Sequence[tuple[str, str]]) -> list[Unit]:
    """Connected components of the bipartite graph base ↔ tuned given by ``pairs``,
    in the order their first pair appears."""
    parent: dict[SideKey, SideKey] = {}

    def find(k: SideKey) -> SideKey:
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for b, t in pairs:
        parent[find(("base", b))] = find(("tuned", t))
    groups: dict[SideKey, tuple[list, list]] = {}
    for b, t in pairs:
        sides, members = groups.setdefault(find(("base", b)), ([], []))
        members.append((b, t))
        for key in (("base", b), ("tuned", t)):
            if key not in sides:
                sides.append(key)
    return [Unit(tuple(s), tuple(p)) for s, p in groups.values()]


def unit_rows_bytes(unit: Unit, widths: Mapping[SideKey, int], n: int, itemsize: int) -> int:
    return n * sum(widths[k] for k in unit.sides) * itemsize


def unit_moments_bytes(unit: Unit, widths: Mapping[SideKey, int]) -> int:
    own = sum(widths[k] ** 2 for k in unit.sides)
    cross = sum(widths["base", b] * widths["tuned", t] for b, t in unit.pairs)
    return FLOAT64 * (own + cross)
