"""Figures of the weight-space analyses: where an adapter acts (‖Δh‖/‖h‖ per block), ΔW's
rank and intruder dimensions beside the representation's rank, and merge fidelity.

Drawn from plain result dictionaries, so both `repspace compare`'s report and
`repspace weights` use them (report sits below compare: it never imports it).  Each figure
has a title; :func:`weight_caption` is its caption (report.md and report.html number it).
Layout rules as in :mod:`repspace.report.figures_layout`: log axes where values span orders
of magnitude (LoRA's ΔW rank ≈ 4 against full fine-tuning's ≈ 180), counts as bars,
small multiples past five checkpoints.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from repspace.report.figures_layout import (
    CONTEXT_COLOR,
    MAX_LINES,
    broken,
    control_key,
    figure_legend,
    figure_title,
    grid,
    layer_axis,
    log_label,
    needs_log,
    panel_position,
    panel_width,
    plot_with_control,
    save_figure,
    small_multiples,
)
from repspace.report.style import figure_handles, log_axis, paper_style, styles_for

__all__ = [
    "WEIGHT_TITLES",
    "figures_markdown",
    "plot_adapter_effect",
    "plot_merge_fidelity",
    "plot_weight_vs_representation",
    "weight_caption",
]

WEIGHT_TITLES = {
    "adapter_effect": "Where the adapter acts",
    "weight_space": "Weight space beside representation space",
    "merge_fidelity": "Merge fidelity: merged against unmerged",
}


def _series(per: dict[str, dict], blocks: list[str], key: str) -> np.ndarray:
    return np.array([(per.get(b) or {}).get(key, math.nan) for b in blocks], dtype=np.float64)


def _block_axes(fig, panels, blocks):
    for ax, _, _ in panels:
        top, bottom, _ = panel_position(fig, ax)
        layer_axis(ax, blocks, labels=bottom, towers=top)
        if bottom:
            ax.set_xlabel("block")


def plot_adapter_effect(blocks: dict[str, dict[str, dict]], stem: Path) -> list[Path]:
    """Per block: mean ‖Δh‖/‖h‖ of the adapted modules, with the interquartile band over
    samples (``blocks``: ``{checkpoint: {block: {"mean", "q25", "q75", ...}}}``)."""
    names = list(dict.fromkeys(b for per in blocks.values() for b in per))
    ckpts = [c for c in blocks if not np.isnan(_series(blocks[c], names, "mean")).all()]
    if not ckpts:
        return []
    styles = styles_for(ckpts)
    values = np.concatenate(
        [_series(blocks[c], names, k) for c in ckpts for k in ("q25", "q75", "mean")]
    )
    log = needs_log(values) or bool(np.nanmin(values) > 0)  # a ratio: log whenever it can be

    def draw(ax, _key, ckpt, mode):
        x, mean = broken(_series(blocks[ckpt], names, "mean"), names)
        if mode == "context":
            ax.plot(x, mean, color=CONTEXT_COLOR, lw=0.9, zorder=1, label="other checkpoints")
            return
        st = styles[ckpt]
        lo, hi = (broken(_series(blocks[ckpt], names, k), names)[1] for k in ("q25", "q75"))
        ax.fill_between(x, lo, hi, color=st["color"], alpha=0.18, lw=0, zorder=2)
        ax.plot(x, mean, **st, ms=4, lw=1.3, label=ckpt, zorder=3)

    with paper_style():
        if len(ckpts) > MAX_LINES:
            fig, panels = small_multiples(ckpts, ["effect"], draw, panel_w=2.45, panel_h=1.75)
        else:
            fig, axes = grid(1, 1, panel_width(len(names)), 3.0)
            panels = [(axes[0][0], None, "effect")]
            for c in ckpts:
                draw(axes[0][0], "effect", c, "line")
        ylabel = log_label("‖Δh‖ / ‖h‖ (adapter / frozen)", log)
        for ax, ckpt, _ in panels:
            if log:
                log_axis(ax, "y")
            if ckpt is not None:
                ax.set_title(ckpt, loc="left", fontsize=9, color=styles[ckpt]["color"])
            if ckpt is None:
                ax.set_ylabel(ylabel)
        if panels[0][1] is not None:  # small multiples: the y label once for the grid
            fig.supylabel(ylabel, fontsize=9)
        _block_axes(fig, panels, names)
        handles, labels = figure_handles(fig)
        figure_legend(
            fig,
            handles + [Patch(color="0.5", alpha=0.3, lw=0)],
            labels + ["interquartile range\nover probe samples"],
        )
        figure_title(fig, WEIGHT_TITLES["adapter_effect"])
        return save_figure(fig, stem)


def weight_space_is_log(results: dict[str, dict[str, dict]]) -> bool:
    """Whether ΔW's effective rank gets a log axis (ranks spanning a decade)."""
    blocks = list(dict.fromkeys(b for per in results.values() for b in per))
    return needs_log(
        np.concatenate([_series(per, blocks, "delta_effective_rank") for per in results.values()])
        if results
        else []
    )


