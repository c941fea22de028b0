"""The compare report's "Analyses" section: the analyses that ran (issue 19), each with a short
caption, a compact table and (where one helps) a figure.

Every analysis is an entry of :mod:`repspace.report.analysis_registry`; this module renders
the registry's tables and figures and declares the report side of the built-in ones (the
permutation null, segments, adapter effect, weight space, merge fidelity, layer matching),
so that a saved result renders without :mod:`repspace.compare`, which declares how they
run (:mod:`repspace.compare.analyses`).  Kept apart from :mod:`repspace.report.writer` /
:mod:`repspace.report.plots` (the headline figures): the writer calls
:func:`analysis_plots`, :func:`markdown_section`, :func:`html_section` and
:func:`base_capture_text`; figure names start with ``analysis_`` and their captions come
from :func:`analysis_caption`.  Input: ``result.analyses``, the ``linear_cka_null_*``
metrics and ``result.settings["base_capture"]``.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np

from repspace.report.analysis_registry import Figure, Table, analyses, declare_analysis
from repspace.report.plots import register_captioner
from repspace.report.result import CompareResult

__all__ = [
    "analysis_caption",
    "analysis_plots",
    "base_capture_text",
    "html_section",
    "markdown_section",
]


def _f(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    whole = isinstance(v, float) and v.is_integer() and abs(v) < 1e6
    if isinstance(v, (int, np.integer)) or whole:
        return str(int(v))
    return f"{v:.{digits}g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.{digits + 1}f}"


def _of(result: CompareResult, key: str) -> dict:
    """``result.analyses[key]``, or {} when that analysis did not run."""
    return (result.analyses or {}).get(key) or {}


def base_capture_text(settings: dict) -> str | None:
    """The report header's "base capture" line (None when the setting is absent)."""
    bc = (settings or {}).get("base_capture")
    if not isinstance(bc, dict):
        return None
    if bc.get("mode") == "adapter_disabled":
        return (
            "one model: the base was run as the adapter's model with the adapter disabled "
            "(peft disable_adapter(); identical to loading it separately)"
        )
    return f"two models: the base was loaded separately ({bc.get('reason', 'reason not recorded')})"


# -- tables ------------------------------------------------------------------------------------
def _null_rows(result: CompareResult) -> list[list[str]]:
    rows = []
    for name in result.tuned_names:
        for layer in result.layers:
            m = result.metrics.get(name, {}).get(layer, {})
            if "linear_cka_null_p" in m:
                res = m.get("linear_cka_null_resolution")
                p = m["linear_cka_null_p"]
                floor = res is not None and p <= res * (1 + 1e-9)
                rows.append(
                    [
                        name,
                        layer,
                        _f(m.get("linear_cka")),
                        f"≤ {_f(p)}" if floor else _f(p),  # at the floor: not smaller
                        _f(m.get("linear_cka_null_z")),
                    ]
                )
    return rows


def _null_tables(result: CompareResult) -> list[Table]:
    rows = _null_rows(result)
    if not rows:
        return []
    return [
        Table(
            "Calibrated similarity: permutation null of linear CKA",
            "The tuned rows of the paired sample are shuffled (B permutations, the pairing "
            "destroyed) and linear CKA recomputed: p = (1 + #{CKA_perm ≥ CKA}) / (B + 1), "
            "z = (CKA − mean_null) / sd_null. A small p says the two representations share "
            "sample-specific structure; it does not say they are unchanged (CKA itself "
            "does).",
            ["checkpoint", "layer", "linear CKA", "p", "z"],
            rows,
            [
                (
                    "p ≥ 1/(B + 1) for B permutations of the row sample: '≤' marks a p-value "
                    "at that floor (every permutation scored lower); z says by how much"
                )
            ],
        )
    ]


