"""The compare command's sink: exact streaming statistics plus a bounded row sample.

Metrics that need samples rather than sufficient statistics (RBF CKA, RBF MMD, k-NN
overlap, the 2-D embedding) run on a uniform random sample of at most ``max_rows``
rows per layer, drawn by bottom-k sampling: every row gets a pseudo-random key from
(seed, layer, row number) and the ``max_rows`` smallest keys are kept.  The sample is
therefore the same for the base and the tuned side (rows stay paired), for every
tuned checkpoint, and for any batch size.

Distributed runs: each rank numbers its rows from ``row_offset`` (the global number of
its shard's first sample), so the union of the ranks' bottom-k samples, bottom-k'd again
(:func:`repspace.distributed.gather_row_sample`), is exactly the single-process sample.

Devices: with a model split over devices (``device_map``), a layer's tuned rows are
moved to the device of its base rows, so each layer's statistics live on one device.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib

import torch

from repspace.capture.sinks import AccumulatorSink, CapturedBatch


def _row_keys(seed: int, layer: str, start: int, count: int) -> torch.Tensor:
    salt = int.from_bytes(hashlib.sha256(f"{seed}:{layer}".encode()).digest()[:8], "little")
    idx = torch.arange(start, start + count, dtype=torch.int64)
    # splitmix64-style mixing of (salt, row number), in int64 arithmetic; only the order of
    # the keys matters, so wrap-around is fine.
    z = idx * -7046029254386353131 + (salt & 0x7FFFFFFFFFFFFFFF)
    z = (z ^ (z >> 30)) * -4658895280553007687
    z = (z ^ (z >> 27)) * -7723592293110705685
    return z ^ (z >> 31)


class CompareSink(AccumulatorSink):
    """:class:`AccumulatorSink` that also keeps a paired bottom-k row sample per layer."""

    def __init__(self, max_rows: int = 1000, seed: int = 0, row_offset: int = 0, **acc_kwargs):
        super().__init__(**acc_kwargs)
        self.max_rows = max_rows
        self.seed = seed
        self.row_offset = row_offset
        self._seen: dict[str, int] = {}
        self._keys: dict[str, torch.Tensor] = {}
        self.samples: dict[str, dict[str, torch.Tensor]] = {"base": {}, "tuned": {}}

    @property
    def sample_keys(self) -> dict[str, torch.Tensor]:
        """Bottom-k keys of the sampled rows per layer, ascending (the order of :attr:`samples`)."""
        return self._keys

    def replace_sample(self, keys: dict[str, torch.Tensor], base: dict[str, torch.Tensor],
                       tuned: dict[str, torch.Tensor]) -> None:
        """Hold exactly these sampled rows (e.g. the global bottom-k gathered across
        processes): per layer, ``keys`` ascending and the rows in the same order."""
        if not (set(keys) == set(base) == set(tuned)):
            raise ValueError("replace_sample: keys, base and tuned must name the same layers")
        self._keys = dict(keys)
        self.samples = {"base": dict(base), "tuned": dict(tuned)}

    def update(self, captured: CapturedBatch) -> None:
        base, tuned = captured.sides.get("base", {}), captured.sides.get("tuned", {})
        if any(n in tuned and tuned[n].device != r.device for n, r in base.items()):
            moved = {n: t.to(base[n].device) if n in base else t for n, t in tuned.items()}
            captured = dataclasses.replace(captured, sides={**captured.sides, "tuned": moved})
        super().update(captured)
        if self.max_rows <= 0:
            return
        for layer, rows in captured.sides["base"].items():
            start = self._seen.get(layer, self.row_offset)
            keys = _row_keys(self.seed, layer, start, rows.shape[0])
            self._seen[layer] = start + rows.shape[0]
            old = self._keys.get(layer)
            all_keys = keys if old is None else torch.cat([old, keys])
            keep = torch.argsort(all_keys)[: self.max_rows]
            self._keys[layer] = all_keys[keep]
            for side in ("base", "tuned"):
                new = captured.sides[side][layer].detach().to("cpu", torch.float32)
                prev = self.samples[side].get(layer)
                both = new if prev is None else torch.cat([prev, new])
                self.samples[side][layer] = both[keep]


class FanOutSink:
    """One capture of the base and several tuned models, split into a pair sink per tuned model.

    The runner hands it batches with sides ``{"base": ..., side_1: ..., side_k: ...}``;
    each pair sink gets the usual paired batch (``{"base", "tuned"}``) of its own side, so
    the base runs once per batch whatever k is, and memory stays per batch (no base rows
    are kept between batches).  The pair sinks share the base statistics (the first owns
    them), so each base batch is also accumulated once: one base Gram per layer, not k.

    ``identical[side]``: ``{layer: bool}``, whether that side's rows equalled the base's bit
    for bit on every batch so far (empty until a batch arrives), for the inactive-adapter
    warning of :func:`repspace.capture.capture_paired`.
    """

    def __init__(self, sinks: dict[str, AccumulatorSink], labels: dict[str, str] | None = None):
        # labels: side -> what an error calls it (every pair sink sees its side as "tuned")
        self.labels = labels or {}
        if "base" in sinks:
            raise ValueError("FanOutSink: 'base' is the base model's side; name the tuned sides "
                             "differently")
        self.sinks = sinks
        self.identical: dict[str, dict[str, bool]] = {side: {} for side in sinks}
        # one base Gram per layer, not k: the first pair sink owns the base statistics
        owner, *others = sinks.values()
        for sink in others:
            if isinstance(sink, AccumulatorSink) and isinstance(owner, AccumulatorSink):
                sink.share_base_with(owner)

    def start(self, info: dict) -> int:
        done = {side: sink.start(info) for side, sink in self.sinks.items()}
        if any(done.values()):
            raise ValueError(f"FanOutSink cannot resume: pair sinks already hold batches {done}; "
                             "give it fresh sinks")
        return 0

    def update(self, captured: CapturedBatch) -> None:
        base = captured.sides["base"]
        base_cpu: dict[str, torch.Tensor] = {}
        for side, sink in self.sinks.items():
            tuned = captured.sides[side]
            same = self.identical[side] or dict.fromkeys(base, True)
            for name, still in same.items():
                if still:
                    if name not in base_cpu:
                        base_cpu[name] = base[name].cpu()
                    same[name] = torch.equal(base_cpu[name], tuned[name].cpu())
            self.identical[side] = same
            index = ({"base": captured.index["base"], "tuned": captured.index[side]}
                     if captured.index else {})
            with self._naming(side):
                sink.update(dataclasses.replace(captured, sides={"base": base, "tuned": tuned},
                                                index=index))

    @contextlib.contextmanager
    def _naming(self, side: str):
        """An error about "tuned[layer]" names the tuned checkpoint of ``side`` instead."""
        try:
            yield
        except ValueError as exc:
            label = self.labels.get(side)
            if label is None or "tuned[" not in str(exc):
                raise
            raise ValueError(str(exc).replace("tuned[", f"{label}[", 1)) from None

    def finish(self) -> None:
        for side, sink in self.sinks.items():  # the owner first: the others reuse its base batch
            with self._naming(side):
                sink.finish()
        for sink in self.sinks.values():
            if isinstance(sink, AccumulatorSink):
                sink.release_shared()
