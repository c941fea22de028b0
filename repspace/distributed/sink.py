"""Combine the ranks' capture sinks: reduced statistics everywhere, the row sample on rank 0.

Statistics: every accumulator of an :class:`~repspace.capture.sinks.AccumulatorSink`
is all-reduced (:func:`reduce_accumulator`); ranks with an empty shard first create the
accumulators the others have (same stream keys, in the same order).

Row sample (:class:`~repspace.compare.sink.CompareSink`): each rank holds the bottom-k
of its own rows under keys h(seed, layer, global row number).  The global bottom-k is
contained in the union of the per-rank bottom-k's, so

1. all-gather the keys (k int64 per layer and rank, tiny);
2. every rank computes the k-th smallest key τ of the union and keeps its rows with
   key ≤ τ (keys are distinct: h is a bijection of the row number);
3. gather those rows to rank 0 (k rows per layer in total — as much as one process
   holds), which sorts them by key.

Rank 0 then holds exactly the single-process sample, rows in the same order, when the
rows are numbered by global sample number (pooled rows).  Every other rank's sample is
emptied.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from repspace.distributed.reduce import reduce_accumulator

__all__ = ["reduce_sink", "gather_row_sample"]


def reduce_sink(sink, group=None, device=None) -> None:
    """All-reduce every accumulator of ``sink`` in place (a collective)."""
    sink.finish()  # flush buffered rows (idempotent)
    keys_by_rank: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(keys_by_rank, list(sink.accumulators), group=group)
    keys = next((k for k in keys_by_rank if k), [])
    for r, k in enumerate(keys_by_rank):
        if k and k != keys:
            raise ValueError(
                f"rank {r} captured token streams {k} but another rank {keys}; "
                "every rank must run the same models and layers"
            )
    for key in keys:
        reduce_accumulator(sink.accumulator_for(key), group=group, device=device)


def gather_row_sample(sink, group=None) -> None:
    """Replace ``sink.samples`` by the global bottom-k sample on rank 0 (a collective)."""
    world = dist.get_world_size(group)
    # each layer's sample read once (reading it sorts and copies it)
    held = {layer: sink.sample(layer) for layer in sink.sampled_layers}
    mine = {layer: keys.numpy() for layer, (keys, _, _) in held.items()}
    all_keys: list = [None] * world
    dist.all_gather_object(all_keys, mine, group=group)
    layers = list(dict.fromkeys(layer for keys in all_keys for layer in keys))
    payload = {}
    for layer in layers:
        union = np.concatenate([keys[layer] for keys in all_keys if layer in keys])
        k = min(sink.max_rows, union.size)
        tau = np.partition(union, k - 1)[k - 1]
        if layer in mine:
            keep = torch.from_numpy(mine[layer] <= tau)
            payload[layer] = tuple(t[keep] for t in held[layer])
    parts: list | None = [None] * world if dist.get_rank(group) == 0 else None
    dist.gather_object(payload, parts, dst=0, group=group)
    keys_of, base, tuned = {}, {}, {}
    for layer in layers if parts is not None else []:  # every rank but 0 ends empty
        got = [p[layer] for p in parts if layer in p]
        keys = torch.cat([g[0] for g in got])
        order = torch.argsort(keys)
        keys_of[layer] = keys[order]
        base[layer] = torch.cat([g[1] for g in got])[order]
        tuned[layer] = torch.cat([g[2] for g in got])[order]
    sink.replace_sample(keys_of, base, tuned)
