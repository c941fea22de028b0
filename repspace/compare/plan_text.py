"""The table `repspace compare --plan` prints (:meth:`repspace.compare.plan.Plan.to_text`)."""

from __future__ import annotations

__all__ = ["plan_text", "size_text"]


def size_text(n: float | None) -> str:
    """Bytes for a reader: ``512 B``, ``16 MiB``, ``131 GiB`` (three significant digits)."""
    if n is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"


def _count(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return str(n)


def _table(head: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]

    def line(r):
        return "  ".join(
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(r, widths))
        ).rstrip()

    return [line(head), *(line(r) for r in rows)]


def _runs(layers) -> list[tuple[list, object]]:
    """Consecutive layers with the same widths, rows and route, as one run each."""
    runs: list[tuple[list, object]] = []
    for layer in layers:
        key = (layer.p, layer.q, layer.n, layer.route)
        if runs and runs[-1][1] == key:
            runs[-1][0].append(layer)
        else:
            runs.append(([layer], key))
    return runs


def plan_text(plan) -> str:
    """The plan as the terminal table: checkpoints, layers and routes, memory, verdict."""
    out = [
        "repspace compare --plan: configs read, no weights loaded"
        + (" (then one batch run for --calibrate)" if plan.calibration else ""),
        "",
    ]
    rows = []
    for m in plan.models:
        what = m.architecture + (
            f" + {m.adapter} ({_count(m.adapter_parameters)})" if m.adapter else ""
        )
        rows.append(
            [
                m.role,
                m.spec,
                m.kind,
                what,
                _count(m.parameters),
                m.dtype,
                size_text(m.weights_bytes + 4 * m.adapter_parameters),
            ]
        )
    out += _table(
        ["", "checkpoint", "kind", "architecture", "parameters", "dtype", "in memory"], rows, {4, 6}
    )
    out += [f"  {m.role}: {m.note}" for m in plan.models if m.note]
    out.append(f"base capture: {plan.base_capture}")
    tokens = plan.pooling == "tokens"
    size = plan.layers[0].itemsize if plan.layers else 4
    out += [
        "",
        f"layers: {len(plan.layers)} captured; n = {plan.num_samples} samples"
        + (" × tokens per sample (--pooling tokens)" if tokens else " (--num-samples)")
        + f"; rows kept while n·(p+q)·{size} B < (p²+q²+pq)·8 B, else moments",
    ]
    layer_rows = []
    for run, _ in _runs(plan.layers):
        first, last = run[0], run[-1]
        name = first.name if len(run) == 1 else f"{first.name} … {last.name} ({len(run)})"
        layer_rows.append(
            [
                name,
                f"{first.p}/{first.q}",
                str(first.n),
                first.route,
                size_text(first.rows_bytes),
                size_text(first.moments_bytes),
                str(first.break_even),
            ]
        )
    out += _table(
        ["layers", "p/q", "n", "route", "rows each", "moments each", "break-even n"],
        layer_rows,
        {1, 2, 4, 5, 6},
    )
    routes = [layer.route for layer in plan.layers]
    held = f" × {plan.held} tuned held at once" if plan.held > 1 else ""
    memory = [
        ["weights", size_text(plan.weights_bytes)],
        [
            f"statistics ({routes.count('rows')} rows, {routes.count('moments')} moments{held})",
            size_text(plan.statistics_bytes),
        ],
        ["capture buffer and row sample", size_text(plan.buffer_bytes)],
        [
            f"activations (one batch: {plan.batch_size} × {plan.tokens} tokens)",
            size_text(plan.activation_bytes),
        ],
        ["total", size_text(plan.total_bytes)],
        [f"free on {plan.memory_source}", size_text(plan.available_bytes)],
    ]
    out += ["", *_table(["memory", "bytes"], memory, {1})]
    out += [f"note: {n}" for n in plan.notes]
    verdict = (
        ("fits" if plan.available_bytes is not None else "fits (free memory unknown)")
        if plan.fits
        else "does not fit (see the error below)"
    )
    out += ["", f"verdict: {verdict}"]
    if plan.calibration:
        from repspace.compare.plan_calibrate import calibration_text

        out += calibration_text(plan.calibration)
    return "\n".join(out)