def _segment_tables(result: CompareResult) -> list[Table]:
    rows, vrows = [], []
    for name, per in _of(result, "segments").items():
        for layer, parts in per.items():
            for s, m in parts.items():
                if s == "virtual":
                    vrows.append(
                        [
                            name,
                            layer,
                            _f(m.get("virtual_tokens")),
                            _f(m.get("virtual_effective_rank")),
                            _f(m.get("virtual_norm_ratio")),
                            _f(m.get("virtual_sample_share")),
                        ]
                    )
                else:
                    rows.append(
                        [
                            name,
                            layer,
                            s,
                            _f(m.get("n")),
                            _f(m.get("linear_cka")),
                            _f(m.get("effective_rank_base")),
                            _f(m.get("effective_rank_tuned")),
                            _f(m.get("relative_shift_mean")),
                        ]
                    )
    out = []
    if rows:
        out.append(
            Table(
                "Per segment: image and text tokens",
                "Metrics over each token segment separately, from the same capture pass: rows are "
                "per-sample means over the segment's tokens (image: vision-tower tokens and "
                "image-placeholder positions; text: the other valid tokens), n samples that have "
                "the segment.",
                [
                    "checkpoint",
                    "layer",
                    "segment",
                    "n",
                    "linear CKA",
                    "erank base",
                    "erank tuned",
                    "‖Δh‖/‖h‖ mean",
                ],
                rows,
            )
        )
    if vrows:
        out.append(
            Table(
                "Per segment: the tuned side's virtual tokens",
                "The positions a prompt-learning adapter prepends exist on the tuned side only: "
                "their effective rank (directions the prompt spans), their mean norm over the text "
                "tokens' (does the prompt dominate?), and the share of their variance that is "
                "between samples at a fixed position (0: input-independent).",
                [
                    "checkpoint",
                    "layer",
                    "tokens",
                    "erank",
                    "norm / text norm",
                    "between-sample share",
                ],
                vrows,
            )
        )
    return out


def _noted(per_checkpoint: dict) -> tuple[list[tuple[str, dict]], list[str]]:
    """``(checkpoints with results, "name: note" lines of those with only a note)``: an
    analysis that could not run on a checkpoint records why instead of its numbers."""
    notes = [f"{name}: {r['note']}" for name, r in per_checkpoint.items() if "note" in r]
    return [(name, r) for name, r in per_checkpoint.items() if "note" not in r], notes


def _adapter_effect_tables(result: CompareResult) -> list[Table]:
    eff = _of(result, "adapter_effect")
    if not eff:
        return []
    (done, notes), rows = _noted(eff), []
    for name, r in done:
        for block, m in r.get("blocks", {}).items():
            rows.append([name, block, _f(m.get("mean")), _f(m.get("q25")), _f(m.get("q75"))])
    return [
        Table(
            "Where the adapter acts: ‖Δh‖/‖h‖ per block",
            "Per adapted module and sample, r = ‖Δh‖/‖h‖: the adapter branch's output "
            "against the frozen path's, over valid tokens; averaged over the block's "
            "modules (mean and interquartile range over samples).",
            ["checkpoint", "block", "mean", "q25", "q75"],
            rows,
            notes,
        )
    ]


def _weight_space_tables(result: CompareResult) -> list[Table]:
    ws = _of(result, "weight_space")
    if not ws:
        return []
    rows, notes = [], []
    for name, r in ws.items():
        for block, m in r.get("blocks", {}).items():
            rows.append(
                [
                    name,
                    block,
                    _f(m.get("matrices")),
                    _f(m.get("relative_delta")),
                    _f(m.get("delta_effective_rank")),
                    _f(m.get("intruder_dimensions")),
                ]
            )
        notes.append(
            f"{name}: {len(r.get('matrices', {}))} changed linear maps, "
            f"{r.get('unchanged', 0)} unchanged, {len(r.get('skipped', {}))} not "
            f"linear; {r.get('intruder_dimensions', 0)} intruder dimensions in all "
            f"(top {r.get('top_k')}, |cos| < {r.get('threshold')})"
        )
    return [
        Table(
            "Weight space: ΔW per block",
            "ΔW of every changed linear map (from the adapter, or W_tuned − W_base): its "
            "size relative to W, its effective rank, and intruder dimensions "
            "(Shuttleworth et al., 2024: top singular vectors of W_tuned with low cosine "
            "similarity to every base singular vector).",
            [
                "checkpoint",
                "block",
                "matrices",
                "‖ΔW‖/‖W‖ mean",
                "erank ΔW mean",
                "intruder dimensions",
            ],
            rows,
            notes,
        )
    ]


