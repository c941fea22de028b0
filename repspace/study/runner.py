"""`run_study`: train and compare every grid cell, cached, resumable, one progress bar.

Study folder::

    <out>/study.json                  the resolved config and the grid (cell keys)
    <out>/runs/<label>-<key10>/       each cell's training run (a compare-able checkpoint)
    <out>/cells/<label>-<key10>.json  each finished cell: scores, params, per-layer metrics
    <out>/results/                    tables (see :mod:`repspace.study.results`)
    <out>/figures/                    figures (see :mod:`repspace.study.figures`)

Caching: a cell whose ``cells/*.json`` exists (same key) is not recomputed.  The JSON is
written atomically after the compare, so an interruption loses at most the running cell,
and its trainer resumes from its last save on the next run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from repspace import __version__
from repspace.outputs import atomic_write_text, clean_stale
from repspace.study import comparing
from repspace.study.config import StudyConfig
from repspace.study.grid import (
    Cell,
    base_eval_config,
    cell_key,
    expand_grid,
    track_settings,
    train_config_for,
)
from repspace.study.writing import write_results

__all__ = ["PlannedCell", "StudyResult", "plan_study", "run_study", "CELL_SCHEMA"]

CELL_SCHEMA = "repspace.study.cell"


@dataclass
class PlannedCell:
    cell: Cell
    key: str
    run_dir: Path | None  # None for the base cell
    record_path: Path
    train_config: Any = None  # TrainConfig (None for the base cell)

    @property
    def label(self) -> str:
        return self.cell.label

    @property
    def done(self) -> bool:
        return _read_record(self.record_path, self.key) is not None


@dataclass
class StudyResult:
    """What :func:`run_study` produced; ``records`` are the cells' JSON payloads."""

    config: StudyConfig
    output_dir: Path
    records: list[dict]
    computed: list[str] = field(default_factory=list)  # labels run this time
    cached: list[str] = field(default_factory=list)  # labels loaded from cells/
    failed: dict[str, str] = field(default_factory=dict)  # label -> one-line error
    tables: Any = None  # results.StudyTables
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seed_baseline: list[dict] = field(default_factory=list)  # see repspace.study.seed_baseline


