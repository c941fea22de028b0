"""Where captured rows go: the streaming accumulator, memory, or disk (:mod:`.disk`).

A sink receives one :class:`CapturedBatch` per input batch::

    sink.start(info) -> int       # batches already stored (resume); 0 for fresh sinks
    sink.update(captured)         # rows of every side ("base", "tuned") and layer
    sink.finish()

Memory use of :class:`AccumulatorSink` is constant in the number of samples: it only
keeps the sufficient statistics of :class:`repspace.statistics.LayerwiseMoments`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["AccumulatorSink", "CapturedBatch", "MemorySink"]


@dataclass
class CapturedBatch:
    """Pooled rows of one input batch.

    sides    : ``{side: {layer: Tensor (rows, d)}}`` (``(b, t, d)`` with pooling ``none``)
    index    : ``{side: {layer: LongTensor (rows,)}}`` global sample number of each token
               row (pooling ``tokens`` only, else empty)
    streams  : ``{layer: "text" | "vision" | "decoder"}`` token stream of each layer
    n        : samples in the batch;  batch_index : position in the run
    hash     : SHA-256 of the batch inputs (resume / manifest check)
    """

    sides: dict[str, dict[str, torch.Tensor]]
    streams: dict[str, str]
    n: int
    batch_index: int
    hash: str = ""
    index: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


class AccumulatorSink:
    """Stream paired base/tuned rows into ``LayerwiseMoments`` (memory constant in n).

    With pooled rows (``mean``/``first``/``cls``/``last``) every layer has one row per
    sample and a single accumulator (:attr:`acc`) holds everything.  With
    ``pooling="tokens"`` layers of different token streams (vision patches vs text
    tokens) have different row counts, so one accumulator per stream is kept in
    :attr:`accumulators` (``acc`` is then the first of them).

    ``buffer_rows``: rows are collected until a stream holds this many, then handed to
    the accumulator in one ``update``.  Each update has a fixed O(p²) float64 cost per
    layer, which dominates small batches; buffering amortises it while memory stays
    bounded (``buffer_rows × Σ widths × 2 sides`` floats, independent of n).  While the
    accumulator keeps rows for every layer (``holds_rows_only``) each batch goes straight
    in: rows have no per-update cost, and a buffer would hold them twice.  The
    accumulators are complete after :meth:`finish` (the runner calls it).
    """

    def __init__(self, acc=None, *, buffer_rows: int = 2048, **acc_kwargs):
        from repspace.statistics import LayerwiseMoments

        if not isinstance(buffer_rows, int) or buffer_rows < 1:
            raise ValueError(f"buffer_rows must be a positive integer; got {buffer_rows!r}")
        self._factory = lambda **kw: LayerwiseMoments(**{"pairs": "matched", **acc_kwargs, **kw})
        self._first = acc if acc is not None else self._factory()
        self.accumulators: dict[str, object] = {}
        self.buffer_rows = buffer_rows
        self._pending: dict[str, list[tuple[dict, dict]]] = {}
        self._base_owner: AccumulatorSink | None = None
        self._sharers = 0  # sinks using this one's base statistics
        self._flushed_base: dict[str, tuple[list, dict]] = {}
        self._flushed_now: dict[str, bool] = {}  # per stream: whether the last batch flushed

    def share_base_with(self, owner: "AccumulatorSink") -> None:
        """Use ``owner``'s base statistics (one base Gram for k tuned models).  ``owner``
        must receive every batch first, with the same base tensors (as :class:`FanOutSink`
        does); before any batch."""
        if self.accumulators or owner is self:
            raise ValueError("share_base_with: call it once, before any batch, with another sink")
        self._base_owner = owner
        owner._sharers += 1
        if owner._first is not None:
            owner._first.share_base()
        self._first = None

    def accumulator_for(self, key: str):
        """The accumulator of token stream ``key``, created (empty) if this sink has none
        yet -- also how a rank with no rows joins a cross-process reduction."""
        if key not in self.accumulators:
            self.accumulators[key] = self._new_accumulator(key)
        return self.accumulators[key]

    def _new_accumulator(self, key: str):
        if self._base_owner is None:
            if not self.accumulators:
                return self._first
            acc = self._factory()
            if self._sharers:
                acc.share_base()
            return acc
        return self._factory(base_from=self._base_owner.accumulator_for(key))

    @property
    def acc(self):
        return next(iter(self.accumulators.values()), self._first)

    def start(self, info: dict) -> int:
        return 0

    def update(self, captured: CapturedBatch) -> None:
        if set(captured.sides) != {"base", "tuned"}:
            raise ValueError(
                "AccumulatorSink needs paired captures (base and tuned); use "
                "capture_paired() or a DiskSink for a single model"
            )
        base, tuned = captured.sides["base"], captured.sides["tuned"]
        groups: dict[str, list[str]] = {}
        for name, rows in base.items():
            if rows.ndim != 2:
                raise ValueError(
                    f"layer {name!r} has unpooled states {tuple(rows.shape)}; the "
                    "accumulator needs pooling mean/first/cls/last/tokens"
                )
            key = captured.streams[name] if captured.index else "all"
            groups.setdefault(key, []).append(name)
            if captured.index and not torch.equal(
                captured.index["base"][name], captured.index["tuned"][name]
            ):
                raise ValueError(
                    f"layer {name!r}: base and tuned kept different tokens; their "
                    "attention masks differ, so token rows cannot be paired"
                )
        for key, names in groups.items():
            self.accumulator_for(key)
            pending = self._pending.setdefault(key, [])
            pending.append(({n: base[n] for n in names}, {n: tuned[n] for n in names}))
            if self._base_owner is not None:  # flush with the owner, so the base rows match
                flush = self._base_owner._flushed_now.get(key, False)
            else:
                flush = (
                    self.accumulators[key].holds_rows_only()
                    or sum(next(iter(b.values())).shape[0] for b, _ in pending) >= self.buffer_rows
                )
            self._flushed_now[key] = flush
            if flush:
                self._flush(key)

    def _flush(self, key: str) -> None:
        pending = self._pending.pop(key, [])
        if not pending:
            return
        names = list(pending[0][0])
        if len(pending) == 1:  # one batch: its own tensors, no copy (rows keep what they get)
            cat = lambda side: dict(pending[0][side])
        else:
            cat = lambda side: {n: torch.cat([p[side][n] for p in pending]) for n in names}
        rows = [p[0][n] for p in pending for n in names]
        base = None
        if self._base_owner is not None:  # the owner's concatenation of the same rows, if so
            seen, owner_base = self._base_owner._flushed_base.get(key, ([], None))
            if len(seen) == len(rows) and all(a is b for a, b in zip(seen, rows)):
                base = owner_base
        if base is None:
            base = cat(0)
        if self._sharers:  # the sharing sinks flush the same rows next
            self._flushed_base[key] = (rows, base)
        self.accumulators[key].update(base, cat(1))

    def finish(self) -> None:
        for key in list(self._pending):
            self._flush(key)

    def release_shared(self) -> None:
        """Forget the last base batch kept for sharing sinks (call after they all finished)."""
        self._flushed_base.clear()
        for acc in self.accumulators.values():
            for fm in acc.base.values():
                fm.forget()


class MemorySink:
    """Keep every row in memory (small n, tests, notebooks): :attr:`tensors`."""

    def __init__(self):
        self._parts: dict[str, dict[str, list[torch.Tensor]]] = {}
        self._index: dict[str, dict[str, list[torch.Tensor]]] = {}
        self.n = 0

    def start(self, info: dict) -> int:
        return 0

    def update(self, captured: CapturedBatch) -> None:
        for side, layers in captured.sides.items():
            for name, rows in layers.items():
                self._parts.setdefault(side, {}).setdefault(name, []).append(rows.cpu())
        for side, layers in captured.index.items():
            for name, idx in layers.items():
                self._index.setdefault(side, {}).setdefault(name, []).append(idx.cpu())
        self.n += captured.n

    def finish(self) -> None:
        pass

    @property
    def tensors(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{side: {layer: Tensor}}`` concatenated over batches."""
        return {
            s: {n: torch.cat(p) for n, p in layers.items()} for s, layers in self._parts.items()
        }

    @property
    def sample_index(self) -> dict[str, dict[str, torch.Tensor]]:
        return {
            s: {n: torch.cat(p) for n, p in layers.items()} for s, layers in self._index.items()
        }
