"""Study figures (PDF + PNG each), drawn from :class:`~repspace.study.results.StudyTables`.

- ``score_vs_preservation``: task score against mean CKA to the base and against the
  effective-rank ratio at the summary layer, one point per method (error bars: 95 %
  t-intervals over seeds; one seed: the claim checks' intervals over rows or items);
- ``effective_rank_layers``: effective rank per layer per method, the base dashed;
- ``cka_layers``: linear CKA to the base per layer per method;
- ``data_fraction`` / ``budget``: score, mean CKA and rank ratio against the data fraction
  and against the trainable-parameter count (the empirical-study paper's axes), drawn
  only when the grid varies them;
- ``ptpeft_vs_vanilla``: PT-PEFT beside its vanilla counterpart (score, rank ratio).

The "main slice" the per-method figures use: per method its first listed budget and the
largest data fraction.  A figure the grid cannot support is skipped with a note.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from repspace.report.figures_layout import figure_legend, figure_title, grid
from repspace.report.plots import broken, layer_axis, save_figure
from repspace.report.style import (
    BASE_COLOR,
    BASE_MARKER,
    color_for,
    log_axis,
    marker_for,
    paper_style,
)
from repspace.study.config import BASE_METHOD
from repspace.study.results import (
    PRIMARY_SCORE,
    StudyTables,
    group_cells,
    main_slice,
    mean_ci,
)

__all__ = ["make_figures", "PT_PAIRS", "CAPTIONS"]

# Where a one-seed cell's error bar comes from (repspace.study.results.one_seed_intervals)
_ONE_SEED = (
    "; with one seed, the 95 % jackknife interval over the probe rows for CKA and rank "
    "ratios, p(1 − p)/n over the held-out items for accuracies, none for other scores"
)

CAPTIONS = {
    "score_vs_preservation": "Task score against representation preservation, one point per "
    "method on the main slice (each method's first budget, largest data "
    "fraction): left, mean linear CKA to the base over the compared "
    "layers; right, effective rank tuned / base at the summary layer "
    "(1 = unchanged). Error bars: 95 % t-intervals over seeds"
    + _ONE_SEED
    + ". Grey square: the untrained base.",
    "effective_rank_layers": "Effective rank of the features per layer and method (main slice), "
    "mean over seeds with the 95 % band over seeds (one seed: the "
    "jackknife over the probe rows); the untrained base dashed "
    "grey. A vertical line separates the towers; lines are not joined "
    "across it.",
    "cka_layers": "Linear CKA to the base per layer and method (main slice), mean over seeds "
    "with the 95 % band over seeds (one seed: the jackknife over the probe rows); 1 "
    "(dashed) = the base's own representation. A vertical line separates the towers; "
    "lines are not joined across it.",
    "data_fraction": "Task score, mean linear CKA and effective-rank ratio against the fraction "
    "of training data used (each method at its first budget); dashed: the "
    "untrained base. Error bars: 95 % t-intervals over seeds" + _ONE_SEED + ".",
    "budget": "Task score, mean linear CKA and effective-rank ratio against the number of "
    "trainable parameters (log axis; each method at its largest data fraction); "
    "dashed: the untrained base. Error bars: 95 % t-intervals over seeds" + _ONE_SEED + ".",
    "ptpeft_vs_vanilla": "PT-PEFT (a prefix-tuning stage first) beside its vanilla "
    "counterpart on the main slice: task score, effective-rank ratio and "
    "mean linear CKA; the axes span the values (not from 0), error bars "
    "are 95 % t-intervals over seeds" + _ONE_SEED + ". Budgets compared: see the claim "
    "table in summary.md.",
    "trajectory": "Distortion during training (a study with `track_every`): linear CKA to the "
    "base averaged over the tracked layers, against the training step, one panel "
    "per method (main slice), the other methods in grey behind it; dashed: 1, the "
    "base itself. Line: mean over seeds; band: 95 % t-interval over seeds (none "
    "with one seed). Measured by `repspace.track` on the study's primary probe "
    "(`track_samples` rows) at step 0, every `track_every` steps and the last "
    "step; `results/trajectory.csv` has every tracked metric per layer.",
}

PT_PAIRS = (("pt_lora", "lora"), ("pt_adapter", "adapter"))


def _color(method: str) -> str:
    return BASE_COLOR if method == BASE_METHOD else color_for(method)


def _marker(method: str) -> str:
    return BASE_MARKER if method == BASE_METHOD else marker_for(method)


SCORE_WORDS = {"vqa_accuracy": "VQA accuracy", "cider_d": "CIDEr-D"}


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _err(row: dict, col: str) -> list[list[float]] | None:
    """Asymmetric error bar ``[[below], [above]]`` from the CI columns (None if undefined)."""
    m, lo, hi = row.get(col), row.get(f"{col}_ci_low"), row.get(f"{col}_ci_high")
    if not (_finite(m) and _finite(lo) and _finite(hi)):
        return None
    return [[m - lo], [hi - m]]


def _tasks(tables: StudyTables) -> list[str]:
    return list(dict.fromkeys(r["task"] for r in tables.summary))


def _summary_layer(tables: StudyTables) -> str:
    """The summary layer's short, tower-qualified name (``text_decoder: layer.2``)."""
    from repspace.report.layer_names import tower_short_names

    layers = list(
        dict.fromkeys(r["layer"] for r in sorted(tables.long, key=lambda r: r["layer_index"]))
    )
    if tables.summary_layer in layers:
        return tower_short_names(layers)[layers.index(tables.summary_layer)]
    return str(tables.summary_layer)


