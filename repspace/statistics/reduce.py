"""All-reduce of a :class:`~repspace.statistics.LayerwiseMoments` across processes, exactly.

Steps (each a collective every rank takes part in, ranks with an empty shard included):

1. agree on the layout (layer widths, pairs, drift pairs) — one all-gather of a small dict;
2. the global mean of every side and layer (:func:`~repspace.statistics.collective.global_means`);
3. re-shift every state to it (cross terms first: their re-shift needs both sides'
   pre-shift sums), one pair at a time, so at most one layer's re-shifted copy exists
   beside the states;
4. reduce every state by its rule (:func:`~repspace.statistics.collective.reduce_states`),
   and the drift summaries by Chan's formula.

The result on every rank equals one accumulator fed all ranks' rows, to float64 rounding
(≤ 1e-12 relative in the tests).  Communication: per layer p² + q² + pq float64 values
(plus O(p + q)).

Rows route (:mod:`repspace.statistics.routes`): the ranks first agree on the global n and
on which units stay on rows (none held as moments anywhere, global n below the break-even);
those rows are all-gathered in rank order — the single-process order, since each rank's
shard is a contiguous block — so every rank then holds exactly the rows one process would.
The other units' rows become moments on each rank (replayed, exact) and reduce as above.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from repspace.statistics.collective import agree, global_means, reduce_states
from repspace.statistics.drift_stats import PairedDriftStats
from repspace.statistics.moments import CrossMoments, FeatureMoments
from repspace.statistics.rows import CrossRows, FeatureRows
from repspace.statistics.units import unit_moments_bytes, unit_rows_bytes, units_of

__all__ = ["all_reduce_layerwise"]


def _materialise(acc, layout: dict, shifts: dict, rows_units: list) -> None:
    """Give an accumulator that saw no rows the layout of the others (zero states; empty
    rows for the units that stay on the rows route)."""
    on_rows = {k for u in rows_units for k in u.sides}
    acc.units = units_of([tuple(p) for p in layout["pairs"]])
    for i, side in enumerate(("base", "tuned")):
        accs = {}
        for k in layout[side]:
            cls = FeatureRows if (side, k) in on_rows else FeatureMoments
            accs[k] = cls(acc.precision, name=layout["names"][i][k])
        setattr(acc, side, accs)
    acc.cross = {
        tuple(p): CrossRows() if ("base", p[0]) in on_rows else CrossMoments()
        for p in layout["pairs"]
    }
    acc.drift = {tuple(p): PairedDriftStats() for p in layout["drift"]}
    for side, accs in (("base", acc.base), ("tuned", acc.tuned)):
        for k, fm in accs.items():
            if isinstance(fm, FeatureMoments):
                fm.init_states(shifts[side, k])
    for (b, t), cm in acc.cross.items():
        if isinstance(cm, CrossMoments):
            cm.init_states(layout["base"][b], layout["tuned"][t], acc.base[b].shift.device)


def _routes(acc, layout: dict, group, device) -> tuple[int, list]:
    """The global n and the units that stay on the rows route: a unit goes to moments when
    any rank holds it as moments or the global n crosses its break-even."""
    units = units_of([tuple(p) for p in layout["pairs"]])
    local = [
        0.0 if acc.n and isinstance(acc._side(u.sides[0]), FeatureRows) else (1.0 if acc.n else 0.0)
        for u in units
    ]
    flags = torch.tensor([float(acc.n), *local], dtype=torch.float64, device=device)
    n = int(reduce_states({"n": flags[:1]}, {"n": "sum"}, group, device)["n"].item())
    moments = reduce_states({"m": flags[1:]}, {"m": "max"}, group, device)["m"]
    widths = {("base", k): w for k, w in layout["base"].items()}
    widths.update({("tuned", k): w for k, w in layout["tuned"].items()})
    itemsize = max(
        (
            acc._side(k).itemsize
            for u in units
            for k in u.sides
            if acc.n and isinstance(acc._side(k), FeatureRows)
        ),
        default=4,
    )
    itemsize = int(reduce_states({"i": itemsize}, {"i": "max"}, group, device)["i"])
    rows_units = [
        u
        for u, m in zip(units, moments.tolist())
        if not m
        and acc.route != "moments"
        and (
            acc.route == "rows"
            or unit_rows_bytes(u, widths, n, itemsize) < unit_moments_bytes(u, widths)
        )
    ]
    return n, rows_units


def _gather_rows(acc, rows_units: list, group, device) -> None:
    """Every rank's rows of ``rows_units``, in rank order (the single-process order: shards
    are contiguous), on every rank: one all-gather of a (max rows × Σ widths) buffer."""
    keys = [k for u in rows_units for k in u.sides]
    if not keys:
        return
    world = dist.get_world_size(group)
    sides = [acc._side(k) for k in keys]
    widths = [s.dim for s in sides] if acc.n else None
    dtype = torch.float64
    if acc.n:
        dtype = sides[0].batches[0].dtype
        for s in sides:
            for b in s.batches:
                dtype = torch.promote_types(dtype, b.dtype)
    counts = [None] * world
    dist.all_gather_object(counts, (acc.n, widths, str(dtype).removeprefix("torch.")), group=group)
    widths = next(w for n, w, _ in counts if n)
    common = (
        torch.float64
        if len({d for n, _, d in counts if n}) > 1
        else getattr(torch, next(d for n, _, d in counts if n))
    )
    most = max(n for n, _, _ in counts)
    buf = torch.zeros(most, sum(widths), dtype=common, device=device)
    if acc.n:
        buf[: acc.n] = torch.cat(
            [
                s.rows().to(common) if len(s.batches) != 1 else s.batches[0].to(common)
                for s in sides
            ],
            dim=1,
        ).to(device)
    parts = [torch.empty_like(buf) for _ in range(world)]
    dist.all_gather(parts, buf, group=group)
    everything = torch.cat([p[:n] for p, (n, _, _) in zip(parts, counts)])
    start = 0
    for key, width in zip(keys, widths):
        fresh = FeatureRows(acc.precision, name=acc._side(key).name)
        home = acc._side(key).batches[0].device if acc.n else device
        fresh.add(everything[:, start : start + width].to(home).contiguous())
        start += width
        (acc.base if key[0] == "base" else acc.tuned)[key[1]] = fresh


def all_reduce_layerwise(acc, group, device):
    """Reduce ``acc`` (a LayerwiseMoments) in place across ``group``; returns it."""
    layout = agree(acc.layout(), group, "layers or widths")
    if layout is None:  # no rank saw any row
        return acc
    n_global, rows_units = _routes(acc, layout, group, device)
    on_rows = {k for u in rows_units for k in u.sides}
    if acc.n:  # units that go to moments: this rank's rows become moments first (exact)
        for unit in acc.units:
            if unit.sides[0] not in on_rows and acc.unit_route(unit) == "rows":
                acc._install(*acc._replayed(unit, share_base=False))
    keys = [("base", k) for k in layout["base"] if ("base", k) not in on_rows]
    keys += [("tuned", k) for k in layout["tuned"] if ("tuned", k) not in on_rows]
    means = (
        global_means(
            [getattr(acc, side).get(k) for side, k in keys],
            [layout[side][k] for side, k in keys],
            group,
            device,
            acc.precision == "auto",
        )
        if keys
        else []
    )
    shifts = dict(zip(keys, means))
    if acc.n == 0:
        _materialise(acc, layout, shifts, rows_units)
    else:
        for (b, t), cm in list(acc.cross.items()):
            if isinstance(cm, CrossMoments):
                fx, fy = acc.base[b], acc.tuned[t]
                acc.cross[b, t] = cm.reshifted(
                    fx,
                    fy,
                    shifts["base", b].to(fx.shift.device),
                    shifts["tuned", t].to(fy.shift.device),
                )
        for side in ("base", "tuned"):
            accs = getattr(acc, side)
            for k, fm in accs.items():
                if isinstance(fm, FeatureMoments):
                    accs[k] = fm.reshifted(shifts[side, k].to(fm.shift.device))
    for accs in (acc.base, acc.tuned):
        for fm in accs.values():
            if isinstance(fm, FeatureMoments):
                fm.load_state_dict(reduce_states(fm.state_dict(), fm.reductions, group, device))
    for cm in acc.cross.values():
        if isinstance(cm, CrossMoments):
            cm.load_state_dict(reduce_states(cm.state_dict(), cm.reductions, group, device))
    _gather_rows(acc, rows_units, group, device)
    for pair in layout["drift"]:
        acc.drift.setdefault(tuple(pair), PairedDriftStats()).all_reduce(group, device)
    acc.n = n_global
    return acc