def _merge_tables(result: CompareResult) -> list[Table]:
    mf = _of(result, "merge_fidelity")
    if not mf:
        return []
    (done, notes), rows = _noted(mf), []
    for name, per in done:
        for dtype, f in per.items():
            s = f.get("summary", {})
            rows.append(
                [
                    name,
                    dtype,
                    _f(s.get("min_linear_cka"), 9),
                    _f(s.get("max_relative_shift")),
                    _f(s.get("median_merge_error")),
                    _f(s.get("median_update_error")),
                    _f(s.get("mean_absorbed_fraction")),
                ]
            )
    return [
        Table(
            "Merge fidelity",
            "The adapter merged into the weights in each dtype, run in float32, against "
            "the unmerged float32 model: representation drift per layer and the error of "
            "the merged matrices relative to ΔW.",
            [
                "checkpoint",
                "dtype",
                "min CKA merged vs unmerged",
                "max ‖Δy‖/‖y‖",
                "median ‖W_m − W‖/‖ΔW‖",
                "median update lost",
                "ΔW entries rounded away",
            ],
            rows,
            notes,
        )
    ]


def _layer_matching_tables(result: CompareResult) -> list[Table]:
    lm = _of(result, "layer_matching")
    if not lm:
        return []
    rows, notes = [], []
    for name, m in lm.items():
        for p in m.get("pairs", []):
            rows.append([name, p["tuned"], p["base"], _f(p["cka"])])
        if m.get("unmatched_base"):
            notes.append(
                f"{name}: base layers matched to no tuned layer: {', '.join(m['unmatched_base'])}"
            )
        if m.get("identity"):
            notes.append(
                f"{name}: every tuned block matched the base block of the same index "
                "(no depth change detected)"
            )
    return [
        Table(
            "Layer matching by cross-layer CKA",
            "Each tuned block matched to a base block by the cross-layer linear CKA matrix "
            "(monotone assignment maximising the total CKA), for tuned models of another "
            "depth (block expansion, layer replication).",
            ["checkpoint", "tuned layer", "matched base layer", "linear CKA"],
            rows,
            notes,
        )
    ]


def _tables(result: CompareResult) -> list[Table]:
    """The tables of every registered analysis present, in report order."""
    return [t for a in analyses() if a.tables is not None for t in a.tables(result)]


def markdown_section(result: CompareResult, plots: dict[str, list[str]] | None = None) -> list[str]:
    """Markdown lines of the Analyses section (empty when none ran)."""
    from repspace.report.tables import md_text

    tables = _tables(result)
    if not tables:
        return []
    lines = ["", "## Analyses", ""]
    for t in tables:
        lines += [f"### {md_text(t.title)}", "", f"*{md_text(t.description)}*", ""]
        if t.rows:
            lines += [
                "| " + " | ".join(md_text(h) for h in t.head) + " |",
                "|" + "---|" * len(t.head),
            ]
            lines += ["| " + " | ".join(md_text(c) for c in r) + " |" for r in t.rows]
        lines += [f"- {md_text(n)}" for n in t.notes]
        lines.append("")
    return lines


def html_section(result: CompareResult) -> str:
    """HTML of the Analyses section ("" when none ran)."""
    tables = _tables(result)
    if not tables:
        return ""
    h = html.escape
    parts = ["<h2>Analyses</h2>"]
    for t in tables:
        parts.append(f"<h3>{h(t.title)}</h3><p><small>{h(t.description)}</small></p>")
        if t.rows:
            parts.append(
                '<details open><summary>Table</summary><div class="scroll"><table '
                'class="full"><thead><tr>'
                + "".join(f"<th>{h(c)}</th>" for c in t.head)
                + "</tr></thead><tbody>"
                + "".join(
                    "<tr>" + "".join(f"<td>{h(str(c))}</td>" for c in r) + "</tr>" for r in t.rows
                )
                + "</tbody></table></div></details>"
            )
        if t.notes:
            parts.append("<ul>" + "".join(f"<li>{h(n)}</li>" for n in t.notes) + "</ul>")
    return "".join(parts)


