"""Figures of the weight-space analyses: where an adapter acts (‖Δh‖/‖h‖ per block), ΔW's
rank and intruder dimensions beside the representation's rank, and merge fidelity.

Drawn from plain result dictionaries, so both `repspace compare`'s report and
`repspace weights` use them (report sits below compare: it never imports it).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from repspace.report.plots import save_figure, short_layer_names
from repspace.report.style import legend_outside, log_axis, paper_style, styles_for, subplots

__all__ = ["plot_adapter_effect", "plot_weight_vs_representation", "plot_merge_fidelity"]


def plot_adapter_effect(blocks: dict[str, dict[str, dict]], stem: Path) -> list[Path]:
    """Per block: mean ‖Δh‖/‖h‖ of the adapted modules, with the interquartile band
    (``blocks``: ``{checkpoint: {block: {"mean", "q25", "q75", ...}}}``)."""

    names = list(dict.fromkeys(b for per in blocks.values() for b in per))
    with paper_style():
        fig, ax = subplots(figsize=(4.8, 3.0))
        styles = styles_for(list(blocks))
        x = np.arange(len(names))
        for ckpt, per in blocks.items():
            get = lambda k: np.array([per.get(b, {}).get(k, math.nan) for b in names])  # noqa: E731
            ax.plot(x, get("mean"), **styles[ckpt], ms=4, label=ckpt)
            ax.fill_between(x, get("q25"), get("q75"), color=styles[ckpt]["color"], alpha=0.15, lw=0)
        log_axis(ax, "y")
        ax.set_xticks(x, short_layer_names(names), rotation=60, ha="right")
        ax.set_xlabel("block")
        ax.set_ylabel("adapter output / frozen output  (‖Δh‖ / ‖h‖)")
        fig.tight_layout()
        legend_outside(ax)
        return save_figure(fig, stem)


def plot_weight_vs_representation(results: dict[str, dict[str, dict]], rep: dict[str, dict[str, float]],
                                  stem: Path) -> list[Path]:
    """Per block: mean effective rank of ΔW, intruder dimensions, and (with a compare
    report) the representation's effective-rank ratio, one line per checkpoint
    (``results``: ``{checkpoint: {block: weight-space metrics}}``, a WeightSpace's ``blocks``)."""
    blocks = list(dict.fromkeys(b for per in results.values() for b in per))
    panels = 3 if rep else 2
    with paper_style():
        fig, axes = subplots(1, panels, figsize=(3.2 * panels, 3.0), sharex=True)
        styles = styles_for(list(results))  # the method's colour and marker, as in every figure
        x = np.arange(len(blocks))
        for ckpt, per in results.items():
            kw = dict(**styles[ckpt], ms=4, label=ckpt)
            axes[0].plot(x, [per.get(b, {}).get("delta_effective_rank", math.nan) for b in blocks], **kw)
            axes[1].plot(x, [per.get(b, {}).get("intruder_dimensions", math.nan) for b in blocks], **kw)
            if rep:
                axes[2].plot(x, [rep.get(ckpt, {}).get(b, math.nan) for b in blocks], **kw)
        axes[0].set_ylabel("mean effective rank of ΔW")
        axes[1].set_ylabel("intruder dimensions")
        axes[1].yaxis.set_major_locator(MaxNLocator(integer=True))  # a count
        if rep:
            axes[2].set_ylabel("representation erank (tuned / base)")
            axes[2].axhline(1.0, color="0.6", lw=0.8, ls="--")
        for ax in axes:
            ax.set_xticks(x, short_layer_names(blocks), rotation=60, ha="right")
            ax.set_xlabel("block")
        fig.tight_layout()
        legend_outside(fig)
        return save_figure(fig, stem)


def plot_merge_fidelity(results: dict[str, dict[str, dict]], stem) -> list:
    """Per layer, one panel per merge dtype: relative shift of the merged model (filled
    markers, the checkpoint's line) and of the rounded, unmerged control (hollow markers,
    dotted), each checkpoint in its method's colour and marker (:func:`styles_for`)."""
    from matplotlib.lines import Line2D

    from repspace.report.plots import broken, layer_axis

    layers = list(dict.fromkeys(l for fid in results.values() for f in fid.values() for l in f["layers"]))
    dtypes = list(dict.fromkeys(d for fid in results.values() for d in fid))
    styles = styles_for(list(results))
    width = max(3.4, 0.35 * len(layers) + 2.0)
    with paper_style():
        fig, axes = subplots(1, len(dtypes), figsize=(width * len(dtypes) + 1.8, 3.0),
                             sharey=True, squeeze=False)
        for ax, dtype in zip(axes[0], dtypes):
            for ckpt, fid in results.items():
                f = fid.get(dtype)
                if f is None:
                    continue
                st = styles[ckpt]
                get = lambda k: np.array([f["layers"].get(l, {}).get(k, math.nan) for l in layers])  # noqa: E731
                merged, cast = get("relative_shift_mean"), get("cast_relative_shift_mean")
                # a bit-exact layer (shift 0) has no place on a log axis: left out, not faked
                ax.plot(*broken(np.where(merged > 0, merged, np.nan), layers), color=st["color"],
                        marker=st["marker"], ls=st["ls"], ms=4, lw=1.3, label=ckpt)
                ax.plot(*broken(np.where(cast > 0, cast, np.nan), layers), color=st["color"],
                        marker=st["marker"], ls=":", ms=4, lw=1.0, mfc="none")
            log_axis(ax, "y")
            layer_axis(ax, layers)
            ax.set_title(f"merged in {dtype}", loc="left")
        axes[0][0].set_ylabel("‖y_merged − y‖ / ‖y‖")
        handles, labels = [], []
        for ax in axes[0]:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        key = [Line2D([], [], color="0.35", marker="o", ls="-", ms=4),
               Line2D([], [], color="0.35", marker="o", ls=":", ms=4, mfc="none")]
        fig.tight_layout()
        legend_outside(fig, handles + key, labels + ["merged (filled)", "weights rounded only,\nnot merged (hollow)"])
        return save_figure(fig, stem)
