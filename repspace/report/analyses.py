"""The compare report's "Analyses" section: the PEFT-aware analyses that ran (issue 19), each
with a short caption, a compact table and (where one helps) a figure.

Kept apart from :mod:`repspace.report.writer` / :mod:`repspace.report.plots` (the headline
figures): the writer calls :func:`analysis_plots`, :func:`markdown_section`,
:func:`html_section` and :func:`base_capture_text`; figure names start with ``analysis_`` and
their captions come from :func:`analysis_caption`.  Input: ``result.analyses`` (see
:mod:`repspace.compare.analyses`, :mod:`repspace.compare.segments`), the ``linear_cka_null_*``
metrics and ``result.settings["base_capture"]``.
"""
from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np

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


def base_capture_text(settings: dict) -> str | None:
    """The report header's "base capture" line (None when the setting is absent)."""
    bc = (settings or {}).get("base_capture")
    if not isinstance(bc, dict):
        return None
    if bc.get("mode") == "adapter_disabled":
        return ("one model: the base was run as the adapter's model with the adapter disabled "
                "(peft disable_adapter(); identical to loading it separately)")
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
                rows.append([name, layer, _f(m.get("linear_cka")),
                             f"≤ {_f(p)}" if floor else _f(p),  # at the floor: not smaller
                             _f(m.get("linear_cka_null_z"))])
    return rows


def _tables(result: CompareResult) -> list[tuple[str, str, list[str], list[list[str]], list[str]]]:
    """``(key, title, head, rows, notes)`` per analysis present, in report order."""
    a = result.analyses or {}
    out = []
    rows = _null_rows(result)
    if rows:
        out.append(("null", "Calibrated similarity: permutation null of linear CKA",
                    ["checkpoint", "layer", "linear CKA", "p", "z"], rows,
                    [("p ≥ 1/(B + 1) for B permutations of the row sample: '≤' marks a p-value "
                      "at that floor (every permutation scored lower); z says by how much")]))
    seg = a.get("segments") or {}
    if seg:
        rows, vrows = [], []
        for name, per in seg.items():
            for layer, parts in per.items():
                for s, m in parts.items():
                    if s == "virtual":
                        vrows.append([name, layer, _f(m.get("virtual_tokens")),
                                      _f(m.get("virtual_effective_rank")),
                                      _f(m.get("virtual_norm_ratio")),
                                      _f(m.get("virtual_sample_share"))])
                    else:
                        rows.append([name, layer, s, _f(m.get("n")), _f(m.get("linear_cka")),
                                     _f(m.get("effective_rank_base")),
                                     _f(m.get("effective_rank_tuned")),
                                     _f(m.get("relative_shift_mean"))])
        if rows:
            out.append(("segments", "Per segment: image and text tokens",
                        ["checkpoint", "layer", "segment", "n", "linear CKA", "erank base",
                         "erank tuned", "‖Δh‖/‖h‖ mean"], rows, []))
        if vrows:
            out.append(("virtual", "Per segment: the tuned side's virtual tokens",
                        ["checkpoint", "layer", "tokens", "erank", "norm / text norm",
                         "between-sample share"], vrows, []))
    eff = a.get("adapter_effect") or {}
    if eff:
        rows, notes = [], []
        for name, r in eff.items():
            if "note" in r:
                notes.append(f"{name}: {r['note']}")
                continue
            for block, m in r.get("blocks", {}).items():
                rows.append([name, block, _f(m.get("mean")), _f(m.get("q25")), _f(m.get("q75"))])
        out.append(("adapter_effect", "Where the adapter acts: ‖Δh‖/‖h‖ per block",
                    ["checkpoint", "block", "mean", "q25", "q75"], rows, notes))
    ws = a.get("weight_space") or {}
    if ws:
        rows, notes = [], []
        for name, r in ws.items():
            for block, m in r.get("blocks", {}).items():
                rows.append([name, block, _f(m.get("matrices")), _f(m.get("relative_delta")),
                             _f(m.get("delta_effective_rank")), _f(m.get("intruder_dimensions"))])
            notes.append(f"{name}: {len(r.get('matrices', {}))} changed linear maps, "
                         f"{r.get('unchanged', 0)} unchanged, {len(r.get('skipped', {}))} not "
                         f"linear; {r.get('intruder_dimensions', 0)} intruder dimensions in all "
                         f"(top {r.get('top_k')}, |cos| < {r.get('threshold')})")
        out.append(("weight_space", "Weight space: ΔW per block",
                    ["checkpoint", "block", "matrices", "‖ΔW‖/‖W‖ mean", "erank ΔW mean",
                     "intruder dimensions"], rows, notes))
    mf = a.get("merge_fidelity") or {}
    if mf:
        rows, notes = [], []
        for name, per in mf.items():
            if "note" in per:
                notes.append(f"{name}: {per['note']}")
                continue
            for dtype, f in per.items():
                s = f.get("summary", {})
                rows.append([name, dtype, _f(s.get("min_linear_cka"), 9),
                             _f(s.get("max_relative_shift")), _f(s.get("median_merge_error")),
                             _f(s.get("median_update_error")),
                             _f(s.get("mean_absorbed_fraction"))])
        out.append(("merge_fidelity", "Merge fidelity",
                    ["checkpoint", "dtype", "min CKA merged vs unmerged", "max ‖Δy‖/‖y‖",
                     "median ‖W_m − W‖/‖ΔW‖", "median update lost", "ΔW entries rounded away"],
                    rows, notes))
    lm = a.get("layer_matching") or {}
    if lm:
        rows, notes = [], []
        for name, m in lm.items():
            for p in m.get("pairs", []):
                rows.append([name, p["tuned"], p["base"], _f(p["cka"])])
            if m.get("unmatched_base"):
                notes.append(f"{name}: base layers matched to no tuned layer: "
                             f"{', '.join(m['unmatched_base'])}")
            if m.get("identity"):
                notes.append(f"{name}: every tuned block matched the base block of the same "
                             "index (no depth change detected)")
        out.append(("layer_matching", "Layer matching by cross-layer CKA",
                    ["checkpoint", "tuned layer", "matched base layer", "linear CKA"], rows, notes))
    return out


