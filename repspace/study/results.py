"""Study tables: long (cell × layer × metric), wide (one row per cell), and over seeds.

Wide per-cell columns (``cells.csv``):

- identity: ``cell, task, method, budget_field, budget, data_fraction, seed``;
- size: ``trainable_params, total_params, trainable_percent``;
- scores: ``score_<name>`` for every task score, ``primary_score`` (VQA accuracy for
  ``vqa``, CIDEr for ``captioning``);
- preservation: ``mean_linear_cka`` / ``mean_linear_cka_debiased`` / ``min_linear_cka``
  over the compared layers; at the summary layer (``summary_layer``, default the last):
  ``linear_cka_at_layer``, ``erank_base``, ``erank_tuned``, ``erank_delta`` = tuned − base,
  ``erank_ratio`` = tuned / base, ``pr_base``, ``pr_tuned``, ``pr_ratio`` (participation
  ratio, the same way), ``frechet_distance``; ``mean_erank_ratio`` over layers;
- per probe, when the study compares on several (``compare.probe`` a list; see
  :func:`repspace.study.runner.probe_label`): ``<probe>:mean_linear_cka``,
  ``<probe>:linear_cka_at_layer``, ``<probe>:erank_ratio``, ``<probe>:pr_ratio`` (NaN where
  the probe was skipped);
- cost: ``train_seconds, compare_seconds``.

Over seeds (``summary.csv``): every numeric column ``c`` becomes ``c`` (mean over seeds),
``c_ci_low``, ``c_ci_high`` (95 % Student-t interval, n − 1 degrees of freedom:
mean ± t₀.₉₇₅,ₙ₋₁ · s / √n with s the n − 1 standard deviation), ``n_seeds`` and
``interval`` (where the intervals come from).  With one seed there is no interval over seeds;
the columns the claim checks can bound get theirs instead (:func:`one_seed_intervals`: the
jackknife over the probe rows for the representation columns, the held-out items for
accuracies) and the rest stay NaN (empty in CSV).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.stats

from repspace.outputs import atomic_path, atomic_write_text

__all__ = [
    "StudyTables",
    "build_tables",
    "long_rows",
    "cell_rows",
    "aggregate",
    "mean_ci",
    "write_tables",
    "main_slice",
    "cell_evidence",
    "group_cells",
    "score_name",
    "one_seed_intervals",
    "PRIMARY_SCORE",
    "ID_COLUMNS",
    "GROUP_COLUMNS",
]

PRIMARY_SCORE = {"vqa": "vqa_accuracy", "captioning": "cider_d", "classify": "accuracy"}
ID_COLUMNS = ("cell", "task", "method", "budget_field", "budget", "data_fraction", "seed")
GROUP_COLUMNS = ("task", "method", "budget_field", "budget", "data_fraction")
_NOT_AGGREGATED = set(ID_COLUMNS) | {"summary_layer"}


@dataclass
class StudyTables:
    long: list[dict] = field(default_factory=list)
    cells: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    summary_layer: str | None = None
    confidence: float = 0.95
    # {cell label: {"replicates": {column: (B,) array}, "n_eval_items": n}}: what the claim
    # checks' one-seed intervals read (cell_evidence; repspace.study.evidence)
    evidence: dict = field(default_factory=dict)


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)`` of the finite ``values``: Student-t interval with n − 1 dof.

    NaN interval when n < 2 (a single seed says nothing about seed variance); all NaN
    when no value is finite.
    """
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan, math.nan, 1
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def score_name(task: str, col: str) -> str | None:
    """The task score a summary column holds (``primary_score`` or ``score_<name>``), None
    for a representation column: what decides the held-out-items interval."""
    if col == "primary_score":
        return PRIMARY_SCORE.get(task)
    return col[len("score_") :] if col.startswith("score_") else None


def group_cells(cells: list[dict], row: dict) -> list[dict]:
    """The cells (one per seed) behind a summary ``row``: those of its group."""
    return [c for c in cells if all(c.get(k) == row[k] for k in GROUP_COLUMNS)]


def _ident(record: dict) -> dict:
    c = record["cell"]
    return {
        "cell": record["label"],
        "task": c["task"],
        "method": c["method"],
        "budget_field": c.get("budget_field"),
        "budget": c.get("budget"),
        "data_fraction": c.get("data_fraction"),
        "seed": c["seed"],
    }


