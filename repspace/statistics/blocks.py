"""Per-block moments of the layers held as moments: the jackknife's statistics at n ≫ d.

A layer on the rows route gets its jackknife replicates from its rows
(:mod:`repspace.closed_forms.jackknife`).  A layer held as moments has no rows left, so the
replicates need per-block moments: row i (global number) also enters block i mod B, a
moments accumulator of its own, and replicate b is the metric of the other B − 1 blocks
merged (exact: merging moments is).  That costs B × the layer's moments in memory and, per
replicate, the layer's closed forms again (d × d decompositions), so blocks are kept only
while both are small: B · (p² + q² + pq) · 8 bytes ≤ :data:`MAX_BYTES` per layer pair (widths
up to ≈ 500 at B = 20).  Wider layers past the break-even get no interval, and the report
says so.  Blocks live on one process: a distributed reduction drops them (their layers then
have no interval), as does a merge with an accumulator that has none.
"""

from __future__ import annotations

import torch

from repspace.statistics.units import Unit, unit_moments_bytes

__all__ = ["IntervalBlocks", "MAX_BYTES"]

MAX_BYTES = 128 * 2**20


class IntervalBlocks:
    """``{unit index: [B pair accumulators]}`` for an accumulator's moments units."""

    def __init__(self, blocks: int):
        self.count = blocks
        self.units: dict[int, list] = {}

    def affordable(self, unit: Unit, widths: dict) -> bool:
        return self.count >= 2 and self.count * unit_moments_bytes(unit, widths) <= MAX_BYTES

    def start(self, index: int, unit: Unit, make) -> None:
        """Open the blocks of unit ``index`` (``make()``: a fresh moments pair accumulator)."""
        self.units[index] = [make() for _ in range(self.count)]

    def feed(self, index: int, unit: Unit, base: dict, tuned: dict, first_row: int) -> None:
        """Rows ``first_row, first_row + 1, …`` of the unit's layers, each to its block."""
        blocks = self.units.get(index)
        if blocks is None:
            return
        rows = next(iter(base.values())).shape[0]
        ids = torch.arange(first_row, first_row + rows) % self.count
        b_names = list(dict.fromkeys(b for b, _ in unit.pairs))
        t_names = list(dict.fromkeys(t for _, t in unit.pairs))
        for j, acc in enumerate(blocks):
            keep = torch.nonzero(ids == j).flatten()
            if keep.numel():
                acc.update(
                    {b: base[b][keep.to(base[b].device)] for b in b_names},
                    {t: tuned[t][keep.to(tuned[t].device)] for t in t_names},
                )

    def leave_one_out(self, index: int, make):
        """The B accumulators of every block but one (replicate b leaves block b out)."""
        blocks = self.units[index]
        for b in range(len(blocks)):
            acc = make()
            for j, block in enumerate(blocks):
                if j != b and block.n:
                    acc.merge(block)
            yield acc

    def merge(self, other: "IntervalBlocks") -> None:
        """Add ``other``'s blocks unit by unit; a unit only one side has blocks for loses them."""
        for index in list(self.units):
            theirs = other.units.get(index)
            if theirs is None or len(theirs) != self.count:
                del self.units[index]
                continue
            for mine, block in zip(self.units[index], theirs):
                mine.merge(block)

    def drop(self) -> None:
        self.units.clear()