_TABLE_CAPTIONS = {
    "null": ("The tuned rows of the paired sample are shuffled (B permutations, the pairing "
             "destroyed) and linear CKA recomputed: p = (1 + #{CKA_perm ≥ CKA}) / (B + 1), "
             "z = (CKA − mean_null) / sd_null. A small p says the two representations share "
             "sample-specific structure; it does not say they are unchanged (CKA itself does)."),
    "segments": ("Metrics over each token segment separately, from the same capture pass: rows "
                 "are per-sample means over the segment's tokens (image: vision-tower tokens and "
                 "image-placeholder positions; text: the other valid tokens), n samples that have "
                 "the segment."),
    "virtual": ("The positions a prompt-learning adapter prepends exist on the tuned side only: "
                "their effective rank (directions the prompt spans), their mean norm over the "
                "text tokens' (does the prompt dominate?), and the share of their variance that "
                "is between samples at a fixed position (0: input-independent)."),
    "adapter_effect": ("Per adapted module and sample, r = ‖Δh‖/‖h‖: the adapter branch's output "
                       "against the frozen path's, over valid tokens; averaged over the block's "
                       "modules (mean and interquartile range over samples)."),
    "weight_space": ("ΔW of every changed linear map (from the adapter, or W_tuned − W_base): "
                     "its size relative to W, its effective rank, and intruder dimensions "
                     "(Shuttleworth et al., 2024: top singular vectors of W_tuned with low "
                     "cosine similarity to every base singular vector)."),
    "merge_fidelity": ("The adapter merged into the weights in each dtype, run in float32, "
                       "against the unmerged float32 model: representation drift per layer and "
                       "the error of the merged matrices relative to ΔW."),
    "layer_matching": ("Each tuned block matched to a base block by the cross-layer linear CKA "
                       "matrix (monotone assignment maximising the total CKA), for tuned models "
                       "of another depth (block expansion, layer replication)."),
}