# -- figures -----------------------------------------------------------------------------------
def _segment_series(result: CompareResult) -> dict[str, dict[str, np.ndarray]]:
    """``{checkpoint: {segment: per-layer linear CKA}}`` of the segments with a value."""
    series: dict[str, dict[str, np.ndarray]] = {}
    for name, per in _of(result, "segments").items():
        for s in ("text", "image", "query"):
            y = np.array(
                [per.get(l, {}).get(s, {}).get("linear_cka", math.nan) for l in result.layers],
                dtype=np.float64,
            )
            if not np.isnan(y).all():
                series.setdefault(name, {})[s] = y
    return series


def _plot_segments(result: CompareResult, stem: Path) -> list[Path]:
    from repspace.report.figures_layout import (
        MAX_LINES,
        broken,
        figure_legend,
        figure_title,
        grid,
        layer_axis,
        panel_position,
        panel_width,
        save_figure,
    )
    from repspace.report.style import paper_style, styles_for

    series = _segment_series(result)
    if not series or all(set(v) == {"text"} for v in series.values()):
        return []  # text only: the figure would repeat the CKA figure
    lines = sum(len(v) for v in series.values())
    # more than MAX_LINES lines: one panel per checkpoint (its segments), one y axis
    groups = [list(series)] if lines <= MAX_LINES else [[n] for n in series]
    styles = styles_for([f"{n}: {s}" for n, per in series.items() for s in per])
    with paper_style():
        ncols = min(3, len(groups))
        fig, axes = grid(
            math.ceil(len(groups) / ncols),
            ncols,
            panel_width(len(result.layers)) if ncols == 1 else 2.45,
            2.8,
            sharex=True,
            sharey=True,
        )
        for ax, group in zip(axes.ravel(), groups):
            for name in group:
                for s, y in series[name].items():  # no line across a tower divider
                    label = f"{name}: {s}"
                    ax.plot(*broken(y, result.layers), **styles[label], ms=4, label=label)
            ax.axhline(1.0, color="0.6", lw=0.8, ls="--")
            top, bottom, left = panel_position(fig, ax)
            layer_axis(ax, result.layers, labels=bottom, towers=top)
            ax.set_ylabel("linear CKA to the base" if left else "")
            if len(groups) > 1:
                ax.set_title(group[0], loc="left", fontsize=9)
        for ax in axes.ravel()[len(groups) :]:
            fig.delaxes(ax)
        figure_legend(fig)
        figure_title(fig, "Similarity to the base per token segment")
        return save_figure(fig, stem)


def _plot_adapter_effect(result: CompareResult, stem: Path) -> list[Path]:
    from repspace.report.weight_figures import plot_adapter_effect

    blocks = {n: r["blocks"] for n, r in _of(result, "adapter_effect").items() if r.get("blocks")}
    return plot_adapter_effect(blocks, stem) if blocks else []


def _plot_weight_space(result: CompareResult, stem: Path) -> list[Path]:
    from repspace.report.weight_figures import plot_weight_vs_representation

    ws = {n: r["blocks"] for n, r in _of(result, "weight_space").items() if r.get("blocks")}
    if not ws:
        return []
    rep = {}  # the representation's effective-rank ratio at the blocks the comparison captured
    for name in ws:
        for block in result.layers:
            m = result.metrics.get(name, {}).get(block, {})
            eb, et = m.get("effective_rank_base"), m.get("effective_rank_tuned")
            if eb and et is not None and math.isfinite(eb) and math.isfinite(et):
                rep.setdefault(name, {})[block] = et / eb
    return plot_weight_vs_representation(ws, rep, stem)