def plot_weight_vs_representation(
    results: dict[str, dict[str, dict]], rep: dict[str, dict[str, float]], stem: Path
) -> list[Path]:
    """Per block, stacked panels: mean effective rank of ΔW (log axis when the checkpoints'
    ranks span a decade), intruder dimensions (bars: a count), and (with a compare report)
    the representation's effective-rank ratio tuned / base (``results``:
    ``{checkpoint: {block: weight-space metrics}}``, a WeightSpace's ``blocks``)."""
    blocks = list(dict.fromkeys(b for per in results.values() for b in per))
    ckpts = list(results)
    if not blocks or not ckpts:
        return []
    keys = ["rank", "intruders"] + (["rep"] if rep else [])
    log = weight_space_is_log(results)
    styles = styles_for(ckpts)
    labels = {
        "rank": log_label("effective rank of ΔW\n(block mean)", log),
        "intruders": "intruder dimensions\n(count, block total)",
        "rep": "representation erank\ntuned / base",
    }
    many = len(ckpts) > MAX_LINES

    def values(key, ckpt):
        if key == "rep":
            return np.array([rep.get(ckpt, {}).get(b, math.nan) for b in blocks], dtype=np.float64)
        return _series(
            results[ckpt],
            blocks,
            "delta_effective_rank" if key == "rank" else "intruder_dimensions",
        )

    def draw(ax, key, ckpt, mode):
        y = values(key, ckpt)
        st = styles[ckpt]
        if key == "intruders":  # integers: bars side by side, one per checkpoint
            if mode == "context":
                return
            k, i = (1, 0) if many else (len(ckpts), ckpts.index(ckpt))
            width = 0.8 / k
            x = np.arange(len(blocks)) + (i - (k - 1) / 2) * width
            ok = np.isfinite(y)
            ax.bar(
                x[ok],
                y[ok],
                width=width * 0.95,
                color=st["color"],
                edgecolor="black",
                lw=0.4,
                hatch=None if i % 2 == 0 else "//",
                label=ckpt,
                zorder=3,
            )
            return
        x, yb = broken(y, blocks)
        if mode == "context":
            ax.plot(x, yb, color=CONTEXT_COLOR, lw=0.9, zorder=1, label="other checkpoints")
        else:
            ax.plot(x, yb, **st, ms=4, lw=1.3, label=ckpt, zorder=3)

    with paper_style():
        if many:
            fig, panels = small_multiples(
                ckpts, keys, draw, panel_w=2.3, panel_h=1.6, shared_y=False
            )
        else:
            fig, axes = grid(len(keys), 1, panel_width(len(blocks)), 2.1, sharex=True)
            panels = [(axes[i][0], None, key) for i, key in enumerate(keys)]
            for ax, _, key in panels:
                for c in ckpts:
                    draw(ax, key, c, "line")
        for ax, ckpt, key in panels:
            top, _, left = panel_position(fig, ax)
            if key == "rank" and log:
                log_axis(ax, "y")
            if key == "intruders":
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
                ax.set_ylim(bottom=0)
                ax.grid(axis="x", visible=False)
                if not np.nansum([np.nansum(values("intruders", c)) for c in ckpts]):
                    ax.set_ylim(0, 1)
                    ax.text(
                        0.5,
                        0.5,
                        "no intruder dimensions",
                        transform=ax.transAxes,
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="0.4",
                    )
            if key == "rep":
                ax.axhline(1.0, color="0.6", lw=0.8, ls="--")
            if ckpt is None:
                ax.set_ylabel(labels[key], fontsize=8)
            else:
                if top:
                    ax.set_title(labels[key], loc="left", fontsize=8)
                ax.set_ylabel(ckpt if left else "", color=styles[ckpt]["color"], fontsize=9)
        _block_axes(fig, panels, blocks)
        handles, labels_ = figure_handles(fig)
        figure_legend(fig, handles, labels_)
        figure_title(fig, WEIGHT_TITLES["weight_space"])
        return save_figure(fig, stem)


