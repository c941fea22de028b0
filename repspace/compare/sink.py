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

Memory: while a layer's sample still holds every row it saw (n ≤ ``max_rows``, the usual
case of a big model on a small probe) it keeps the batches' own tensors -- the ones the
rows route of the statistics keeps too -- and their keys, not a copy; the rows are put in
key order when read (:meth:`CompareSink.sample`, one layer at a time).  Past ``1.5 ·
max_rows`` held rows the layer is thinned to its bottom ``max_rows`` (amortised: one
concatenation per ``max_rows / 2`` rows, not one per batch -- at n = 8192 on a 2048-wide
model the per-batch thinning took ~90 s of a 20-minute compare, now ~2 s).
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
        # per layer: (keys, base rows, tuned rows) -- lists of the batches' tensors, or one
        # tensor each once thinned; keys and rows in the same order, not yet sorted
        self._parts: dict[str, tuple[list, list, list]] = {}

    # -- reading the sample ----------------------------------------------------------------
    @property
    def sampled_layers(self) -> list[str]:
        """The layers with a row sample, in capture order."""
        return [layer for layer, (keys, _, _) in self._parts.items() if keys]

    def sample(self, layer: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """``(keys, base rows, tuned rows)`` of ``layer``'s sample in ascending key order
        (float32, CPU), or None when it has none.  A fresh tensor each call: nothing is
        kept, so reading the layers one by one holds one layer's copy at a time."""
        parts = self._parts.get(layer)
        if not parts or not parts[0]:
            return None
        keys, base, tuned = (torch.cat(p) if len(p) > 1 else p[0] for p in parts)
        order = torch.argsort(keys)[: self.max_rows]
        return keys[order], base[order], tuned[order]

    @property
    def sample_keys(self) -> dict[str, torch.Tensor]:
        """Bottom-k keys of the sampled rows per layer, ascending (the order of :attr:`samples`)."""
        return {layer: self.sample(layer)[0] for layer in self.sampled_layers}

    @property
    def samples(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{"base" | "tuned": {layer: rows}}``, every layer at once (each a copy: prefer
        :meth:`sample` to read them one by one)."""
        out: dict[str, dict[str, torch.Tensor]] = {"base": {}, "tuned": {}}
        for layer in self.sampled_layers:
            _, out["base"][layer], out["tuned"][layer] = self.sample(layer)
        return out

    def replace_sample(
        self,
        keys: dict[str, torch.Tensor],
        base: dict[str, torch.Tensor],
        tuned: dict[str, torch.Tensor],
    ) -> None:
        """Hold exactly these sampled rows (e.g. the global bottom-k gathered across
        processes): per layer, ``keys`` ascending and the rows in the same order."""
        if not (set(keys) == set(base) == set(tuned)):
            raise ValueError("replace_sample: keys, base and tuned must name the same layers")
        self._parts = {layer: ([keys[layer]], [base[layer]], [tuned[layer]]) for layer in keys}

    # -- taking batches ----------------------------------------------------------------------
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
            self._seen[layer] = start + rows.shape[0]
            keys, base_rows, tuned_rows = self._parts.setdefault(layer, ([], [], []))
            keys.append(_row_keys(self.seed, layer, start, rows.shape[0]))
            # .to() returns the tensor itself when it is already float32 on the CPU: the
            # sample then shares the rows the statistics keep
            base_rows.append(rows.detach().to("cpu", torch.float32))
            tuned_rows.append(captured.sides["tuned"][layer].detach().to("cpu", torch.float32))
            if sum(k.shape[0] for k in keys) > self.max_rows + max(self.max_rows // 2, 1):
                kept = self.sample(layer)
                self._parts[layer] = tuple([t] for t in kept)


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
            raise ValueError(
                "FanOutSink: 'base' is the base model's side; name the tuned sides differently"
            )
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
            raise ValueError(
                f"FanOutSink cannot resume: pair sinks already hold batches {done}; "
                "give it fresh sinks"
            )
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
            index = (
                {"base": captured.index["base"], "tuned": captured.index[side]}
                if captured.index
                else {}
            )
            with self._naming(side):
                sink.update(
                    dataclasses.replace(captured, sides={"base": base, "tuned": tuned}, index=index)
                )

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
