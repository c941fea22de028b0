"""Trajectory figures, in the compare report's style (:mod:`repspace.report.style`).

- :func:`plot_trajectory`: each metric against the training step, one line per layer,
  coloured by depth on a sequential colour-blind-safe map (viridis, dark = first layer,
  light = last) with a colour bar naming the layers; one panel per metric.
- :func:`plot_heatmap`: one metric as a layer × step heat map (layers top to bottom in
  depth order).
- :func:`plot_runs`: several runs (e.g. LoRA vs full fine-tuning) side by side, one panel per
  layer, each run in its method's colour and marker.
- :func:`plot_highlighted`: many runs' summaries (e.g. a study's methods, mean ± 95 % band
  over seeds) as small multiples, one panel per run with the others in grey behind it, so
  nine methods stay readable.

Each is saved as a vector PDF and a PNG, atomically (:func:`repspace.report.plots.save_figure`),
and returns the written paths.  No pyplot: figures are bare matplotlib ``Figure`` objects.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from repspace.report.figures_layout import MAX_ASPECT, MAX_WIDTH, figure_legend, figure_title, grid
from repspace.report.layer_names import short_layer_names
from repspace.report.plots import save_figure
from repspace.report.style import (
    BASE_COLOR,
    paper_style,
    styles_for,
    subplots,
)
from repspace.track.trajectory import Trajectory

__all__ = [
    "plot_trajectory",
    "plot_heatmap",
    "plot_runs",
    "plot_highlighted",
    "metric_label",
    "default_panels",
    "CMAP",
]

CMAP = "viridis"  # sequential, perceptually uniform, readable with any colour-vision deficiency

_LABELS = {
    "linear_cka": "linear CKA to the base",
    "linear_cka_debiased": "debiased linear CKA to the base",
    "procrustes_distance": "Procrustes distance",
    "frechet_distance": "Fréchet distance",
    "mmd_linear": "MMD² (linear kernel)",
    "subspace_overlap": "subspace overlap",
    "cosine_similarity_mean": "cosine similarity to the base (mean)",
    "cosine_similarity_q50": "cosine similarity to the base (median)",
    "relative_shift_mean": "relative shift ‖y − x‖ / ‖x‖ (mean)",
    "relative_shift_q50": "relative shift ‖y − x‖ / ‖x‖ (median)",
}
# where an unmoved model sits: a dashed reference line
_REFERENCE = {
    "linear_cka": 1.0,
    "linear_cka_debiased": 1.0,
    "subspace_overlap": 1.0,
    "cosine_similarity": 1.0,
    "relative_shift": 0.0,
    "procrustes_distance": 0.0,
    "frechet_distance": 0.0,
    "mmd_linear": 0.0,
}


def metric_label(metric: str) -> str:
    if metric in _LABELS:
        return _LABELS[metric]
    if metric.endswith("_ratio"):
        return f"{metric[: -len('_ratio')].replace('_', ' ')}, tuned / base"
    for side in ("base", "tuned"):
        if metric.endswith(f"_{side}"):
            return f"{metric[: -len(side) - 1].replace('_', ' ')} ({side})"
    return metric.replace("_", " ")


def _reference(metric: str) -> float | None:
    if metric.endswith("_ratio"):
        return 1.0
    return next((v for k, v in _REFERENCE.items() if metric.startswith(k)), None)


def default_panels(traj: Trajectory) -> list[str]:
    """The metrics worth a panel: a rank's ratio replaces its base and tuned values (the
    base's is constant over the steps)."""
    ratios = {m[: -len("_ratio")] for m in traj.metrics if m.endswith("_ratio")}
    return [m for m in traj.metrics if not any(m in (f"{r}_base", f"{r}_tuned") for r in ratios)]


def _depth_colors(n: int) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps[CMAP](np.linspace(0.0, 0.85, n) if n > 1 else [0.0])


