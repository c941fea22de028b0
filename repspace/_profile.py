"""Wall time per stage of one run (``repspace compare --profile``).

Stages do not nest, so they add up: ``load`` (probe data and checkpoints), ``inputs``
(tokenising / image processing of each batch), ``forward`` (the models' forwards with the
capture hooks), ``pooling`` (aligning and pooling the captured states), ``statistics``
(streaming them into the accumulators), ``metrics`` and ``report``; ``other`` is the rest of
the wall time.  Outside :func:`profiling`, :func:`stage` costs one global lookup.
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

    @property
    def total(self) -> float:
        return (self.end or time.perf_counter()) - self.start

    def table(self) -> str:
        """One line per stage: seconds and share of the wall time, then ``other`` and total."""
        total = self.total
        rows = [(s, t) for s, t in self.seconds.items()]
        rows.append(("other", max(total - sum(self.seconds.values()), 0.0)))
        lines = [f"  {s:<11}{t:9.3f} s  {100 * t / total if total else 0:5.1f} %" for s, t in rows]
        return "\n".join(["profile (wall time per stage):", *lines, f"  {'total':<11}{total:9.3f} s"])


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
    try:
        yield
    finally:
        prof.seconds[name] = prof.seconds.get(name, 0.0) + time.perf_counter() - t


def add_time(name: str, seconds: float) -> None:
    """Add ``seconds`` to stage ``name`` of the active profile, if any."""
    if _active is not None:
        _active.seconds[name] = _active.seconds.get(name, 0.0) + seconds


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