def _write_json(path: Path, payload: dict) -> None:
    atomic_write_text(path, json.dumps(_jsonable(payload), indent=1, sort_keys=False))


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item") and not isinstance(v, (dict, list, tuple, str)):
        return _jsonable(v.item())
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _read_record(path: Path, key: str) -> dict | None:
    """The finished cell's payload, or None (missing, unreadable or another key)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    # A corrupt or foreign cell file is simply not a cached result: the cell is recomputed.
    if (
        not isinstance(record, dict)
        or record.get("schema") != CELL_SCHEMA
        or record.get("key") != key
    ):
        return None
    shapes = (
        ("metrics", dict),
        ("layers", list),
        ("scores", dict),
        ("params", dict),
        ("cell", dict),
    )
    if not all(isinstance(record.get(k), t) for k, t in shapes):
        return None
    run_dir = record.get("run_dir")
    if run_dir is not None:  # it is compared again later: it must be this study's own run
        from repspace.checkpoints import CheckpointError
        from repspace.checkpoints.confine import confined

        try:
            confined(path.parent.parent, run_dir, f"{path}: run_dir")
        except CheckpointError:
            return None
    return record


def plan_study(config: StudyConfig, output_dir: str | Path | None = None) -> list[PlannedCell]:
    """Every cell with its key and paths (builds, and so validates, every TrainConfig)."""
    out = Path(output_dir) if output_dir is not None else config.study_dir()
    planned = []
    for cell in expand_grid(config):
        if cell.is_base:
            key = cell_key(config, cell)
            stem = f"{cell.label}-{key[:10]}"
            planned.append(PlannedCell(cell, key, None, out / "cells" / f"{stem}.json"))
            continue
        try:
            cfg = train_config_for(config, cell)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{config.source}: cell {cell.label}: {exc}") from None
        key = cell_key(config, cell, cfg)
        stem = f"{cell.label}-{key[:10]}"
        cfg.output_dir = str(out / "runs" / stem)
        planned.append(
            PlannedCell(cell, key, out / "runs" / stem, out / "cells" / f"{stem}.json", cfg)
        )
    return planned


def _flat_scores(scores: dict | None, prefix: str = "") -> dict[str, float]:
    """``{"vqa_accuracy": 0.5, "per_type": {"color": 0.4}}`` → ``{..., "per_type/color": 0.4}``."""
    out: dict[str, float] = {}
    for k, v in (scores or {}).items():
        if isinstance(v, dict):
            out.update(_flat_scores(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
    return out


def probe_label(source: str) -> str:
    """Short column prefix of a probe source: ``builtin`` -> ``task`` (the shapes world, the
    study tasks' own distribution), ``general`` -> ``general``, a file -> its stem."""
    return {"builtin": "task", "general": "general"}.get(source, Path(source).stem or source)


def default_train(cfg, progress: bool = False, **track):
    """:func:`repspace.training.train`; ``track``: its ``track_every`` / ``track_probe`` /
    ``track_samples`` (:func:`repspace.study.grid.track_settings`)."""
    from repspace.training import train

    return train(cfg, progress=progress, **track)


def default_base_scores(config: StudyConfig, cell: Cell) -> dict:
    """Task scores of the untrained base on the cell's held-out split (the trainer's own
    evaluation: same records, same greedy decoding, same scorer)."""
    from repspace.training import evaluate_base

    return evaluate_base(base_eval_config(config, cell))


def _params(result) -> dict:
    p = getattr(result, "params", None)
    if p is None:
        return {"trainable": None, "total": None}
    return {"trainable": int(p.trainable), "total": int(p.total)}


# The per-layer metrics whose jackknife replicates a cell keeps (for the claim checks'
# intervals with one seed: repspace.study.evidence); the rest of the report's are not needed.
JACKKNIFE_METRICS = (
    "linear_cka",
    "effective_rank_base",
    "effective_rank_tuned",
    "participation_ratio_base",
    "participation_ratio_tuned",
)


def _jackknife(result, name: str) -> dict | None:
    """``{"blocks", "level", "replicates": {layer: {metric: [B values]}}}`` of the primary
    probe's compare (delete-one-block jackknife over the probe rows, the same blocks in every
    cell: row i in block i mod B), or None when the compare kept no replicates."""
    reps = (getattr(result, "replicates", None) or {}).get(name) or {}
    kept = {
        layer: {m: [float(x) for x in per[m]] for m in JACKKNIFE_METRICS if m in per}
        for layer, per in reps.items()
    }
    kept = {layer: per for layer, per in kept.items() if per}
    if not kept:
        return None
    info = result.settings.get("intervals", {}) if isinstance(result.settings, dict) else {}
    return {
        "method": info.get("method", "jackknife"),
        "blocks": len(next(iter(next(iter(kept.values())).values()))),
        "level": info.get("level", 0.95),
        "replicates": kept,
    }


def _trajectory(run_dir: Path, label: str) -> dict:
    """The run's ``track/trajectory.json`` (written by ``train(track_every=...)``)."""
    from repspace.track.trajectory import read_trajectory

    path = run_dir / "track" / "trajectory.json"
    if not path.is_file():
        raise RuntimeError(
            f"training of {label} was asked to track its distortion but wrote no {path}"
        )
    return read_trajectory(path).to_dict()


def _run_cell(
    config: StudyConfig,
    pc: PlannedCell,
    train_fn,
    compare_fn,
    base_score_fn,
    force: bool,
    out: Path,
) -> dict:
    t0 = time.perf_counter()
    cmp_kwargs = comparing.compare_settings(config)
    if pc.cell.is_base:
        scores = base_score_fn(config, pc.cell)
        params = {"trainable": 0, "total": None}
        # evaluate_base's scores say how many items they average (a stub's dict does not)
        run_rel, trajectory = None, None
        n_eval_items = getattr(scores, "n_eval_items", None)
        t1 = time.perf_counter()
        with warnings.catch_warnings():  # base vs itself: identical states are the point
            warnings.filterwarnings("ignore", message=".*bit-identical to the base.*")
            result = compare_fn(config.base, [config.base], **cmp_kwargs)
    else:
        if force and pc.run_dir.exists():
            shutil.rmtree(pc.run_dir)
        track = track_settings(config)  # {} unless the study tracks: stub trainers need no kwargs
        trained = train_fn(pc.train_config, progress=False, **track)
        if getattr(trained, "finished", True) is False:
            raise RuntimeError(f"training of {pc.label} stopped before its last step")
        scores, params = getattr(trained, "scores", {}), _params(trained)
        run_dir = Path(trained.run_dir)
        trajectory = _trajectory(run_dir, pc.label) if track else None
        n_eval_items = (getattr(trained, "manifest", None) or {}).get("n_eval_items")
        run_rel = os.path.relpath(run_dir.resolve(), out.resolve())
        t1 = time.perf_counter()
        result = compare_fn(config.base, [str(run_dir)], **cmp_kwargs)
    name = result.tuned_names[0]
    metrics = {layer: dict(result.metrics.get(name, {}).get(layer, {})) for layer in result.layers}
    spec = config.base if pc.cell.is_base else str(run_dir)
    probes = {
        probe_label(config.compare.probes[0]): {
            "source": config.compare.probes[0],
            "layers": list(result.layers),
            "metrics": metrics,
        }
    }
    probe_errors = {}
    for source in config.compare.probes[1:]:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*bit-identical to the base.*")
                extra = compare_fn(
                    config.base, [spec], **comparing.compare_settings(config, source)
                )
        except ValueError as exc:  # e.g. general text on a closed-vocabulary model: recorded
            probe_errors[probe_label(source)] = f"{source}: {' '.join(str(exc).split())}"
            continue
        xname = extra.tuned_names[0]
        probes[probe_label(source)] = {
            "source": source,
            "layers": list(extra.layers),
            "metrics": {
                layer: dict(extra.metrics.get(xname, {}).get(layer, {})) for layer in extra.layers
            },
        }
    record = {
        "schema": CELL_SCHEMA,
        "schema_version": 1,
        "key": pc.key,
        "label": pc.label,
        "cell": pc.cell.to_dict(),
        "scores": _flat_scores(scores),
        "params": params,
        "run_dir": run_rel,
        "layers": list(result.layers),
        "metrics": metrics,
        "jackknife": _jackknife(result, name),
        "n_eval_items": n_eval_items,
        "trajectory": trajectory,
        "probes": probes,
        "probe_errors": probe_errors,
        "train_config": pc.train_config.to_dict() if pc.train_config is not None else None,
        # how the untrained base was scored (its held-out split: the items its interval counts)
        "eval_config": base_eval_config(config, pc.cell).to_dict() if pc.cell.is_base else None,
        "compare": config.compare.to_dict(),
        "repspace": __version__,
        "seconds": {"train": t1 - t0, "compare": time.perf_counter() - t1},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_json(pc.record_path, record)
    return json.loads(json.dumps(_jsonable(record)))  # same shape as a cached record


def run_study(
    config: StudyConfig,
    output_dir: str | Path | None = None,
    progress: bool = True,
    train_fn: Callable | None = None,
    compare_fn: Callable | None = None,
    base_score_fn: Callable | None = None,
    force: bool = False,
    write_outputs: bool = True,
    figures: bool = True,
) -> StudyResult:
    """Run (or finish) the study; returns a :class:`StudyResult`.

    ``train_fn(train_config, progress=False[, track_every=, track_probe=, track_samples=])
    -> TrainResult`` (the tracking keywords only when the study sets ``track_every``; default
    :func:`repspace.training.train`), ``compare_fn(base, [tuned], **settings) ->
    CompareResult`` (default :func:`repspace.compare.compare`) and
    ``base_score_fn(config, cell) -> scores`` are the seams a test or another backend
    plugs into.  ``force``: recompute every cell (its run folder is deleted first).
    A cell that fails is reported in ``result.failed`` and skipped (not cached); the
    other cells still run.  ``KeyboardInterrupt`` stops at once; finished cells are kept.
    """
    out = Path(output_dir) if output_dir is not None else config.study_dir()
    train_fn = train_fn or default_train
    compare_fn = compare_fn or comparing.default_compare
    base_score_fn = base_score_fn or default_base_scores
    planned = plan_study(config, out)
    out.mkdir(parents=True, exist_ok=True)
    with study_lock(out):
        for folder in (out, out / "cells", out / "results", out / "figures"):
            clean_stale(folder)  # temporary files of a killed study (none can be running here)
        return _run_planned(
            config,
            out,
            planned,
            progress,
            train_fn,
            compare_fn,
            base_score_fn,
            force,
            write_outputs,
            figures,
        )


@contextlib.contextmanager
def study_lock(out: Path):
    """Hold ``out/.repspace-study.lock`` for the whole run: a second study on the same folder
    fails at once with one line, instead of both training and writing the same cells."""
    import fcntl

    lock = open(out / ".repspace-study.lock", "a+")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ValueError(
                f"{out}: another repspace study is running in this folder; wait for "
                "it to finish or pass another -o"
            ) from None
        yield
    finally:
        lock.close()  # closing releases the lock


def _run_planned(
    config,
    out,
    planned,
    progress,
    train_fn,
    compare_fn,
    base_score_fn,
    force,
    write_outputs,
    figures,
) -> StudyResult:
    _write_json(
        out / "study.json",
        {
            "schema": "repspace.study",
            "schema_version": 1,
            "repspace": __version__,
            "config": config.to_dict(),
            "source": config.source,
            "cells": [{"label": p.label, "key": p.key, **p.cell.to_dict()} for p in planned],
        },
    )
    result = StudyResult(config, out, [])
    records: dict[str, dict] = {}
    if not force:
        for p in planned:
            rec = _read_record(p.record_path, p.key)
            if rec is not None:
                records[p.label] = rec
                result.cached.append(p.label)
    todo = [p for p in planned if p.label not in records]
    bar = tqdm(
        total=len(planned),
        initial=len(planned) - len(todo),
        desc=f"study {config.name}",
        unit="cell",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        for p in todo:
            bar.set_postfix_str(p.label)
            try:
                records[p.label] = _run_cell(
                    config, p, train_fn, compare_fn, base_score_fn, force, out
                )
                result.computed.append(p.label)
                (out / "cells" / f"{p.label}.error.txt").unlink(missing_ok=True)
            except Exception as exc:  # noqa: BLE001 - one failed cell must not sink the study
                result.failed[p.label] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                (out / "cells").mkdir(parents=True, exist_ok=True)
                atomic_write_text(out / "cells" / f"{p.label}.error.txt", traceback.format_exc())
            bar.update(1)
        bar.set_postfix_str("done")
    finally:
        bar.close()
    result.records = [records[p.label] for p in planned if p.label in records]
    if write_outputs:
        write_results(result, figures=figures)
    return result
