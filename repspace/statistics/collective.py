"""Collectives on states (``torch.distributed``): reduce a state dict by its rules, and the
global mean that puts per-rank shifted sums on one common shift.

Sums about different shifts cannot be added, so shifted moments are first brought to the
global mean  c = Σ_r (Σx'_r + n_r·c_r) / Σ_r n_r  (one all-reduce of n and the raw sums),
re-shifted with the exact polynomial identity of :meth:`FeatureMoments.reshifted`, and
only then reduced state by state, in float64.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["collective_device", "reduce_states", "global_means", "agree"]

_OPS = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}


def collective_device(group=None) -> torch.device:
    """Where collective buffers live: the rank's GPU for NCCL, else the CPU (gloo)."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _as_tensor(value, device) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64).to(device)


def reduce_states(
    states: dict, reductions: dict[str, str], group=None, device: torch.device | str = "cpu"
) -> dict:
    """``states`` reduced across the group by ``reductions`` (float64; new dict).

    Rules "sum", "min", "max" and "same" (checked: all-reduced MIN == MAX); a "chan" state
    needs its accumulator's own merge and is left as it is here.  States of one rule
    travel in one flat buffer (one collective per rule).  Python ``int``/``float`` states
    come back as ``int``/``float``; tensors and arrays keep their device and dtype.
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
                raise ValueError(
                    f"states {names} must be equal on every rank but differ; "
                    "were the ranks fed different layers or shifts?"
                )
        else:
            dist.all_reduce(flat, op=_OPS[rule], group=group)
        start = 0
        for k, part in zip(names, parts):
            value = flat[start : start + part.numel()]
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


def global_means(
    moments: list, widths: list[int], group, device, round_f32: bool
) -> list[torch.Tensor]:
    """The global mean of each accumulator in ``moments`` (FeatureMoments, or None on a
    rank that saw no rows of it), in one all-reduce of [n, Σx' + n·c] for all of them.

    ``round_f32``: round the means to float32, so an accumulator with precision "auto"
    (which subtracts its shift in float32) can go on streaming after the reduction.
    """
    parts = []
    for fm, width in zip(moments, widths):
        if fm is None or fm.n == 0:
            parts.append(torch.zeros(width + 1, dtype=torch.float64, device=device))
        else:
            raw = (fm.sum + fm.n * fm.shift).to(device)
            parts.append(
                torch.cat([torch.tensor([float(fm.n)], dtype=torch.float64, device=device), raw])
            )
    flat = torch.cat(parts)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    out, start = [], 0
    for part in parts:
        seg = flat[start : start + part.numel()]
        start += part.numel()
        mean = seg[1:] / seg[0]
        out.append(mean.float().double() if round_f32 else mean)
    return out


def agree(value, group, what: str):
    """``value`` from every rank (None from ranks with nothing yet): the one non-None value
    all of them agree on, or None when no rank has one; a one-line error naming the rank
    that differs."""
    values: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(values, value, group=group)
    present = [(r, v) for r, v in enumerate(values) if v is not None]
    if not present:
        return None
    r0, first = present[0]
    for r, v in present[1:]:
        if v != first:
            raise ValueError(
                f"rank {r} captured different {what} than rank {r0}; every rank "
                "must run the same models with the same layer selection"
            )
    return first
