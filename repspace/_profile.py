"""Wall time per stage of one run (``repspace compare --profile``).

Stages: ``load`` (probe data and checkpoints), ``inputs`` (tokenising / image processing of
each batch), ``forward`` (the models' forwards with the capture hooks), ``pooling`` (aligning
and pooling the captured states), ``statistics`` (streaming them into the accumulators),
``metrics`` and ``report``; ``other`` is the rest of the wall time.  A stage entered inside
another (the forwards of an analysis inside ``metrics``, the first batch built inside
``load``) counts for the inner stage only: each second is counted once, so the stages and
``other`` add up to the total (100 %).  Outside :func:`profiling`, :func:`stage` costs one
global lookup.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator

__all__ = ["STAGES", "Profile", "add_time", "profiling", "stage", "timed_iter"]

STAGES = ("load", "inputs", "forward", "pooling", "statistics", "metrics", "report")


class Profile:
    """Seconds per stage since :func:`profiling` started."""

    def __init__(self):
        self.start = time.perf_counter()
        self.end: float | None = None
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        # open stages, innermost last: [name, seconds its inner stages took so far]
        self.open: list[list] = []

    def add(self, name: str, seconds: float) -> None:
        """``seconds`` for stage ``name``, taken out of the stage it ran inside (if any)."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        if self.open:
            self.open[-1][1] += seconds

    @property
    def total(self) -> float:
        return (self.end or time.perf_counter()) - self.start

    def table(self) -> str:
        """One line per stage: seconds and share of the wall time, then ``other`` and total."""
        total = self.total
        rows = [(s, t) for s, t in self.seconds.items()]
        rows.append(("other", max(total - sum(self.seconds.values()), 0.0)))
        lines = [f"  {s:<11}{t:9.3f} s  {100 * t / total if total else 0:5.1f} %" for s, t in rows]
        title = "profile (wall time per stage; a stage inside another counts in the inner one):"
        return "\n".join([title, *lines, f"  {'total':<11}{total:9.3f} s  100.0 %"])


_active: Profile | None = None


@contextlib.contextmanager
def profiling() -> Iterator[Profile]:
    """Collect stage times within the block (one profile at a time)."""
    global _active
    outer, _active = _active, Profile()
    try:
        yield _active
    finally:
        _active.end = time.perf_counter()
        _active = outer


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the block's wall time to stage ``name`` of the active profile, if any."""
    prof = _active
    if prof is None:
        yield
        return
    t = time.perf_counter()
    frame = [name, 0.0]
    prof.open.append(frame)
    try:
        yield
    finally:
        prof.open.pop()
        # its own time: the wall time less what its inner stages already counted
        prof.add(name, time.perf_counter() - t - frame[1])
        if prof.open:  # the inner stages' share is the enclosing stage's inner share too
            prof.open[-1][1] += frame[1]


def add_time(name: str, seconds: float) -> None:
    """Add ``seconds`` to stage ``name`` of the active profile, if any (taken out of the
    stage it was measured inside)."""
    if _active is not None:
        _active.add(name, seconds)


def timed_iter(items: Iterable, name: str = "inputs") -> Iterator:
    """``items``, with the time spent producing each one added to stage ``name``."""
    it = iter(items)
    while True:
        with stage(name):
            try:
                item = next(it)
            except StopIteration:
                return
        yield item