def long_rows(records: list[dict]) -> list[dict]:
    """One row per cell × layer × metric (tidy)."""
    rows = []
    for rec in records:
        ident = _ident(rec)
        for i, layer in enumerate(rec["layers"]):
            for metric, value in rec["metrics"].get(layer, {}).items():
                rows.append(
                    {
                        **ident,
                        "layer": layer,
                        "layer_index": i,
                        "metric": metric,
                        "value": _num(value),
                    }
                )
    return rows


def _num(v) -> float:
    return math.nan if v is None else float(v)


def _layer_series(rec: dict, metric: str) -> np.ndarray:
    return np.array(
        [_num(rec["metrics"].get(layer, {}).get(metric)) for layer in rec["layers"]],
        dtype=np.float64,
    )


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b != 0 else math.nan


def cell_rows(records: list[dict], summary_layer: int = -1) -> list[dict]:
    """One wide row per cell (see the module doc for the columns)."""
    rows = []
    score_names: dict[str, None] = {}
    probe_names: dict[str, None] = {}
    for rec in records:
        score_names.update(dict.fromkeys(rec.get("scores", {})))
        probe_names.update(dict.fromkeys(rec.get("probes") or {}))
        probe_names.update(dict.fromkeys(rec.get("probe_errors") or {}))
    for rec in records:
        ident = _ident(rec)
        layers = rec["layers"]
        row = dict(ident)
        params = rec.get("params") or {}
        trainable, total = params.get("trainable"), params.get("total")
        row["trainable_params"] = _num(trainable)
        row["total_params"] = _num(total)
        row["trainable_percent"] = 100 * _ratio(_num(trainable), _num(total))
        scores = rec.get("scores", {})
        for name in score_names:
            row[f"score_{name.replace('/', '.')}"] = _num(scores.get(name))
        primary = PRIMARY_SCORE.get(ident["task"])
        row["primary_score"] = (
            _num(scores.get(primary))
            if primary in scores
            else (_num(next(iter(scores.values()))) if scores else math.nan)
        )
        cka = _layer_series(rec, "linear_cka")
        row["mean_linear_cka"] = _nanmean(cka)
        row["mean_linear_cka_debiased"] = _nanmean(_layer_series(rec, "linear_cka_debiased"))
        row["min_linear_cka"] = float(np.nanmin(cka)) if np.isfinite(cka).any() else math.nan
        eb, et = (
            _layer_series(rec, "effective_rank_base"),
            _layer_series(rec, "effective_rank_tuned"),
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            row["mean_erank_ratio"] = _nanmean(et / eb)
        if layers and -len(layers) <= summary_layer < len(layers):
            i = summary_layer
            row["summary_layer"] = layers[i]
            row["linear_cka_at_layer"] = float(cka[i])
            row["erank_base"], row["erank_tuned"] = float(eb[i]), float(et[i])
            row["erank_delta"] = float(et[i] - eb[i])
            row["erank_ratio"] = _ratio(float(et[i]), float(eb[i]))
            pb = _layer_series(rec, "participation_ratio_base")
            pt = _layer_series(rec, "participation_ratio_tuned")
            row["pr_base"], row["pr_tuned"] = float(pb[i]), float(pt[i])
            row["pr_ratio"] = _ratio(float(pt[i]), float(pb[i]))
            row["frechet_distance"] = _num(rec["metrics"][layers[i]].get("frechet_distance"))
        else:
            row["summary_layer"] = None
            for k in (
                "linear_cka_at_layer",
                "erank_base",
                "erank_tuned",
                "erank_delta",
                "erank_ratio",
                "pr_base",
                "pr_tuned",
                "pr_ratio",
                "frechet_distance",
            ):
                row[k] = math.nan
        if len(probe_names) > 1:
            for probe in probe_names:
                row.update(_probe_columns(rec, probe, summary_layer))
        secs = rec.get("seconds") or {}
        row["train_seconds"] = _num(secs.get("train"))
        row["compare_seconds"] = _num(secs.get("compare"))
        rows.append(row)
    return rows


PROBE_COLUMNS = ("mean_linear_cka", "linear_cka_at_layer", "erank_ratio", "pr_ratio")


def _probe_columns(rec: dict, probe: str, summary_layer: int) -> dict[str, float]:
    """``<probe>:<column>`` for :data:`PROBE_COLUMNS` from the cell's ``probes[probe]``
    (NaN when that probe was skipped for this cell)."""
    entry = (rec.get("probes") or {}).get(probe)
    out = {f"{probe}:{c}": math.nan for c in PROBE_COLUMNS}
    if not entry or not entry.get("layers"):
        return out
    sub = {"layers": entry["layers"], "metrics": entry["metrics"]}
    layers = entry["layers"]
    cka = _layer_series(sub, "linear_cka")
    out[f"{probe}:mean_linear_cka"] = _nanmean(cka)
    if -len(layers) <= summary_layer < len(layers):
        i = summary_layer
        out[f"{probe}:linear_cka_at_layer"] = float(cka[i])
        for col, metric in (("erank_ratio", "effective_rank"), ("pr_ratio", "participation_ratio")):
            out[f"{probe}:{col}"] = _ratio(
                float(_layer_series(sub, f"{metric}_tuned")[i]),
                float(_layer_series(sub, f"{metric}_base")[i]),
            )
    return out


def aggregate(rows: list[dict], confidence: float = 0.95) -> list[dict]:
    """Rows grouped over seeds (first-appearance order): mean and t-interval per column."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[c] for c in GROUP_COLUMNS), []).append(r)
    numeric = [c for c in (rows[0] if rows else {}) if c not in _NOT_AGGREGATED]
    out = []
    for key, members in groups.items():
        agg = dict(zip(GROUP_COLUMNS, key))
        agg["seeds"] = " ".join(str(m["seed"]) for m in members)
        agg["n_seeds"] = len(members)
        agg["summary_layer"] = members[0].get("summary_layer")
        for c in numeric:
            mean, low, high, _ = mean_ci([m.get(c) for m in members], confidence)
            agg[c], agg[f"{c}_ci_low"], agg[f"{c}_ci_high"] = mean, low, high
        out.append(agg)
    return out


def build_tables(
    records: list[dict], summary_layer: int = -1, confidence: float = 0.95
) -> StudyTables:
    cells = cell_rows(records, summary_layer)
    layer = next((r["summary_layer"] for r in cells if r.get("summary_layer")), None)
    summary, evidence = aggregate(cells, confidence), cell_evidence(records, summary_layer)
    one_seed_intervals(summary, cells, evidence, confidence)
    return StudyTables(long_rows(records), cells, summary, layer, confidence, evidence)


def _column_replicates(rec: dict, summary_layer: int) -> dict[str, np.ndarray]:
    """The cell's jackknife replicates (``rec["jackknife"]``, delete-one-block over the probe
    rows) carried through the same formulas :func:`cell_rows` applies to its estimates: one
    (B,) array per column it can rebuild (a column needing a layer without replicates is
    left out)."""
    jk = rec.get("jackknife") or {}
    reps = jk.get("replicates") or {}
    layers = rec.get("layers") or []
    if not reps or not layers:
        return {}

    def rep(layer: str, metric: str) -> np.ndarray | None:
        r = reps.get(layer, {}).get(metric)
        return None if r is None else np.asarray([_num(x) for x in r], dtype=np.float64)

    out: dict[str, np.ndarray] = {}
    finite = [
        layer
        for layer in layers
        if math.isfinite(_num(rec["metrics"].get(layer, {}).get("linear_cka")))
    ]
    ckas = [rep(layer, "linear_cka") for layer in finite]
    if ckas and all(r is not None for r in ckas) and len({r.size for r in ckas}) == 1:
        out["mean_linear_cka"] = np.mean(ckas, axis=0)
    if -len(layers) <= summary_layer < len(layers):
        layer = layers[summary_layer]
        cka, eb, et = (
            rep(layer, "linear_cka"),
            rep(layer, "effective_rank_base"),
            rep(layer, "effective_rank_tuned"),
        )
        pb, pt = rep(layer, "participation_ratio_base"), rep(layer, "participation_ratio_tuned")
        with np.errstate(divide="ignore", invalid="ignore"):
            if cka is not None:
                out["linear_cka_at_layer"] = cka
            if eb is not None and et is not None:
                out["erank_base"], out["erank_tuned"] = eb, et
                out["erank_delta"], out["erank_ratio"] = et - eb, et / eb
            if pb is not None and pt is not None:
                out["pr_base"], out["pr_tuned"], out["pr_ratio"] = pb, pt, pt / pb
    return out


def _independent_items(rec: dict) -> int | None:
    """How many independent held-out items the cell's score averages: its evaluated items,
    except for shapes-world VQA, where the several questions about one image are not
    independent and the images (``n_eval``) are counted instead."""
    n = rec.get("n_eval_items")
    tc = rec.get("train_config") or rec.get("eval_config") or {}
    if (
        n
        and rec["cell"].get("task") == "vqa"
        and not tc.get("data")
        and isinstance(tc.get("n_eval"), int)
    ):
        return min(int(n), tc["n_eval"])
    return n


def cell_evidence(records: list[dict], summary_layer: int = -1) -> dict[str, dict]:
    """``{label: {"replicates": {column: (B,) array}, "n_eval_items": n or None}}`` per cell
    (``n_eval_items``: the independent held-out items, :func:`_independent_items`)."""
    return {
        rec["label"]: {
            "replicates": _column_replicates(rec, summary_layer),
            "layers": _layer_replicates(rec),
            "n_eval_items": _independent_items(rec),
        }
        for rec in records
    }


def _layer_replicates(rec: dict) -> dict[str, dict[str, np.ndarray]]:
    """``{layer: {metric: (B,) replicates}}`` the cell kept (per-layer figures' bands)."""
    reps = (rec.get("jackknife") or {}).get("replicates") or {}
    return {
        layer: {m: np.asarray([_num(x) for x in r], dtype=np.float64) for m, r in per.items()}
        for layer, per in reps.items()
    }


def one_seed_intervals(
    summary: list[dict], cells: list[dict], evidence: dict, confidence: float = 0.95
) -> None:
    """Give a one-seed group's columns the claim checks' one-seed intervals, in place: the
    delete-one-block jackknife over the probe rows for the representation columns the cell
    kept replicates of, ``p(1 − p)/n`` over the held-out items for accuracies
    (:mod:`repspace.study.evidence`); ``interval`` names the source per row (``seeds`` for
    two or more seeds).  A column neither covers keeps its NaN interval."""
    from repspace.study.evidence import ROUTE_WORDS, Side, combine

    for agg in summary:
        if agg["n_seeds"] >= 2:
            agg["interval"] = ROUTE_WORDS["seeds"]
            continue
        side, routes = Side(group_cells(cells, agg), evidence), {}
        for col in [c for c in agg if f"{c}_ci_low" in agg]:
            if math.isfinite(agg[f"{col}_ci_low"]):
                continue
            score = score_name(agg["task"], col)
            e = combine([(1.0, side)], col, score_name=score, level=confidence, seeds=False)
            if e.has_interval:
                agg[f"{col}_ci_low"], agg[f"{col}_ci_high"] = e.low, e.high
                routes[e.route] = None
        agg["interval"] = (
            "one seed: " + "; ".join(ROUTE_WORDS[r] for r in ("rows", "items") if r in routes)
            if routes
            else "one seed: none"
        )


# -- writing ------------------------------------------------------------------------------
def main_slice(summary: list[dict], task: str) -> list[dict]:
    """Per method (study order): the row at its first budget and largest data fraction."""
    rows = [r for r in summary if r["task"] == task]
    out: dict[str, dict] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        first_budget = mine[0]["budget"]
        mine = [r for r in mine if r["budget"] == first_budget]
        fractions = [r["data_fraction"] for r in mine if r["data_fraction"] is not None]
        top = max(fractions) if fractions else None
        out[method] = next(r for r in mine if r["data_fraction"] == top)
    return list(out.values())


def _columns(rows: list[dict]) -> list[str]:
    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    return list(cols)


def _csv_value(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(v) if isinstance(v, float) else str(v)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    cols = _columns(rows)
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_csv_value(r.get(c)) for c in cols])
    return buf.getvalue()


def _write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = _columns(rows)
    data = {c: [r.get(c) for r in rows] for c in cols}
    for c, values in data.items():  # mixed budget types (int, str): store as text
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1 and not kinds <= {int, float}:
            data[c] = [None if v is None else str(v) for v in values]
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(data), str(tmp))
    return path


def write_tables(tables: StudyTables, folder: Path) -> tuple[dict[str, Path], list[str]]:
    """CSV always; parquet when pyarrow imports.  Returns ``(files, notes)``."""
    files, notes = {}, []
    named = {"metrics_long": tables.long, "cells": tables.cells, "summary": tables.summary}
    for name, rows in named.items():
        files[f"{name}.csv"] = atomic_write_text(folder / f"{name}.csv", to_csv(rows))
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        notes.append("parquet tables skipped: pyarrow is not installed (pip install pyarrow)")
    else:
        for name, rows in named.items():
            files[f"{name}.parquet"] = _write_parquet(folder / f"{name}.parquet", rows)
    return files, notes