def _score_label(task: str) -> str:
    score = PRIMARY_SCORE.get(task, "score")
    words = SCORE_WORDS.get(score, score.replace("_", " "))
    return words if task.lower() in words.lower() else f"{words} ({task})"


def _score_vs_preservation(tables: StudyTables, stem: Path) -> list[Path] | str:
    tasks = [
        t
        for t in _tasks(tables)
        if any(_finite(r["primary_score"]) for r in main_slice(tables.summary, t))
    ]
    if not tasks:
        return "score_vs_preservation skipped: no cell has a task score"
    xs = (
        ("mean_linear_cka", "mean linear CKA to base (over layers)"),
        ("erank_ratio", f"effective-rank ratio tuned / base\n({_summary_layer(tables)})"),
    )
    with paper_style():
        fig, axes = grid(len(tasks), 2, 2.9, 2.8, sharex=False, sharey="row")
        for row_axes, task in zip(axes, tasks):
            for ax, (col, xlabel) in zip(row_axes, xs):
                for r in main_slice(tables.summary, task):
                    if not (_finite(r[col]) and _finite(r["primary_score"])):
                        continue
                    ax.errorbar(
                        r[col],
                        r["primary_score"],
                        xerr=_err(r, col),
                        yerr=_err(r, "primary_score"),
                        fmt=_marker(r["method"]),
                        ms=6,
                        capsize=2,
                        color=_color(r["method"]),
                        label="base (no training)" if r["method"] == BASE_METHOD else r["method"],
                    )
                ax.set_xlabel(xlabel)
                ax.set_title(task, loc="left", fontsize=9)
            row_axes[0].set_ylabel(_score_label(task))
        figure_title(fig, "Task score vs representation preservation")
        figure_legend(fig, fontsize=8)
        return save_figure(fig, stem)


