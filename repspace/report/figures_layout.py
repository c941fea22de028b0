"""Layout rules every report figure follows (issue 27: figures any reader can read).

- **Small multiples.**  More than :data:`MAX_LINES` lines in one panel cannot be told apart
  (nine methods in the demo), so such a figure becomes one panel per checkpoint: that
  checkpoint in its colour and marker (with its band), every other checkpoint in light grey
  behind it for context, the reference (the base) dashed in every panel.
- **Consistent axes.**  One quantity drawn in several panels shares one y axis, and one log
  or linear choice: a reader compares panels by eye.
- **Log where values span orders of magnitude**: positive values whose max / min exceeds
  :data:`LOG_RATIO` (LoRA's ΔW rank ≈ 4 against full fine-tuning's ≈ 180), said on the axis
  label and in the caption.
- **Readable size.**  A figure is at most :data:`MAX_WIDTH` inches wide (a page column and a
  half), so its 8–10 pt fonts are not shrunk when the report shows it at page width, and at
  most :data:`MAX_ASPECT` times as wide as it is tall.

Figures are drawn with matplotlib's constrained layout: the suptitle, colour bars and the
legend outside the panels (``loc="outside right upper"``) all fit inside ``figsize``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from repspace.report.layer_names import layer_groups, short_layer_names
from repspace.report.style import subplots

__all__ = [
    "CONTEXT_COLOR",
    "LOG_RATIO",
    "MAX_ASPECT",
    "MAX_LINES",
    "MAX_WIDTH",
    "SMALL_MULTIPLES_NOTE",
    "SMALL_MULTIPLES_ROWS_NOTE",
    "broken",
    "figure_legend",
    "figure_title",
    "grid",
    "layer_axis",
    "log_label",
    "needs_log",
    "panel_position",
    "panel_width",
    "save_figure",
    "small_multiples",
]

MAX_LINES = 5
LOG_RATIO = 10.0  # one order of magnitude
MAX_WIDTH = 7.5
MAX_ASPECT = 2.5
LEGEND_WIDTH = 1.7  # inches kept for a legend right of the panels
CONTEXT_COLOR = "#D4D4D4"  # the other checkpoints of a small multiple: lighter than the base grey
SMALL_COLS = 3

SMALL_MULTIPLES_NOTE = (
    " One panel per checkpoint (more than {max_lines} lines in one panel "
    "would hide each other): the checkpoint named above the panel in its "
    "colour, the other checkpoints in light grey behind it; the panels "
    "share their axes."
)
SMALL_MULTIPLES_ROWS_NOTE = (
    " One row of panels per checkpoint (more than {max_lines} lines in "
    "one panel would hide each other), the checkpoint named on the left "
    "in its colour, the other checkpoints in light grey behind it; "
    "{shared}."
)


def save_figure(fig, stem: Path) -> list[Path]:
    """Write ``fig`` as ``stem.pdf`` (vector) and ``stem.png``, each atomically."""
    from repspace.outputs import atomic_path

    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for ext in ("pdf", "png"):
            path = stem.with_suffix(f".{ext}")
            with atomic_path(path) as tmp:  # unique: two studies may share a figures/ folder
                fig.savefig(tmp, format=ext, bbox_inches="tight")
            paths.append(path)
    finally:
        fig.clear()  # frees the artists now; the figure was never registered with pyplot
    return paths


def broken(y, layers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` for a per-layer line with a NaN gap between towers, so that no line joins
    the last vision layer to the first text layer."""
    y = np.asarray(y, dtype=np.float64)
    xs, ys = [], []
    for g, (_, idx) in enumerate(layer_groups(layers)):
        if g:
            xs.append(idx[0] - 0.5)
            ys.append(np.nan)
        xs.extend(idx)
        ys.extend(y[idx])
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def plot_with_control(ax, layers: list[str], main, control, style: dict, label: str) -> None:
    """One checkpoint's per-layer ``main`` series (its line style, filled markers, labelled)
    and its ``control`` beside it (dotted, hollow markers, unlabelled), in its colour and
    marker; :func:`control_key` explains the two looks in the legend."""
    look = {"color": style["color"], "marker": style["marker"], "ms": 4}
    ax.plot(*broken(main, layers), ls=style["ls"], lw=1.3, label=label, **look)
    ax.plot(*broken(control, layers), ls=":", lw=1.0, mfc="none", **look)


def control_key(main: str, control: str) -> tuple[list, list[str]]:
    """Legend handles and labels saying which look is the main series and which the
    control, for figures drawn with :func:`plot_with_control`."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color="0.35", marker="o", ls="-", ms=4),
        Line2D([], [], color="0.35", marker="o", ls=":", ms=4, mfc="none"),
    ]
    return handles, [main, control]


def layer_axis(
    ax,
    layers: list[str],
    fontsize: float | None = None,
    *,
    labels: bool | None = None,
    towers: bool = True,
) -> None:
    """Layer ticks (short names within each tower), a divider between towers and the tower
    names along the top edge.  ``labels=False``: ticks without their names or the axis
    label (a panel with another under it); True: names shown even where a shared x axis
    hid them; None: as the axes has them.  ``towers=False``: no tower names on top (a
    panel with another above it); the divider is drawn either way."""
    groups = layer_groups(layers)
    ticks = [""] * len(layers)
    for _, idx in groups:
        for i, short in zip(idx, short_layer_names([layers[i] for i in idx])):
            ticks[i] = short
    rotate = len(layers) > 4 or max((len(t) for t in ticks), default=0) > 10
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(
        ticks, rotation=45 if rotate else 0, ha="right" if rotate else "center", fontsize=fontsize
    )
    if labels is not None:
        ax.tick_params(axis="x", labelbottom=labels)
    ax.set_xlim(-0.5, len(layers) - 0.5)
    ax.set_xlabel("" if labels is False else "layer")
    if len(groups) > 1:
        for _, idx in groups[1:]:
            ax.axvline(idx[0] - 0.5, color="#555555", lw=0.8, ls="-", alpha=0.6)
        if towers:
            top = ax.secondary_xaxis("top")
            top.set_xticks([(idx[0] + idx[-1]) / 2 for _, idx in groups])
            top.set_xticklabels([str(name) for name, _ in groups], fontsize=8, style="italic")
            top.tick_params(length=0)
            top.spines["top"].set_visible(False)


def panel_width(points: int) -> float:
    """Width of a panel with ``points`` positions along x (layers, blocks)."""
    return max(3.0, 0.4 * points + 2.2)


def needs_log(values, ratio: float = LOG_RATIO) -> bool:
    """Whether positive ``values`` (any shape; NaN ignored) span more than ``ratio``: a
    linear axis would flatten the small ones.  Zero or negative values never get a log axis
    (they have no place on one)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    return bool(v.size > 1 and (v > 0).all() and v.max() / v.min() > ratio)