def _plot_merge(result: CompareResult, stem: Path) -> list[Path]:
    from repspace.report.weight_figures import plot_merge_fidelity

    merges = {n: per for n, per in _of(result, "merge_fidelity").items() if "note" not in per}
    return plot_merge_fidelity(merges, stem) if merges else []


def layer_matching_scale(result: CompareResult) -> tuple[float, float] | None:
    """The one colour scale (low, high) of every layer-matching panel: the range of all the
    CKA values shown, so one colour means one CKA in every panel."""
    mats = [
        np.asarray(m["matrix"], dtype=np.float64)
        for m in _of(result, "layer_matching").values()
        if m.get("matrix")
    ]
    vals = np.concatenate([m.ravel() for m in mats]) if mats else np.zeros(0)
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return None
    lo, hi = float(vals.min()), float(vals.max())
    return (lo, hi) if hi > lo else (lo - 0.005, hi + 0.005)


def _plot_layer_matching(result: CompareResult, stem: Path) -> list[Path]:
    from repspace.report.figures_layout import figure_title, grid, save_figure
    from repspace.report.plots import short_layer_names
    from repspace.report.style import paper_style

    lm = {n: m for n, m in _of(result, "layer_matching").items() if m.get("matrix")}
    scale = layer_matching_scale(result)
    if not lm or scale is None:
        return []
    with paper_style():
        ncols = min(3, len(lm))
        fig, axes = grid(
            math.ceil(len(lm) / ncols), ncols, 3.0, 3.2, legend=False, sharex=False, sharey=False
        )
        for ax, (name, m) in zip(axes.ravel(), lm.items()):
            mat = np.asarray(m["matrix"], dtype=np.float64)  # (base, tuned)
            im = ax.imshow(
                mat, origin="lower", aspect="auto", cmap="viridis", vmin=scale[0], vmax=scale[1]
            )
            base_idx = {b: i for i, b in enumerate(m["base_layers"])}
            tuned_idx = {t: j for j, t in enumerate(m["tuned_layers"])}
            ax.scatter(
                [tuned_idx[p["tuned"]] for p in m["pairs"]],
                [base_idx[p["base"]] for p in m["pairs"]],
                marker="o",
                s=14,
                facecolors="none",
                edgecolors="white",
                lw=1.0,
                label="matched",
            )
            ax.set_xticks(
                range(len(m["tuned_layers"])),
                short_layer_names(m["tuned_layers"]),
                rotation=60,
                ha="right",
                fontsize=6,
            )
            ax.set_yticks(
                range(len(m["base_layers"])), short_layer_names(m["base_layers"]), fontsize=6
            )
            ax.set_xlabel(f"{name} layer")
            ax.set_ylabel(f"base {result.base.name} layer")
            ax.set_title(name, loc="left", fontsize=9)
            ax.grid(False)
        for ax in axes.ravel()[len(lm) :]:
            fig.delaxes(ax)
        fig.colorbar(
            im,
            ax=list(axes.ravel()[: len(lm)]),
            shrink=0.9,
            label="linear CKA" + (" (one scale for every panel)" if len(lm) > 1 else ""),
        )
        figure_title(fig, "Layer matching: cross-layer linear CKA")
        return save_figure(fig, stem)


def analysis_plots(
    result: CompareResult, folder: Path, only: tuple[str, ...] | None = None
) -> dict[str, list[Path]]:
    """Write the registered analyses' figures into ``folder`` (``only``: those named);
    ``{figure name: files}`` of those made, in report order."""
    out = {}
    if not result.analyses:
        return out
    for figure in (f for a in analyses() for f in a.figures):
        if only is not None and figure.name not in only:
            continue
        files = figure.plot(result, Path(folder) / figure.name)
        if files:
            out[figure.name] = files
    return out


def analysis_caption(name: str, result: CompareResult) -> str:
    """Caption of an analysis figure (see :func:`analysis_plots`), as drawn; an unregistered
    name is its own caption."""
    figure = next((f for a in analyses() for f in a.figures if f.name == name), None)
    return name if figure is None else figure.caption(result)