def plot_merge_fidelity(results: dict[str, dict[str, dict]], stem) -> list:
    """Per layer, one panel per merge dtype (one shared log y axis): relative shift of the
    merged model (filled markers, the checkpoint's line) and of the rounded, unmerged control
    (hollow markers, dotted), each checkpoint in its method's colour and marker."""
    layers = list(
        dict.fromkeys(l for fid in results.values() for f in fid.values() for l in f["layers"])
    )
    dtypes = list(dict.fromkeys(d for fid in results.values() for d in fid))
    if not layers or not dtypes:
        return []
    styles = styles_for(list(results))
    with paper_style():
        fig, axes = grid(1, len(dtypes), panel_width(len(layers)), 3.0, sharey=True)
        for ax, dtype in zip(axes[0], dtypes):
            for ckpt, fid in results.items():
                f = fid.get(dtype)
                if f is None:
                    continue
                st = styles[ckpt]
                merged = _series(f["layers"], layers, "relative_shift_mean")
                cast = _series(f["layers"], layers, "cast_relative_shift_mean")
                # a bit-exact layer (shift 0) has no place on a log axis: left out, not faked
                plot_with_control(
                    ax,
                    layers,
                    np.where(merged > 0, merged, np.nan),
                    np.where(cast > 0, cast, np.nan),
                    st,
                    ckpt,
                )
            log_axis(ax, "y")
            layer_axis(ax, layers)
            ax.set_title(f"merged in {dtype}", loc="left")
        axes[0][0].set_ylabel("‖y_merged − y‖ / ‖y‖ (log scale)")
        handles, labels = figure_handles(fig)
        key, key_labels = control_key(
            "merged (filled)", "weights rounded only,\nnot merged (hollow)"
        )
        figure_legend(fig, handles + key, labels + key_labels)
        figure_title(fig, WEIGHT_TITLES["merge_fidelity"])
        return save_figure(fig, stem)


def weight_caption(
    name: str, *, log: bool = False, with_representation: bool = True, many: bool = False
) -> str:
    """Caption of a weight figure ("adapter_effect", "weight_space", "merge_fidelity"):
    what is drawn, the axes and what the band means."""
    multiples = (
        " One panel per checkpoint (more than five would hide each other), the "
        "others in light grey."
        if many
        else ""
    )
    if name == "adapter_effect":
        return (
            "Where the adapter acts: per block, the mean over its adapted modules of "
            "r = ‖Δh‖/‖h‖, the adapter branch's output over the frozen path's output for "
            "the same input (per probe sample, over its valid tokens); log y axis. Shaded "
            "band: the 25th to 75th percentile of r over probe samples (averaged over the "
            "block's modules), i.e. how much samples differ, not an uncertainty of the "
            "mean." + multiples
        )
    if name == "weight_space":
        return (
            "Weight space per block: the mean effective rank of ΔW over the block's changed "
            "linear maps"
            + (" (log y axis: the checkpoints' ranks span more than a factor of 10)" if log else "")
            + "; intruder dimensions, bars of the block's total count (top singular vectors "
            "of W_tuned whose best |cos| with every base singular vector is below the "
            "threshold; Shuttleworth et al., 2024)"
            + (
                "; and the representation's effective-rank ratio tuned / base at that block "
                "(1 = unchanged, dashed)"
                if with_representation
                else ""
            )
            + "."
            + multiples
        )
    if name == "merge_fidelity":
        return (
            "Merge fidelity, one panel per dtype on one shared log y axis: per layer, "
            "‖y_merged − y‖ / ‖y‖ of the adapter merged into the weights in that dtype "
            "(filled markers) and of the unmerged model with its weights merely rounded to "
            "it (hollow markers, dotted: the floor rounding alone sets); a bit-exact layer "
            "has no point."
        )
    return name


def figures_markdown(
    results: dict[str, dict[str, dict]],
    *,
    representation: bool = False,
    effects: bool = False,
    merges: bool = False,
) -> str:
    """The "Figures" section of ``repspace weights``' weights.md: each figure written beside
    it (``weight_vs_representation``, ``adapter_effect``, ``merge_fidelity``, those that
    were drawn) with its numbered caption (``results``: ``{checkpoint: blocks}``)."""
    drawn = (
        [
            (
                "weight_vs_representation",
                weight_caption(
                    "weight_space",
                    log=weight_space_is_log(results),
                    with_representation=representation,
                    many=len(results) > MAX_LINES,
                ),
            )
        ]
        if results
        else []
    )
    drawn += [("adapter_effect", weight_caption("adapter_effect"))] if effects else []
    drawn += [("merge_fidelity", weight_caption("merge_fidelity"))] if merges else []
    lines = ["", "## Figures", ""] if drawn else []
    for i, (stem, text) in enumerate(drawn, 1):
        caption = f"*Figure {i}.* {text} (vector version: `{stem}.pdf`)"
        lines += [f"![{stem}]({stem}.png)", "", caption, ""]
    return "\n".join(lines)
