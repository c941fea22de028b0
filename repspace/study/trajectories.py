"""Distortion trajectories of a tracked study (``track_every``): mean ± CI over seeds per step.

Each trained cell of a study with ``track_every = N`` keeps the trajectory its training wrote
(``train(track_every=N)``: the tracker's metrics per layer at step 0, every N steps and the
last step; :mod:`repspace.track`).  Per group of cells (task, method, budget, data fraction)
and per measured step, :func:`trajectory_rows` takes the mean over seeds and its 95 %
Student-t interval (n − 1 dof, :func:`repspace.study.results.mean_ci`; NaN with one seed) of
every tracked metric per layer, plus ``mean_linear_cka`` — each seed's linear CKA averaged
over the tracked layers, then over seeds (``layer`` = ``"mean over layers"``, ``layer_index``
-1).  ``results/trajectory.csv`` is that tidy table; ``figures/trajectory`` draws
``mean_linear_cka`` against the step for each method's main slice
(:func:`repspace.track.figures.plot_highlighted`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from repspace.study.results import GROUP_COLUMNS, main_slice, mean_ci, to_csv

__all__ = [
    "MEAN_LAYER",
    "SUMMARY_METRIC",
    "trajectory_figure",
    "trajectory_rows",
    "write_trajectories",
]

MEAN_LAYER = "mean over layers"
SUMMARY_METRIC = "mean_linear_cka"


def _group(rec: dict) -> tuple:
    c = rec["cell"]
    return tuple(c.get(k) for k in GROUP_COLUMNS)


def _per_seed(records: list[dict]) -> dict[tuple, list]:
    """``{group: [Trajectory per seed]}`` of the records that carry one (study order)."""
    from repspace.track.trajectory import Trajectory

    out: dict[tuple, list] = {}
    for rec in records:
        doc = rec.get("trajectory")
        if doc:
            out.setdefault(_group(rec), []).append(Trajectory.from_dict(doc))
    return out


def _layer_mean(traj, step: int, metric: str) -> float:
    vals = [traj.at(step).get(layer, {}).get(metric, math.nan) for layer in traj.layers]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def trajectory_rows(records: list[dict], confidence: float = 0.95) -> list[dict]:
    """The tidy table (module doc): one row per group × step × layer × metric with ``mean``,
    ``ci_low``, ``ci_high`` and ``n_seeds`` (the seeds measured at that step)."""
    rows = []
    for key, trajs in _per_seed(records).items():
        ident = dict(zip(GROUP_COLUMNS, key))
        layers = list(dict.fromkeys(layer for t in trajs for layer in t.layers))
        metrics = list(dict.fromkeys(m for t in trajs for m in t.metrics))
        for step in sorted({s for t in trajs for s in t.steps}):
            at = [t for t in trajs if step in t.values]
            if "linear_cka" in metrics:
                mean, low, high, n = mean_ci(
                    [_layer_mean(t, step, "linear_cka") for t in at], confidence
                )
                rows.append(
                    {
                        **ident,
                        "step": step,
                        "layer": MEAN_LAYER,
                        "layer_index": -1,
                        "metric": SUMMARY_METRIC,
                        "mean": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "n_seeds": n,
                    }
                )
            for i, layer in enumerate(layers):
                for metric in metrics:
                    vals = [t.at(step).get(layer, {}).get(metric) for t in at]
                    mean, low, high, n = mean_ci(vals, confidence)
                    if n:
                        rows.append(
                            {
                                **ident,
                                "step": step,
                                "layer": layer,
                                "layer_index": i,
                                "metric": metric,
                                "mean": mean,
                                "ci_low": low,
                                "ci_high": high,
                                "n_seeds": n,
                            }
                        )
    return rows


def trajectory_figure(rows: list[dict], summary: list[dict], stem: Path) -> list[Path] | str:
    """``mean_linear_cka`` against the step, one panel per method's main slice (per task),
    the others of its task in grey behind it; the band: 95 % over seeds."""
    from repspace.track.figures import plot_highlighted

    panels = []
    tasks = list(dict.fromkeys(r["task"] for r in summary))
    for task in tasks:
        for srow in main_slice(summary, task):
            mine = sorted(
                (
                    r
                    for r in rows
                    if r["metric"] == SUMMARY_METRIC and all(r[k] == srow[k] for k in GROUP_COLUMNS)
                ),
                key=lambda r: r["step"],
            )
            if not mine:
                continue
            panels.append(
                {
                    "label": srow["method"] if len(tasks) == 1 else f"{task}: {srow['method']}",
                    "method": srow["method"],
                    "context": task,
                    "steps": np.array([r["step"] for r in mine]),
                    "mean": np.array([r["mean"] for r in mine], dtype=np.float64),
                    "low": np.array([r["ci_low"] for r in mine], dtype=np.float64),
                    "high": np.array([r["ci_high"] for r in mine], dtype=np.float64),
                }
            )
    if not panels:
        return "trajectory skipped: no cell of the main slice has a trajectory"
    return plot_highlighted(
        panels,
        stem,
        reference=1.0,
        ylabel="mean linear CKA to the base\n(over the tracked layers)",
        title="Distortion during training: mean linear CKA to the base, per method",
    )


def write_trajectories(result, figures: bool = True) -> None:
    """``results/trajectory.csv`` and ``figures/trajectory.{pdf,png}`` when some cell of
    ``result`` (a :class:`~repspace.study.runner.StudyResult`) tracked its training."""
    from repspace.outputs import atomic_write_text

    rows = trajectory_rows(result.records, result.tables.confidence)
    if not rows:
        return
    out = Path(result.output_dir)
    result.files["trajectory.csv"] = atomic_write_text(
        out / "results" / "trajectory.csv", to_csv(rows)
    )
    if figures:
        made = trajectory_figure(rows, result.tables.summary, out / "figures" / "trajectory")
        if isinstance(made, str):
            result.notes.append(made)
        else:
            result.files.update({p.name: p for p in made})
