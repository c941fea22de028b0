"""The compare report's 2-D embedding (one panel per tuned checkpoint over the base, so the
point clouds do not hide each other) and the checkpoint × layer heat map."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from repspace.report.figures_layout import (
    MAX_ASPECT,
    MAX_WIDTH,
    figure_legend,
    figure_title,
    grid,
    layer_axis,
    panel_position,
    save_figure,
)
from repspace.report.layer_names import layer_groups, layer_title
from repspace.report.result import CompareResult
from repspace.report.style import BASE_COLOR, BASE_MARKER, paper_style, styles_for, subplots

__all__ = ["embedding_panels", "plot_embedding", "plot_heatmap"]


def _points(result: CompareResult) -> dict[str, np.ndarray]:
    emb = result.embedding or {}
    return {
        n: np.asarray(p, dtype=np.float64).reshape(-1, 2)
        for n, p in (emb.get("points") or {}).items()
    }


def embedding_panels(result: CompareResult) -> list[str | None]:
    """The tuned checkpoints that get a panel ([None]: only the base was embedded)."""
    pts = _points(result)
    tuned = [n for n in pts if n != result.base.name]
    return tuned or [None]


def plot_embedding(result: CompareResult, stem: Path) -> list[Path]:
    """2-D embedding (UMAP, or PCA) of base and tuned features at one layer: one panel per
    tuned checkpoint with the base's points in grey behind it, every panel on the same axes
    (the embedding is fitted once, jointly)."""
    pts = _points(result)
    if not pts:
        return []
    emb = result.embedding
    base = result.base.name
    panels = embedding_panels(result)
    styles = styles_for(list(dict.fromkeys([*result.tuned_names, base, *pts])), base=base)
    method = str(emb.get("method", "")).upper()
    with paper_style():
        if len(panels) == 1:
            fig, axes = grid(1, 1, 4.4, 3.6)
        else:
            ncols = min(3, len(panels))
            fig, axes = grid(
                math.ceil(len(panels) / ncols), ncols, 2.35, 2.25, sharex=True, sharey=True
            )
        for ax, name in zip(axes.ravel(), panels):
            if base in pts:
                ax.scatter(
                    pts[base][:, 0],
                    pts[base][:, 1],
                    s=7,
                    alpha=0.45,
                    color=BASE_COLOR,
                    marker=BASE_MARKER,
                    linewidths=0,
                    label=f"{base} (base)",
                    zorder=1,
                )
            if name is not None:
                st = styles[name]
                ax.scatter(
                    pts[name][:, 0],
                    pts[name][:, 1],
                    s=9,
                    alpha=0.7,
                    color=st["color"],
                    marker=st["marker"],
                    linewidths=0,
                    label=name,
                    zorder=2,
                )
                if len(panels) > 1:
                    ax.set_title(name, loc="left", fontsize=9, color=st["color"])
            _, bottom, left = panel_position(fig, ax)
            ax.tick_params(labelbottom=bottom, labelleft=left)
            ax.set_xlabel(f"{method} 1" if bottom else "")
            ax.set_ylabel(f"{method} 2" if left else "")
        for ax in axes.ravel()[len(panels) :]:
            fig.delaxes(ax)
        figure_legend(fig, markerscale=1.6)
        layer = emb.get("layer")
        where = layer_title(result.layers, layer) if layer in result.layers else str(layer)
        figure_title(fig, f"Features at {where}: joint 2-D {method}")
        return save_figure(fig, stem)


def plot_heatmap(result: CompareResult, stem: Path, metric: str = "linear_cka") -> list[Path]:
    """Summary heat map: checkpoints × layers of ``metric``, the colour scale fitted to the
    values shown (with a colour bar), the values printed in the cells where they fit."""
    data = (
        np.vstack([result.series(n, metric) for n in result.tuned_names])
        if result.tuned_names
        else np.zeros((0, len(result.layers)))
    )
    if data.size == 0 or np.isnan(data).all():
        return []
    lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
    if hi - lo < 1e-6:
        lo, hi = lo - 0.005, hi + 0.005
    digits = 2 if hi - lo > 0.3 else (3 if hi - lo > 0.03 else 4)
    label = {"linear_cka": "linear CKA to the base"}.get(metric, metric.replace("_", " "))
    width = min(MAX_WIDTH, max(4.0, 0.6 * len(result.layers) + 3.0))
    cell = (width - 3.0) / max(1, len(result.layers))  # inches per layer column
    with paper_style():
        height = max(2.4, width / MAX_ASPECT, 0.3 * len(result.tuned_names) + 1.9)
        fig, ax = subplots(figsize=(width, height), layout="constrained")
        im = ax.imshow(
            np.ma.masked_invalid(data),
            aspect="auto",
            cmap="viridis",
            vmin=lo,
            vmax=hi,
            interpolation="nearest",
        )
        cbar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
        cbar.set_label(label)
        if cell >= 0.42 and data.shape[0] <= 20:  # "0.9876" at 7 pt needs ~0.4 inch
            mid = (lo + hi) / 2
            for (i, j), v in np.ndenumerate(data):
                if np.isfinite(v):
                    ax.text(
                        j,
                        i,
                        f"{v:.{digits}f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if v < mid else "black",
                    )
        for _, idx in layer_groups(result.layers)[1:]:
            ax.axvline(idx[0] - 0.5, color="white", lw=2)
        layer_axis(ax, result.layers)
        ax.set_yticks(range(len(result.tuned_names)))
        ax.set_yticklabels(result.tuned_names)
        ax.set_ylabel("checkpoint")
        ax.set_title(f"{label[0].upper() + label[1:]}, per checkpoint and layer")
        ax.grid(False)
        ax.spines[:].set_visible(False)
        return save_figure(fig, stem)