def markdown_section(result: CompareResult, plots: dict[str, list[str]] | None = None) -> list[str]:
    """Markdown lines of the Analyses section (empty when none ran)."""
    from repspace.report.tables import md_text

    tables = _tables(result)
    if not tables:
        return []
    lines = ["", "## Analyses", ""]
    for key, title, head, rows, notes in tables:
        lines += [f"### {md_text(title)}", "", f"*{md_text(_TABLE_CAPTIONS[key])}*", ""]
        if rows:
            lines += ["| " + " | ".join(md_text(h) for h in head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(md_text(c) for c in r) + " |" for r in rows]
        lines += [f"- {md_text(n)}" for n in notes]
        lines.append("")
    return lines


def html_section(result: CompareResult) -> str:
    """HTML of the Analyses section ("" when none ran)."""
    tables = _tables(result)
    if not tables:
        return ""
    h = html.escape
    parts = ["<h2>Analyses</h2>"]
    for key, title, head, rows, notes in tables:
        parts.append(f"<h3>{h(title)}</h3><p><small>{h(_TABLE_CAPTIONS[key])}</small></p>")
        if rows:
            parts.append('<details open><summary>Table</summary><div class="scroll"><table '
                         'class="full"><thead><tr>' + "".join(f"<th>{h(c)}</th>" for c in head)
                         + "</tr></thead><tbody>" + "".join(
                             "<tr>" + "".join(f"<td>{h(str(c))}</td>" for c in r) + "</tr>"
                             for r in rows) + "</tbody></table></div></details>")
        if notes:
            parts.append("<ul>" + "".join(f"<li>{h(n)}</li>" for n in notes) + "</ul>")
    return "".join(parts)


# -- figures -----------------------------------------------------------------------------------
def _segment_series(result: CompareResult) -> dict[str, dict[str, np.ndarray]]:
    """``{checkpoint: {segment: per-layer linear CKA}}`` of the segments with a value."""
    series: dict[str, dict[str, np.ndarray]] = {}
    for name, per in (result.analyses.get("segments") or {}).items():
        for s in ("text", "image", "query"):
            y = np.array([per.get(l, {}).get(s, {}).get("linear_cka", math.nan)
                          for l in result.layers], dtype=np.float64)
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
        fig, axes = grid(math.ceil(len(groups) / ncols), ncols,
                         panel_width(len(result.layers)) if ncols == 1 else 2.45, 2.8,
                         sharex=True, sharey=True)
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
        for ax in axes.ravel()[len(groups):]:
            fig.delaxes(ax)
        figure_legend(fig)
        figure_title(fig, "Similarity to the base per token segment")
        return save_figure(fig, stem)


def _plot_adapter_effect(result: CompareResult, stem: Path) -> list[Path]:
    from repspace.report.weight_figures import plot_adapter_effect

    blocks = {n: r["blocks"] for n, r in (result.analyses.get("adapter_effect") or {}).items()
              if r.get("blocks")}
    return plot_adapter_effect(blocks, stem) if blocks else []


def _plot_weight_space(result: CompareResult, stem: Path) -> list[Path]:
    from repspace.report.weight_figures import plot_weight_vs_representation

    ws = {n: r["blocks"] for n, r in (result.analyses.get("weight_space") or {}).items()
          if r.get("blocks")}
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

    merges = {n: per for n, per in (result.analyses.get("merge_fidelity") or {}).items()
              if "note" not in per}
    return plot_merge_fidelity(merges, stem) if merges else []


def layer_matching_scale(result: CompareResult) -> tuple[float, float] | None:
    """The one colour scale (low, high) of every layer-matching panel: the range of all the
    CKA values shown, so one colour means one CKA in every panel."""
    mats = [np.asarray(m["matrix"], dtype=np.float64)
            for m in (result.analyses.get("layer_matching") or {}).values() if m.get("matrix")]
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

    lm = {n: m for n, m in (result.analyses.get("layer_matching") or {}).items() if m.get("matrix")}
    scale = layer_matching_scale(result)
    if not lm or scale is None:
        return []
    with paper_style():
        ncols = min(3, len(lm))
        fig, axes = grid(math.ceil(len(lm) / ncols), ncols, 3.0, 3.2, legend=False,
                         sharex=False, sharey=False)
        for ax, (name, m) in zip(axes.ravel(), lm.items()):
            mat = np.asarray(m["matrix"], dtype=np.float64)  # (base, tuned)
            im = ax.imshow(mat, origin="lower", aspect="auto", cmap="viridis", vmin=scale[0],
                           vmax=scale[1])
            base_idx = {b: i for i, b in enumerate(m["base_layers"])}
            tuned_idx = {t: j for j, t in enumerate(m["tuned_layers"])}
            ax.scatter([tuned_idx[p["tuned"]] for p in m["pairs"]],
                       [base_idx[p["base"]] for p in m["pairs"]], marker="o", s=14,
                       facecolors="none", edgecolors="white", lw=1.0, label="matched")
            ax.set_xticks(range(len(m["tuned_layers"])), short_layer_names(m["tuned_layers"]),
                          rotation=60, ha="right", fontsize=6)
            ax.set_yticks(range(len(m["base_layers"])), short_layer_names(m["base_layers"]),
                          fontsize=6)
            ax.set_xlabel(f"{name} layer")
            ax.set_ylabel(f"base {result.base.name} layer")
            ax.set_title(name, loc="left", fontsize=9)
            ax.grid(False)
        for ax in axes.ravel()[len(lm):]:
            fig.delaxes(ax)
        fig.colorbar(im, ax=list(axes.ravel()[:len(lm)]), shrink=0.9, label="linear CKA"
                     + (" (one scale for every panel)" if len(lm) > 1 else ""))
        figure_title(fig, "Layer matching: cross-layer linear CKA")
        return save_figure(fig, stem)


_PLOTS = {"analysis_segments": _plot_segments, "analysis_adapter_effect": _plot_adapter_effect,
          "analysis_weight_space": _plot_weight_space, "analysis_merge_fidelity": _plot_merge,
          "analysis_layer_matching": _plot_layer_matching}


def analysis_plots(result: CompareResult, folder: Path,
                   only: tuple[str, ...] | None = None) -> dict[str, list[Path]]:
    """Write the analyses' figures into ``folder`` (``only``: those named); ``{figure name:
    files}`` of those made."""
    out = {}
    if not result.analyses:
        return out
    for name, fn in _PLOTS.items():
        if only is not None and name not in only:
            continue
        files = fn(result, Path(folder) / name)
        if files:
            out[name] = files
    return out


def analysis_caption(name: str, result: CompareResult) -> str:
    """Caption of an analysis figure (see :func:`analysis_plots`), as drawn."""
    from repspace.report.figures_layout import MAX_LINES
    from repspace.report.plots import tower_note
    from repspace.report.weight_figures import weight_caption, weight_space_is_log

    base = result.base.name
    a = result.analyses or {}
    if name == "analysis_segments":
        lines = sum(len(v) for v in _segment_series(result).values())
        return ("Linear CKA to the base " + base + " per layer over each token segment "
                "separately (per-sample means over the segment's tokens), from the "
                "comparison's capture pass; 1 = unchanged (dashed)."
                + (" One panel per checkpoint (more than five lines would hide each other), "
                   "on one y axis." if lines > MAX_LINES else "") + tower_note(result.layers))
    if name == "analysis_adapter_effect":
        eff = {n: r["blocks"] for n, r in (a.get("adapter_effect") or {}).items() if r.get("blocks")}
        return weight_caption("adapter_effect", many=len(eff) > MAX_LINES) + tower_note(
            list(dict.fromkeys(b for per in eff.values() for b in per)))
    if name == "analysis_weight_space":
        ws = {n: r["blocks"] for n, r in (a.get("weight_space") or {}).items() if r.get("blocks")}
        rep = any(result.metrics.get(n, {}).get(b, {}).get("effective_rank_tuned") is not None
                  for n in ws for b in result.layers)
        return weight_caption("weight_space", log=weight_space_is_log(ws),
                              with_representation=rep, many=len(ws) > MAX_LINES) + tower_note(
            list(dict.fromkeys(b for per in ws.values() for b in per)))
    if name == "analysis_merge_fidelity":
        layers = [l for per in (a.get("merge_fidelity") or {}).values() if "note" not in per
                  for f in per.values() for l in f.get("layers", {})]
        return weight_caption("merge_fidelity") + tower_note(list(dict.fromkeys(layers)))
    if name == "analysis_layer_matching":
        scale = layer_matching_scale(result)
        span = f" (from {scale[0]:.2f} to {scale[1]:.2f})" if scale else ""
        return (f"Cross-layer linear CKA between the base {base}'s blocks (rows) and each tuned "
                "model's (columns), one panel per tuned model, all on one colour scale"
                f"{span} with one colour bar; circles: the monotone matching maximising the "
                "total CKA.")
    return name


register_captioner("analysis_", analysis_caption)