def _layer_means(
    tables: StudyTables, group: dict, metric: str
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Per-layer mean and CI over seeds of ``metric`` for one summary group."""
    keys = ("task", "method", "budget", "data_fraction")
    by_layer: dict[int, list[float]] = {}
    names: dict[int, str] = {}
    for r in tables.long:
        if r["metric"] == metric and all(r[k] == group[k] for k in keys):
            by_layer.setdefault(r["layer_index"], []).append(r["value"])
            names[r["layer_index"]] = r["layer"]
    idx = sorted(by_layer)
    stats = [mean_ci(by_layer[i], tables.confidence) for i in idx]
    mean, low, high = (np.array([s[k] for s in stats]) for k in (0, 1, 2))
    if group.get("n_seeds") == 1:  # no seeds to vary: the band is the jackknife over rows
        low, high = _one_seed_band(tables, group, metric, [names[i] for i in idx], mean)
    return [names[i] for i in idx], mean, low, high


def _one_seed_band(
    tables: StudyTables, group: dict, metric: str, layers: list[str], mean: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer 95 % jackknife interval over the probe rows of a one-seed group's cell
    (NaN where the cell kept no replicates of ``metric`` at that layer)."""
    from repspace.closed_forms.jackknife import jackknife_interval

    cells = group_cells(tables.cells, group)
    evidence = tables.evidence.get(cells[0]["cell"]) or {} if cells else {}
    per_layer = evidence.get("layers") or {}
    low, high = np.full(len(layers), np.nan), np.full(len(layers), np.nan)
    for j, layer in enumerate(layers):
        reps = (per_layer.get(layer) or {}).get(metric)
        if reps is not None:
            iv = jackknife_interval(float(mean[j]), reps, tables.confidence)
            low[j], high[j] = iv.low, iv.high
    return low, high


def _per_layer(
    tables: StudyTables, stem: Path, metric: str, ylabel: str, title: str, reference: str | None
) -> list[Path] | str:
    tasks = _tasks(tables)
    if not tables.long:
        return f"{stem.name} skipped: no per-layer metrics"
    with paper_style():
        fig, axes = grid(len(tasks), 1, 5.5, 3.0, sharex=False)
        for ax, task in zip(axes[:, 0], tasks):
            rows = main_slice(tables.summary, task)
            names: list[str] = []
            if reference:  # the base's value (mean over every cell of the task)
                groups = [r for r in rows]
                vals = [_layer_means(tables, g, reference) for g in groups]
                vals = [v for v in vals if v[0]]
                if vals:
                    names = vals[0][0]
                    base = np.nanmean(np.vstack([v[1] for v in vals if len(v[1]) == len(names)]), 0)
                    bx, by = broken(base, names)
                    ax.plot(
                        bx,
                        by,
                        color=BASE_COLOR,
                        ls="--",
                        marker=BASE_MARKER,
                        ms=3,
                        label="base (no training)",
                    )
            for r in rows:
                if r["method"] == BASE_METHOD:  # the base is the reference (line or 1.0)
                    continue
                layer_names, mean, low, high = _layer_means(tables, r, metric)
                if not layer_names or np.isnan(mean).all():
                    continue
                names = names or layer_names
                x, y = broken(mean, layer_names)
                ax.plot(
                    x,
                    y,
                    marker=_marker(r["method"]),
                    ms=4,
                    color=_color(r["method"]),
                    label=r["method"],
                )
                if np.isfinite(low).any():
                    ax.fill_between(
                        x,
                        broken(low, layer_names)[1],
                        broken(high, layer_names)[1],
                        color=_color(r["method"]),
                        alpha=0.15,
                        lw=0,
                    )
            layer_axis(ax, names, fontsize=7)
            ax.set_ylabel(ylabel)
            ax.set_title(f"{title} ({task})", pad=18)
            if metric == "linear_cka":
                ax.axhline(1.0, color=BASE_COLOR, lw=0.9, ls="--", label="base (no training)")
        figure_legend(fig, fontsize=8)
        return save_figure(fig, stem)


_SWEEP_Y = (
    ("primary_score", None),
    ("mean_linear_cka", "mean linear CKA to base"),
    ("erank_ratio", "effective-rank ratio tuned / base"),
)


def _sweep(tables: StudyTables, stem: Path, axis: str) -> list[Path] | str:
    """Score and distortion against the data fraction or the trainable-parameter count."""
    tasks = _tasks(tables)
    lines: dict[tuple[str, str], list[dict]] = {}
    for r in tables.summary:
        if r["method"] == BASE_METHOD:
            continue
        if axis == "data_fraction":
            first_budget = next(
                x["budget"]
                for x in tables.summary
                if x["task"] == r["task"] and x["method"] == r["method"]
            )
            if r["budget"] == first_budget:
                lines.setdefault((r["task"], r["method"]), []).append(r)
        else:
            fr = [
                x["data_fraction"]
                for x in tables.summary
                if x["task"] == r["task"] and x["method"] == r["method"]
            ]
            if r["data_fraction"] == max(fr):
                lines.setdefault((r["task"], r["method"]), []).append(r)
    xcol = "data_fraction" if axis == "data_fraction" else "trainable_params"
    lines = {k: v for k, v in lines.items() if len({x[xcol] for x in v}) > 1}
    if not lines:
        return (
            f"{stem.name} skipped: the grid does not vary "
            f"{'data_fractions' if axis == 'data_fraction' else 'budgets'}"
        )
    with paper_style():
        # one column per task, the three quantities stacked on the shared x axis
        fig, axes = grid(len(_SWEEP_Y), len(tasks), 4.2, 1.9, sharex="col")
        for col_axes, task in zip(axes.T, tasks):
            bases = [r for r in tables.summary if r["task"] == task and r["method"] == BASE_METHOD]
            col_axes[0].set_title(task, loc="left", fontsize=9)
            for ax, (col, ylabel) in zip(col_axes, _SWEEP_Y):
                for (t, method), rows in lines.items():
                    if t != task:
                        continue
                    rows = sorted(rows, key=lambda x: x[xcol])
                    x = [r[xcol] for r in rows]
                    y = [r[col] for r in rows]
                    lo = [
                        r[col] - r[f"{col}_ci_low"] if _finite(r[f"{col}_ci_low"]) else 0
                        for r in rows
                    ]
                    hi = [
                        r[f"{col}_ci_high"] - r[col] if _finite(r[f"{col}_ci_high"]) else 0
                        for r in rows
                    ]
                    ax.errorbar(
                        x,
                        y,
                        yerr=[lo, hi],
                        marker=_marker(method),
                        ms=5,
                        capsize=2,
                        color=_color(method),
                        label=method,
                    )
                if bases and _finite(bases[0][col]):
                    ax.axhline(
                        bases[0][col], color=BASE_COLOR, ls="--", lw=0.9, label="base (no training)"
                    )
                if axis != "data_fraction":
                    log_axis(ax, "x")
                ax.set_ylabel(ylabel or _score_label(task))
            col_axes[-1].set_xlabel(
                "fraction of training data" if axis == "data_fraction" else "trainable parameters"
            )
        figure_title(
            fig,
            "Score and distortion vs "
            + ("data size" if axis == "data_fraction" else "parameter budget"),
        )
        figure_legend(fig, fontsize=8)
        return save_figure(fig, stem)


def _pair_label(a: dict, b: dict) -> str:
    """``pt_lora (r=8)\nvs lora (r=8)``: the methods and the budgets compared."""

    def one(r):
        return r["method"] + (
            f" ({r['budget_field']}={r['budget']})" if r.get("budget") is not None else ""
        )

    return f"{one(a)}\nvs {one(b)}"


def _ptpeft(tables: StudyTables, stem: Path) -> list[Path] | str:
    from repspace.study.claims import Matched

    panels = []
    for task in _tasks(tables):
        matched = Matched(tables, task)  # like with like: the claim checks' pairs
        pairs = [(pt, v) for pt, v in PT_PAIRS if matched.pair(pt, v)]
        if pairs:
            panels.append((task, {p: matched.pair(*p) for p in pairs}, pairs))
    if not panels:
        return "ptpeft_vs_vanilla skipped: the grid has no (pt_lora, lora) or (pt_adapter, adapter) pair"
    cols = (
        ("primary_score", None),
        ("erank_ratio", f"effective-rank ratio tuned / base\n({_summary_layer(tables)})"),
        ("mean_linear_cka", "mean linear CKA to base"),
    )
    with paper_style():
        # one column per task, the three quantities stacked over the shared pairs
        fig, axes = grid(len(cols), len(panels), 3.6, 2.0, sharex="col")
        for col_axes, (task, rows, pairs) in zip(axes.T, panels):
            col_axes[0].set_title(task, loc="left", fontsize=9)
            for ax, (col, ylabel) in zip(col_axes, cols):
                # Points with 95 % intervals, the axis fitted to the values: bars from 0 would
                # hide a 1.05 vs 1.07 difference.
                for i, pair in enumerate(pairs):
                    for j, method in enumerate(pair):
                        r = rows[pair][j]
                        if not _finite(r[col]):
                            continue
                        ax.errorbar(
                            i + (j - 0.5) * 0.4,
                            r[col],
                            yerr=_err(r, col),
                            capsize=3,
                            fmt=_marker(method),
                            ms=7,
                            color=_color(method),
                            label=method,
                        )
                ax.set_xticks(range(len(pairs)))
                ax.set_xticklabels([_pair_label(*rows[p]) for p in pairs], fontsize=7)
                ax.set_xlim(-0.6, len(pairs) - 0.4)
                ax.set_ylabel(ylabel or _score_label(task))
                ax.margins(y=0.25)
                if col != "primary_score":
                    ax.axhline(1.0, color=BASE_COLOR, lw=0.9, ls="--", label="base (= 1)")
        figure_title(fig, "PT-PEFT (prefix first) vs vanilla PEFT")
        figure_legend(fig, fontsize=8)
        return save_figure(fig, stem)


def make_figures(tables: StudyTables, folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Every figure the grid supports; returns ``({file name: path}, notes)``."""
    folder = Path(folder)
    jobs = {
        "score_vs_preservation": lambda s: _score_vs_preservation(tables, s),
        "effective_rank_layers": lambda s: _per_layer(
            tables,
            s,
            "effective_rank_tuned",
            "effective rank (Roy & Vetterli)",
            "Effective rank per layer",
            reference="effective_rank_base",
        ),
        "cka_layers": lambda s: _per_layer(
            tables,
            s,
            "linear_cka",
            "linear CKA to base",
            "CKA to the base per layer",
            reference=None,
        ),
        "data_fraction": lambda s: _sweep(tables, s, "data_fraction"),
        "budget": lambda s: _sweep(tables, s, "budget"),
        "ptpeft_vs_vanilla": lambda s: _ptpeft(tables, s),
    }
    files, notes = {}, []
    if not tables.summary:
        return files, ["figures skipped: no finished cell"]
    for name, job in jobs.items():
        out = job(folder / name)
        if isinstance(out, str):
            notes.append(out)
        else:
            files.update({p.name: p for p in out})
    return files, notes
