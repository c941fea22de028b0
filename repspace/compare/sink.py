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