def _segments_caption(result: CompareResult) -> str:
    from repspace.report.figures_layout import MAX_LINES
    from repspace.report.plots import tower_note

    lines = sum(len(v) for v in _segment_series(result).values())
    return (
        "Linear CKA to the base " + result.base.name + " per layer over each token segment "
        "separately (per-sample means over the segment's tokens), from the "
        "comparison's capture pass; 1 = unchanged (dashed)."
        + (
            " One panel per checkpoint (more than five lines would hide each other), on one y axis."
            if lines > MAX_LINES
            else ""
        )
        + tower_note(result.layers)
    )


def _adapter_effect_caption(result: CompareResult) -> str:
    from repspace.report.figures_layout import MAX_LINES
    from repspace.report.plots import tower_note
    from repspace.report.weight_figures import weight_caption

    eff = {n: r["blocks"] for n, r in _of(result, "adapter_effect").items() if r.get("blocks")}
    return weight_caption("adapter_effect", many=len(eff) > MAX_LINES) + tower_note(
        list(dict.fromkeys(b for per in eff.values() for b in per))
    )


def _weight_space_caption(result: CompareResult) -> str:
    from repspace.report.figures_layout import MAX_LINES
    from repspace.report.plots import tower_note
    from repspace.report.weight_figures import weight_caption, weight_space_is_log

    ws = {n: r["blocks"] for n, r in _of(result, "weight_space").items() if r.get("blocks")}
    rep = any(
        result.metrics.get(n, {}).get(b, {}).get("effective_rank_tuned") is not None
        for n in ws
        for b in result.layers
    )
    return weight_caption(
        "weight_space",
        log=weight_space_is_log(ws),
        with_representation=rep,
        many=len(ws) > MAX_LINES,
    ) + tower_note(list(dict.fromkeys(b for per in ws.values() for b in per)))


def _merge_caption(result: CompareResult) -> str:
    from repspace.report.plots import tower_note
    from repspace.report.weight_figures import weight_caption

    layers = [
        l
        for per in _of(result, "merge_fidelity").values()
        if "note" not in per
        for f in per.values()
        for l in f.get("layers", {})
    ]
    return weight_caption("merge_fidelity") + tower_note(list(dict.fromkeys(layers)))


def _layer_matching_caption(result: CompareResult) -> str:
    scale = layer_matching_scale(result)
    span = f" (from {scale[0]:.2f} to {scale[1]:.2f})" if scale else ""
    return (
        f"Cross-layer linear CKA between the base {result.base.name}'s blocks (rows) and "
        "each tuned model's (columns), one panel per tuned model, all on one colour scale"
        f"{span} with one colour bar; circles: the monotone matching maximising the "
        "total CKA."
    )


# The report side of the built-in analyses: a saved result renders without repspace.compare,
# which adds how each runs and is asked for (repspace.compare.analyses).  ``order`` keeps the
# report's order: the null first, then as the options are listed.
declare_analysis("null", tables=_null_tables, order=10)
declare_analysis(
    "segments",
    tables=_segment_tables,
    order=20,
    figures=(Figure("analysis_segments", _plot_segments, _segments_caption),),
)
declare_analysis(
    "adapter_effect",
    tables=_adapter_effect_tables,
    order=30,
    figures=(Figure("analysis_adapter_effect", _plot_adapter_effect, _adapter_effect_caption),),
)
declare_analysis(
    "weight_space",
    tables=_weight_space_tables,
    order=40,
    figures=(Figure("analysis_weight_space", _plot_weight_space, _weight_space_caption),),
)
declare_analysis(
    "merge_fidelity",
    tables=_merge_tables,
    order=50,
    figures=(Figure("analysis_merge_fidelity", _plot_merge, _merge_caption),),
)
declare_analysis(
    "layer_matching",
    tables=_layer_matching_tables,
    order=60,
    figures=(Figure("analysis_layer_matching", _plot_layer_matching, _layer_matching_caption),),
)
register_captioner("analysis_", analysis_caption)