def _layer_colorbar(fig, axes, layers: list[str]) -> None:
    """A discrete colour bar: one swatch per layer, labelled with its short name."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, ListedColormap

    n = len(layers)
    cmap = ListedColormap(_depth_colors(n))
    mappable = ScalarMappable(norm=BoundaryNorm(np.arange(n + 1) - 0.5, n), cmap=cmap)
    bar = fig.colorbar(mappable, ax=axes, fraction=0.025, aspect=35, pad=0.02)
    every = max(1, math.ceil(n / 12))
    ticks = list(range(0, n, every))
    bar.set_ticks(ticks)
    bar.set_ticklabels([short_layer_names(layers)[i] for i in ticks])
    bar.ax.invert_yaxis()  # first layer on top, as in the heat map
    bar.set_label("layer (depth)")
    bar.ax.tick_params(length=0)


def _step_axis(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("training step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))


def plot_trajectory(traj: Trajectory, stem: Path, metrics: list[str] | None = None) -> list[Path]:
    """Each metric against the step, one line per layer coloured by depth."""
    metrics = [
        m
        for m in (metrics or default_panels(traj))
        if m in traj.metrics and not np.isnan(traj.matrix(m)).all()
    ]
    if not metrics or not traj.steps:
        return []
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    colors = _depth_colors(len(traj.layers))
    marker = "o" if len(traj.steps) <= 25 else None
    with paper_style():
        fig, axes = grid(nrows, ncols, 3.3, 2.7, sharex=False)  # the legend's room: the colour bar
        for ax, metric in zip(axes.flat, metrics):
            ref = _reference(metric)
            if ref is not None:
                ax.axhline(ref, color=BASE_COLOR, lw=0.9, ls="--", zorder=1)
            for color, layer in zip(colors, traj.layers):
                steps, vals = traj.series(metric, layer)
                ax.plot(steps, vals, color=color, lw=1.3, marker=marker, ms=2.5, zorder=2)
            ax.set_title(metric_label(metric), loc="left", fontsize=9)
            _step_axis(ax)
        for ax in axes.flat[len(metrics) :]:
            ax.set_visible(False)
        _layer_colorbar(fig, axes, traj.layers)
        fig.suptitle("Movement away from the base during training (dashed: the base itself)")
        return save_figure(fig, stem)


def plot_heatmap(traj: Trajectory, stem: Path, metric: str = "linear_cka") -> list[Path]:
    """``metric`` per layer (rows, depth order) and measured step (columns)."""
    if metric not in traj.metrics or not traj.steps:
        return []
    data = traj.matrix(metric)
    if np.isnan(data).all():
        return []
    lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
    if hi - lo < 1e-6:
        lo, hi = lo - 0.005, hi + 0.005
    steps, layers = traj.steps, traj.layers
    # room for the layer names beside the cells (long names on few steps collapsed the axes)
    names = max((len(n) for n in short_layer_names(layers)), default=0)
    with paper_style():
        width = min(MAX_WIDTH, max(4.2, 0.28 * len(steps) + 2.8) + 0.07 * names)
        fig, ax = subplots(
            figsize=(width, max(2.2, 0.3 * len(layers) + 1.3, width / MAX_ASPECT)),
            layout="constrained",
        )
        im = ax.imshow(
            np.ma.masked_invalid(data),
            aspect="auto",
            cmap=CMAP,
            vmin=lo,
            vmax=hi,
            interpolation="nearest",
        )
        bar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
        bar.set_label(metric_label(metric))
        bar.ax.yaxis.get_major_formatter().set_useOffset(False)  # 0.99995, not 1e-5 + 0.9999
        every = max(1, math.ceil(len(steps) / 10))
        ax.set_xticks(range(0, len(steps), every))
        ax.set_xticklabels([str(s) for s in steps[::every]])
        ax.set_xlabel("training step")
        ax.set_yticks(range(len(layers)))
        ax.set_yticklabels(short_layer_names(layers))
        ax.set_ylabel("layer")
        ax.set_title(
            f"{metric_label(metric)[0].upper()}{metric_label(metric)[1:]}, per layer and step",
            loc="left",
        )
        ax.grid(False)
        ax.spines[:].set_visible(False)
        return save_figure(fig, stem)


def _spread(layers: list[str], k: int) -> list[str]:
    """At most ``k`` layers, evenly spaced, first and last included."""
    if len(layers) <= k:
        return list(layers)
    idx = sorted({round(i * (len(layers) - 1) / (k - 1)) for i in range(k)})
    return [layers[i] for i in idx]


def plot_runs(
    runs: dict[str, Trajectory],
    stem: Path,
    metric: str = "linear_cka",
    layers: list[str] | None = None,
    max_panels: int = 6,
) -> list[Path]:
    """Several runs' ``metric`` against the step, one panel per layer (at most ``max_panels``
    evenly spaced layers unless ``layers`` names them); each run in its method's look."""
    runs = {name: t for name, t in runs.items() if metric in t.metrics and t.steps}
    if not runs:
        return []
    common = [
        layer
        for layer in next(iter(runs.values())).layers
        if all(layer in t.layers for t in runs.values())
    ]
    shown = [layer for layer in (layers or _spread(common, max_panels)) if layer in common]
    if not shown:
        return []
    styles = styles_for(list(runs))
    ncols = min(3, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    ref = _reference(metric)
    short = dict(zip(common, short_layer_names(common)))
    with paper_style():
        fig, axes = grid(nrows, ncols, 3.1, 2.5, sharex=False, sharey=True)
        for ax, layer in zip(axes.flat, shown):
            if ref is not None:
                ax.axhline(ref, color=BASE_COLOR, lw=0.9, ls="--", zorder=1)
            for name, traj in runs.items():
                steps, vals = traj.series(metric, layer)
                st = styles[name]
                ax.plot(
                    steps,
                    vals,
                    color=st["color"],
                    ls=st["ls"],
                    marker=st["marker"],
                    ms=3,
                    lw=1.3,
                    label=name,
                    markevery=max(1, len(steps) // 12),
                )
            ax.set_title(short[layer], loc="left", fontsize=9)
            _step_axis(ax)
        for ax in axes.flat[len(shown) :]:
            ax.set_visible(False)
        for row in axes:
            row[0].set_ylabel(metric_label(metric))
        figure_legend(fig)
        figure_title(
            fig,
            f"{metric_label(metric)[0].upper()}{metric_label(metric)[1:]} during "
            "training, per layer",
        )
        return save_figure(fig, stem)


def plot_highlighted(
    panels: list[dict],
    stem: Path,
    ylabel: str,
    title: str,
    reference: float | None = None,
    max_cols: int = 3,
) -> list[Path]:
    """Small multiples, one panel per entry of ``panels``, shared axes.

    Each entry: ``label`` (the panel title), ``method`` (its colour and marker), ``context``
    (panels of the same context are drawn in grey behind each other, e.g. a task's methods),
    ``steps``, ``mean``, and ``low`` / ``high`` (a band, e.g. a 95 % interval over seeds; NaN:
    no band).  ``reference``: a dashed line where an unmoved model sits."""
    panels = [p for p in panels if len(p["steps"]) and np.isfinite(p["mean"]).any()]
    if not panels:
        return []
    styles = styles_for(list(dict.fromkeys(p["method"] for p in panels)))
    ncols = min(max_cols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    with paper_style():
        fig, axes = grid(nrows, ncols, 2.6, 2.2, legend=False, sharex=True, sharey=True)
        for ax, p in zip(axes.flat, panels):
            if reference is not None:
                ax.axhline(reference, color=BASE_COLOR, lw=0.9, ls="--", zorder=1)
            for other in panels:  # the context, behind
                if other is not p and other["context"] == p["context"]:
                    ax.plot(other["steps"], other["mean"], color="#C8C8C8", lw=0.9, zorder=2)
            st = styles[p["method"]]
            band = np.isfinite(p["low"]) & np.isfinite(p["high"])
            if band.any():
                ax.fill_between(
                    p["steps"],
                    np.where(band, p["low"], np.nan),
                    np.where(band, p["high"], np.nan),
                    color=st["color"],
                    alpha=0.2,
                    lw=0,
                    zorder=3,
                )
            ax.plot(
                p["steps"],
                p["mean"],
                color=st["color"],
                ls=st["ls"],
                marker=st["marker"],
                ms=3,
                lw=1.5,
                zorder=4,
                markevery=max(1, len(p["steps"]) // 12),
            )
            ax.set_title(p["label"], loc="left", fontsize=9)
        for ax in axes.flat[len(panels) :]:
            ax.set_visible(False)
        for c in range(ncols):  # the step axis under the lowest panel of each column
            ax = axes[max(r for r in range(nrows) if r * ncols + c < len(panels)), c]
            _step_axis(ax)
            ax.xaxis.set_tick_params(labelbottom=True)
        for row in axes:
            row[0].set_ylabel(ylabel)
        fig.suptitle(title)
        return save_figure(fig, stem)
