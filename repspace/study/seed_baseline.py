"""Seed-to-seed baseline: is "method A moved the representation" more than run-to-run noise?

Two seeds of one method (same task, budget and data fraction) are compared *with each other*:
seed a's tuned model on the base side, seed b's on the tuned side, on the study's probe and
compare settings (:func:`repspace.compare.compare`, seed a's run as the base and seed b's
run applied onto the study's base).  Per layer ℓ of every such pair:

| column | meaning |
|---|---|
| ``cka_seed_to_seed`` | linear CKA(tuned_a, tuned_b) |
| ``cka_seed_to_seed_debiased`` | the same, debiased (when the compare computed it) |
| ``cka_base_to_tuned`` | mean of linear CKA(base, tuned_a) and CKA(base, tuned_b) (from the cells) |
| ``moved`` | 1 − ``cka_base_to_tuned``: how far the method moved the base |
| ``seed_variation`` | 1 − ``cka_seed_to_seed``: how far two runs of it differ |
| ``movement_ratio`` | ``moved`` / ``seed_variation`` (NaN when the seeds agree exactly) |

A ratio well above 1 says the method moved the representation further than two of its own
runs differ; near 1, the "movement" is what a different seed alone would give.  Pairs are
consecutive seeds in the study's seed order (k seeds: k − 1 compares per group).  Each
pair's result is cached in ``<study>/seed_baseline/<label_a>--<label_b>.json`` under both
cells' keys and the compare settings, so a rerun compares nothing that is unchanged.  The
table is ``results/seed_baseline.csv`` (tidy: one row per pair and layer).

Seeds of the ``base`` method are the same model and are skipped; a group with one seed, or
whose runs are missing, is listed in the notes.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Callable

from repspace.outputs import atomic_write_text
from repspace.study.results import GROUP_COLUMNS, _ident, _num, to_csv

__all__ = ["seed_pairs", "seed_baseline", "SEED_BASELINE_SCHEMA", "COLUMNS"]

SEED_BASELINE_SCHEMA = "repspace.study.seed_pair"
COLUMNS = (
    "cka_seed_to_seed",
    "cka_seed_to_seed_debiased",
    "cka_base_to_tuned",
    "moved",
    "seed_variation",
    "movement_ratio",
)


def seed_pairs(records: list[dict]) -> tuple[list[tuple[dict, dict]], list[str]]:
    """Consecutive-seed pairs of trained cells per (task, method, budget, data fraction).

    Returns ``(pairs, notes)``; the notes name groups that have no pair."""
    groups: dict[tuple, list[dict]] = {}
    for rec in records:
        ident = _ident(rec)
        if rec.get("run_dir") is None:  # the base cell: every seed is the same model
            continue
        groups.setdefault(tuple(ident[c] for c in GROUP_COLUMNS), []).append(rec)
    pairs, notes = [], []
    for members in groups.values():
        if len(members) < 2:
            notes.append(
                f"seed baseline: {members[0]['label']} has no second seed; add seeds "
                "to the study to get one"
            )
            continue
        members = sorted(members, key=lambda r: r["cell"]["seed"])
        pairs.extend(zip(members, members[1:]))
    return pairs, notes


def _pair_path(out: Path, a: dict, b: dict) -> Path:
    return out / "seed_baseline" / f"{a['label']}--{b['label']}.json"


def _cached(path: Path, a: dict, b: dict, settings: dict) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if (
        not isinstance(data, dict)
        or data.get("schema") != SEED_BASELINE_SCHEMA
        or data.get("keys") != [a["key"], b["key"]]
        or data.get("compare") != settings
        or not isinstance(data.get("metrics"), dict)
        or not isinstance(data.get("layers"), list)
    ):
        return None
    return data


def _write_json(path: Path, payload: dict) -> None:
    atomic_write_text(path, json.dumps(payload, indent=1, allow_nan=True))


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b != 0 else math.nan


def _rows(a: dict, b: dict, pair: dict) -> list[dict]:
    ident = {c: _ident(a)[c] for c in GROUP_COLUMNS}
    rows = []
    for i, layer in enumerate(pair["layers"]):
        m = pair["metrics"].get(layer, {})
        seeds = _num(m.get("linear_cka"))
        to_base = [_num(r["metrics"].get(layer, {}).get("linear_cka")) for r in (a, b)]
        base = sum(to_base) / 2 if all(math.isfinite(v) for v in to_base) else math.nan
        moved, variation = 1.0 - base, 1.0 - seeds
        rows.append(
            {
                **ident,
                "seed_a": a["cell"]["seed"],
                "seed_b": b["cell"]["seed"],
                "cell_a": a["label"],
                "cell_b": b["label"],
                "layer": layer,
                "layer_index": i,
                "cka_seed_to_seed": seeds,
                "cka_seed_to_seed_debiased": _num(m.get("linear_cka_debiased")),
                "cka_base_to_tuned": base,
                "moved": moved,
                "seed_variation": variation,
                "movement_ratio": _ratio(moved, variation),
            }
        )
    return rows


def seed_baseline(
    result, compare_fn: Callable | None = None, force: bool = False, figures: bool = True
) -> list[dict]:
    """Compare consecutive seeds of every trained group of a finished study.

    ``result``: a :class:`~repspace.study.runner.StudyResult` (its ``records``, ``config``
    and ``output_dir``).  ``compare_fn(base, [tuned], base_override=..., **settings)`` defaults
    to :func:`repspace.compare.compare`.  Writes ``results/seed_baseline.csv`` (and, with
    ``figures``, ``figures/seed_baseline.{pdf,png}``), adds them to ``result.files``, the rows
    to ``result.seed_baseline`` (for ``summary.md``) and notes to ``result.notes``; returns the
    rows.  A pair whose compare fails is noted and skipped (the others still run).
    """
    from repspace.study import comparing

    compare_fn = compare_fn or comparing.default_compare
    out = Path(result.output_dir)
    settings = result.config.compare.to_dict()
    pairs, notes = seed_pairs(result.records)
    rows: list[dict] = []
    for a, b in pairs:
        path = _pair_path(out, a, b)
        data = None if force else _cached(path, a, b, settings)
        if data is None:
            run_a, run_b = (str((out / r["run_dir"]).resolve()) for r in (a, b))
            missing = [r["label"] for r, d in ((a, run_a), (b, run_b)) if not Path(d).exists()]
            if missing:
                notes.append(
                    f"seed baseline: the run of {missing[0]} is missing; rerun the study "
                    "with --force to retrain it"
                )
                continue
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # two runs may agree on early layers exactly
                    res = compare_fn(
                        run_a,
                        [run_b],
                        **{
                            **comparing.compare_settings(result.config),
                            "base_override": result.config.base,
                        },
                    )
            except Exception as exc:  # noqa: BLE001 - one failed pair must not sink the table
                notes.append(
                    f"seed baseline {a['label']} vs {b['label']} failed: "
                    f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                )
                continue
            name = res.tuned_names[0]
            data = {
                "schema": SEED_BASELINE_SCHEMA,
                "schema_version": 1,
                "keys": [a["key"], b["key"]],
                "cells": [a["label"], b["label"]],
                "compare": settings,
                "layers": list(res.layers),
                "metrics": {
                    layer: dict(res.metrics.get(name, {}).get(layer, {})) for layer in res.layers
                },
                "seconds": time.perf_counter() - t0,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            data = json.loads(json.dumps(data, allow_nan=True, default=float))
            _write_json(path, data)
        rows.extend(_rows(a, b, data))
    csv_path = atomic_write_text(out / "results" / "seed_baseline.csv", to_csv(rows))
    files = getattr(result, "files", None)
    if isinstance(files, dict):
        files["seed_baseline.csv"] = csv_path
    if figures and rows:
        paths = plot_seed_baseline(rows, out / "figures" / "seed_baseline")
        if isinstance(files, dict):
            files.update({f"seed_baseline{p.suffix}": p for p in paths})
    if hasattr(result, "notes"):
        result.notes.extend(notes)
    result.seed_baseline = rows
    return rows


def _groups(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        budget = (
            "" if r.get("budget") is None else f" {r.get('budget_field') or 'budget'}={r['budget']}"
        )
        out.setdefault(f"{r['task']} {r['method']}{budget} d={r['data_fraction']}", []).append(r)
    return out


def _mean(values) -> float:
    v = [x for x in values if isinstance(x, (int, float)) and math.isfinite(x)]
    return sum(v) / len(v) if v else math.nan


def summary_lines(rows: list[dict], figure: bool = True) -> list[str]:
    """The ``summary.md`` section: per group, means over its seed pairs and layers."""
    lines = [
        "## Seed-to-seed baseline",
        "",
        "Consecutive seeds of each method compared with each other. `moved` = 1 − CKA to the "
        "base (mean of the two seeds), `seed variation` = 1 − CKA between the seeds, ratio = "
        "moved / seed variation (means over layers and seed pairs; per layer in "
        "`results/seed_baseline.csv`). A ratio near 1: the method's movement is what "
        "another seed alone gives.",
        "",
        "| group | pairs | mean CKA seed↔seed | moved | seed variation | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, members in _groups(rows).items():
        pairs = len({(r["cell_a"], r["cell_b"]) for r in members})
        lines.append(
            f"| {name} | {pairs} | {_mean(r['cka_seed_to_seed'] for r in members):.4f} | "
            f"{_mean(r['moved'] for r in members):.4f} | "
            f"{_mean(r['seed_variation'] for r in members):.4f} | "
            f"{_mean(r['movement_ratio'] for r in members):.3g} |"
        )
    lines.append("")
    if figure:
        lines += [
            "![seed_baseline](figures/seed_baseline.png)",
            "",
            "*Seed baseline.* Per layer: how far each method moved the base (1 − CKA to the "
            "base, filled markers) against how far two of its seeds differ (1 − CKA seed to "
            "seed, hollow markers, dotted), in the method's colour and marker; means over seed pairs. (vector: `figures/seed_baseline.pdf`)",
            "",
        ]
    return lines


def plot_seed_baseline(rows: list[dict], stem: Path) -> list[Path]:
    """Per layer and group: 1 − CKA to the base (filled markers, the group's line) and
    1 − CKA between seeds (hollow markers, dotted), each group in its method's colour and
    marker (:func:`repspace.report.style.styles_for`), towers split, the legend outside."""
    from repspace.report.figures_layout import (
        control_key,
        figure_legend,
        figure_title,
        grid,
        panel_width,
        plot_with_control,
    )
    from repspace.report.plots import layer_axis, save_figure
    from repspace.report.style import paper_style, styles_for

    groups = _groups(rows)
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    styles = styles_for(list(groups))
    with paper_style():
        fig, axes = grid(1, 1, panel_width(len(layers)), 3.0)
        ax = axes[0, 0]
        for name, members in groups.items():
            st = styles[name]
            per = lambda key: [_mean(r[key] for r in members if r["layer"] == l) for l in layers]  # noqa: E731
            plot_with_control(ax, layers, per("moved"), per("seed_variation"), st, name)
        layer_axis(ax, layers)
        ax.set_ylabel("1 − linear CKA")
        handles, labels = ax.get_legend_handles_labels()
        key, key_labels = control_key(
            "moved from the base (filled)", "seed to seed (hollow, dotted)"
        )
        figure_title(fig, "Moved from the base vs seed noise")
        figure_legend(fig, handles + key, labels + key_labels)
        return save_figure(fig, stem)
