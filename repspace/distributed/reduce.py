"""Reduce streaming accumulators across processes, exactly, driven by their reduction tables.

Every state of an accumulator names its rule (``FeatureMoments.reductions``,
``CrossMoments.reductions``, ``_StreamingSummary.reductions``):

    "sum"  all-reduce SUM      "min" / "max"  all-reduce MIN / MAX
    "same" must agree on every rank (checked: all-reduced MIN == MAX)
    "chan" (count, mean, M2) triples merged with the parallel formula
           M2 = M2ₐ + M2_b + δ²·nₐn_b/(nₐ+n_b),  δ = mean_b − meanₐ   (Chan et al. 1979)

Sums about different shifts cannot be added, so the moments are first brought to one
common shift, the global mean  c = Σ_r (Σx'_r + n_r·c_r) / Σ_r n_r  (one all-reduce of
n and the raw sums), with the exact polynomial identity of
:meth:`FeatureMoments.reshifted` / :meth:`CrossMoments.reshifted` (float64); then every
state is all-reduced with its rule, in float64.  The result on every rank equals one
accumulator fed all ranks' rows, to float64 rounding (≤ 1e-12 relative in the tests).

Communication: per layer p² + q² + pq float64 values (plus O(p + q)), i.e. O(L·d²) for
L layers — one all-reduce per state group, layer by layer, so the transient extra memory
is one layer's states, never all of them.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist

from repspace.statistics.drift_stats import PairedDriftStats
from repspace.statistics.layerwise import LayerwiseMoments, PairedMoments
from repspace.statistics.moments import CrossMoments, FeatureMoments

__all__ = ["reduce_states", "reduce_accumulator", "accumulator_layout"]

_OPS = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}


def _as_tensor(value, device) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64).to(device)


def reduce_states(states: dict, reductions: dict[str, str], group=None,
                  device: torch.device | str = "cpu") -> dict:
    """``states`` reduced across the group by ``reductions`` (float64; new dict).

    States of one rule travel in one flat buffer (one collective per rule).  Python
    ``int``/``float`` states come back as ``int``/``float``; tensors keep their device.
    """
    out = dict(states)
    for rule in ("sum", "min", "max", "same"):
        names = [k for k, r in reductions.items() if r == rule]
        if not names:
            continue
        parts = [_as_tensor(states[k], device).reshape(-1) for k in names]
        flat = torch.cat(parts)
        if rule == "same":
            lo, hi = flat.clone(), flat.clone()
            dist.all_reduce(lo, op=dist.ReduceOp.MIN, group=group)
            dist.all_reduce(hi, op=dist.ReduceOp.MAX, group=group)
            if not torch.equal(lo, hi):
                raise ValueError(f"states {names} must be equal on every rank but differ; "
                                 "were the ranks fed different layers or shifts?")
        else:
            dist.all_reduce(flat, op=_OPS[rule], group=group)
        start = 0
        for k, part in zip(names, parts):
            value = flat[start:start + part.numel()]
            start += part.numel()
            old = states[k]
            if isinstance(old, torch.Tensor):
                out[k] = value.reshape(old.shape).to(old.device, old.dtype)
            elif isinstance(old, np.ndarray):
                out[k] = value.reshape(old.shape).cpu().numpy().astype(old.dtype)
            elif isinstance(old, (int, np.integer)):
                out[k] = int(value.item())
            else:
                out[k] = float(value.item())
    return out


# -- layout agreement (ranks with an empty shard hold no states yet) ------------------------
def accumulator_layout(acc: LayerwiseMoments) -> dict | None:
    """What an accumulator tracks: layer widths, pairs, drift pairs; None before any data."""
    if acc.n == 0:
        return None
    return {"base": {k: v.dim for k, v in acc.base.items()},
            "tuned": {k: v.dim for k, v in acc.tuned.items()},
            "pairs": list(acc.cross), "drift": list(acc.drift),
            "names": ({k: v.name for k, v in acc.base.items()},
                      {k: v.name for k, v in acc.tuned.items()})}


def _materialise(acc: LayerwiseMoments, layout: dict, shifts: dict) -> None:
    """Give an accumulator that saw no rows the layout of the others (zero states)."""
    acc.base = {k: FeatureMoments(acc.precision, name=layout["names"][0][k]) for k in layout["base"]}
    acc.tuned = {k: FeatureMoments(acc.precision, name=layout["names"][1][k]) for k in layout["tuned"]}
    acc.cross = {tuple(p): CrossMoments() for p in layout["pairs"]}
    acc.drift = {tuple(p): PairedDriftStats() for p in layout["drift"]}
    for side, accs in (("base", acc.base), ("tuned", acc.tuned)):
        for k, fm in accs.items():
            fm.init_states(shifts[side, k])
    for (b, t), cm in acc.cross.items():
        cm.init_states(layout["base"][b], layout["tuned"][t], acc.base[b].shift.device)


def _agree_layout(acc: LayerwiseMoments, group) -> dict | None:
    layouts: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(layouts, accumulator_layout(acc), group=group)
    present = [(r, lay) for r, lay in enumerate(layouts) if lay is not None]
    if not present:
        return None
    r0, first = present[0]
    for r, lay in present[1:]:
        if lay != first:
            raise ValueError(f"rank {r} captured different layers or widths than rank {r0}; "
                             "every rank must run the same models with the same layer selection")
    return first


# -- the common shift --------------------------------------------------------------------------
def _common_shifts(acc: LayerwiseMoments, layout: dict, group, device, round_f32: bool) -> dict:
    """Global mean of every side/layer: one all-reduce of [n, Σx' + n·c] for all of them."""
    keys = [("base", k) for k in layout["base"]] + [("tuned", k) for k in layout["tuned"]]
    parts = []
    for side, k in keys:
        fm = getattr(acc, side).get(k)
        width = layout[side][k]
        if fm is None or fm.n == 0:
            parts.append(torch.zeros(width + 1, dtype=torch.float64, device=device))
        else:
            raw = (fm.sum + fm.n * fm.shift).to(device)
            parts.append(torch.cat([torch.tensor([float(fm.n)], dtype=torch.float64, device=device),
                                    raw]))
    flat = torch.cat(parts)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    out, start = {}, 0
    for (side, k), part in zip(keys, parts):
        seg = flat[start:start + part.numel()]
        start += part.numel()
        mean = seg[1:] / seg[0]
        # An accumulator with precision="auto" subtracts the shift in float32: keep it
        # representable there, so the reduced accumulator can go on streaming.
        out[side, k] = mean.float().double() if round_f32 else mean
    return out


# -- the reducers ----------------------------------------------------------------------------
def _reduce_summary(summary, group, device) -> None:
    """One ``_StreamingSummary`` (count/mean/M2 by Chan, counts/min/max by their rules)."""
    simple = {k: r for k, r in summary.reductions.items() if r != "chan"}
    states = reduce_states({k: getattr(summary, k) for k in simple}, simple, group, device)
    triple = torch.tensor([summary.n, summary.mean, summary.m2], dtype=torch.float64, device=device)
    gathered = [torch.empty_like(triple) for _ in range(dist.get_world_size(group))]
    dist.all_gather(gathered, triple, group=group)
    merged = type(summary)(summary.edges)  # the summary's own (Chan) merge, rank by rank
    for t in gathered:
        merged.merge(type(summary).from_moments(summary.edges, int(t[0].item()), float(t[1].item()),
                                                float(t[2].item())))
    n = merged.n
    summary.n, summary.mean, summary.m2 = n, merged.mean, merged.m2
    summary.n_undefined = states["n_undefined"]
    summary.counts = states["counts"]
    summary.min = states["min"] if n else math.inf
    summary.max = states["max"] if n else -math.inf


def _reduce_layerwise(acc: LayerwiseMoments, group, device) -> LayerwiseMoments:
    layout = _agree_layout(acc, group)
    if layout is None:  # no rank saw any row
        return acc
    shifts = _common_shifts(acc, layout, group, device, acc.precision == "auto")
    if acc.n == 0:
        _materialise(acc, layout, shifts)
    else:
        # Cross terms first: their re-shift needs both sides' pre-shift sums.  One pair
        # at a time, so at most one layer's re-shifted copy exists beside the states.
        for (b, t), cm in list(acc.cross.items()):
            fx, fy = acc.base[b], acc.tuned[t]
            acc.cross[b, t] = cm.reshifted(fx, fy, shifts["base", b].to(fx.shift.device),
                                           shifts["tuned", t].to(fy.shift.device))
        for side in ("base", "tuned"):
            accs = getattr(acc, side)
            for k, fm in accs.items():
                accs[k] = fm.reshifted(shifts[side, k].to(fm.shift.device))
    for accs in (acc.base, acc.tuned):
        for fm in accs.values():
            fm.load_state_dict(reduce_states(fm.state_dict(), fm.reductions, group, device))
    for cm in acc.cross.values():
        cm.load_state_dict(reduce_states(cm.state_dict(), cm.reductions, group, device))
    for pair in layout["drift"]:
        stats = acc.drift.setdefault(tuple(pair), PairedDriftStats())
        _reduce_summary(stats.cosine, group, device)
        _reduce_summary(stats.relative_shift, group, device)
    acc.n = int(reduce_states({"n": acc.n}, {"n": "sum"}, group, device)["n"])
    return acc


def reduce_accumulator(acc, group=None, device: torch.device | str | None = None):
    """All-reduce an accumulator in place; afterwards every rank holds the global statistics.

    ``acc``: :class:`LayerwiseMoments`, :class:`PairedMoments` or :class:`FeatureMoments`.
    Ranks that saw no rows take part with zero states.  A collective — every rank of
    ``group`` must call it, with accumulators of the same layers.  ``device``: where the
    collective buffers live (CPU for gloo, the rank's GPU for NCCL; default: CPU unless
    the backend is NCCL).
    """
    if device is None:
        device = (torch.device("cuda", torch.cuda.current_device())
                  if dist.get_backend(group) == "nccl" else torch.device("cpu"))
    if isinstance(acc, PairedMoments):
        _reduce_layerwise(acc.layerwise, group, device)
        return acc
    if isinstance(acc, LayerwiseMoments):
        return _reduce_layerwise(acc, group, device)
    if isinstance(acc, FeatureMoments):
        wrapper = LayerwiseMoments(precision=acc.precision)
        wrapper.base, wrapper.tuned, wrapper.n = ({"": acc}, {}, acc.n) if acc.n else ({}, {}, 0)
        _reduce_layerwise(wrapper, group, device)
        reduced = wrapper.base.get("")
        if reduced is not None:
            acc.load_state_dict(reduced.state_dict())
        return acc
    raise TypeError(f"cannot reduce {type(acc).__name__}; expected LayerwiseMoments, "
                    "PairedMoments or FeatureMoments")