def log_label(label: str, log: bool) -> str:
    return f"{label} (log scale)" if log else label


def grid(
    nrows: int,
    ncols: int,
    panel_w: float,
    panel_h: float,
    *,
    legend: bool = True,
    sharex=True,
    sharey=False,
):
    """A constrained-layout figure of ``nrows × ncols`` panels at most :data:`MAX_WIDTH`
    wide (the panels narrowed to fit, room kept for a legend on the right) and at most
    :data:`MAX_ASPECT` times as wide as tall."""
    extra = LEGEND_WIDTH if legend else 0.0
    panel_w = min(panel_w, (MAX_WIDTH - extra) / ncols)
    width = panel_w * ncols + extra
    height = max(panel_h * nrows + 0.5, width / MAX_ASPECT)  # + 0.5: the suptitle
    fig, axes = subplots(
        nrows,
        ncols,
        figsize=(width, height),
        squeeze=False,
        sharex=sharex,
        sharey=sharey,
        layout="constrained",
    )
    return fig, axes


def figure_title(fig, text: str):
    """The figure's title, left-aligned: clear of the legend in the top right corner."""
    return fig.suptitle(text, x=0.01, ha="left")


def figure_legend(fig, handles=None, labels=None, **kw):
    """One legend for the whole figure, right of the panels (each label once)."""
    if handles is None:
        seen: dict[str, object] = {}
        for ax in fig.axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if not lab.startswith("_"):
                    seen.setdefault(lab, h)
        handles, labels = list(seen.values()), list(seen)
    if not handles:
        return None
    # the base first, the grey context lines last: the checkpoints in their own order between
    rank = {
        i: (0 if lab.endswith("(base)") else 2 if lab == "other checkpoints" else 1)
        for i, lab in enumerate(labels)
    }
    order = sorted(range(len(labels)), key=lambda i: rank[i])
    return fig.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        loc="outside right upper",
        frameon=False,
        **kw,
    )


def small_multiples(
    names: Sequence[str],
    columns: Sequence[str],
    draw: Callable[[object, str, str, str], None],
    *,
    panel_w: float,
    panel_h: float,
    shared_y: bool = True,
):
    """The highlight-one-checkpoint grid: ``draw(ax, column, name, mode)`` is called for every
    panel with ``mode`` "context" for each other checkpoint, then "highlight" for the
    panel's own.  One column key (``columns == [key]``): the checkpoints wrap into
    :data:`SMALL_COLS` columns; several: one row per checkpoint, one column per key.
    ``shared_y``: every panel on one y axis (one quantity); otherwise one per column.

    Returns ``(fig, panels)`` with ``panels`` ``[(ax, name, column)]`` (unused axes removed)."""
    if len(columns) == 1:
        ncols = min(SMALL_COLS, len(names))
        nrows = math.ceil(len(names) / ncols)
        cells = [(divmod(i, ncols), name, columns[0]) for i, name in enumerate(names)]
    else:  # a row per checkpoint: low panels, or nine checkpoints make a poster
        ncols, nrows = len(columns), len(names)
        panel_h = min(panel_h, 1.3)
        cells = [
            ((i, j), name, col) for i, name in enumerate(names) for j, col in enumerate(columns)
        ]
    fig, axes = grid(
        nrows,
        ncols,
        panel_w,
        panel_h,
        sharex=True,
        sharey=True if shared_y or len(columns) == 1 else "col",
    )
    panels = []
    for (r, c), name, col in cells:
        ax = axes[r][c]
        for other in names:
            if other != name:
                draw(ax, col, other, "context")
        draw(ax, col, name, "highlight")
        panels.append((ax, name, col))
    used = {id(ax) for ax, _, _ in panels}
    for ax in axes.ravel():
        if id(ax) not in used:
            fig.delaxes(ax)
    return fig, panels


def panel_position(fig, ax) -> tuple[bool, bool, bool]:
    """``(top row, bottom row, left column)`` of ``ax`` among the figure's panels (a panel
    with no panel under it counts as the bottom row: its x labels must show)."""
    spec = ax.get_subplotspec()
    gs = spec.get_gridspec()
    below = [
        a
        for a in fig.axes
        if a.get_subplotspec() is not None
        and a.get_subplotspec().colspan.start == spec.colspan.start
        and a.get_subplotspec().rowspan.start > spec.rowspan.start
    ]
    return (
        spec.rowspan.start == 0,
        not below or spec.rowspan.stop == gs.nrows,
        spec.colspan.start == 0,
    )
