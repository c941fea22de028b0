"""One compare report of every method of a study against the base (``repspace compare``'s
report: per-layer tables, CKA/rank/spectra/drift plots, embedding), for the main slice."""

from __future__ import annotations

from pathlib import Path

from repspace.study.config import BASE_METHOD
from repspace.study.results import main_slice

__all__ = ["joint_compare_report"]


def joint_compare_report(
    result,
    folder: str | Path,
    task: str | None = None,
    progress: bool = True,
    compare_fn=None,
    force: bool = False,
) -> Path | None:
    """Compare the base with the main-slice run of every method (first task unless ``task``,
    lowest seed) in one :func:`repspace.compare.compare` call and write its report folder.

    Returns the folder, or None when the study has no trained run to show.  Cached: the
    report records a key of its inputs (the cells' keys, names, compare settings, repspace
    version) in ``report.json``'s settings; a rerun with the same key reuses the folder.
    """
    from repspace.report import write_report
    from repspace.study import comparing

    tables = result.tables
    tasks = list(dict.fromkeys(r["task"] for r in tables.summary))
    if not tasks:
        return None
    task = task or tasks[0]
    keys = ("task", "method", "budget", "data_fraction")
    names, specs, cell_keys = [], [], []
    for row in main_slice(tables.summary, task):
        if row["method"] == BASE_METHOD:
            continue
        recs = [
            r
            for r in result.records
            if r.get("run_dir") and all(r["cell"][k] == row[k] for k in keys)
        ]
        if recs:
            rec = min(recs, key=lambda r: r["cell"]["seed"])
            names.append(row["method"])
            specs.append(str(Path(result.output_dir) / rec["run_dir"]))
            cell_keys.append(rec.get("key"))
    if not specs:
        return None
    kwargs = comparing.compare_settings(result.config)
    kwargs.update(embedding="pca", progress=progress, names=names)
    key = _joint_key(result.config.base, task, names, cell_keys, kwargs)
    if not force and _cached(Path(folder), key):
        return Path(folder)
    compared = (compare_fn or comparing.default_compare)(result.config.base, specs, **kwargs)
    compared.settings["joint_report_key"] = key
    return write_report(compared, folder, overwrite=True)


def _joint_key(base: str, task: str, names: list[str], cell_keys: list, kwargs: dict) -> str:
    import hashlib
    import json

    from repspace import __version__

    blob = json.dumps(
        {
            "repspace": __version__,
            "base": base,
            "task": task,
            "names": names,
            "cells": cell_keys,
            "compare": {k: v for k, v in kwargs.items() if k != "progress"},
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _cached(folder: Path, key: str) -> bool:
    """The folder is a complete report written for exactly these inputs."""
    import json

    from repspace.report.writer import FILES

    try:
        rep = json.loads((folder / "report.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(rep, dict) or (rep.get("settings") or {}).get("joint_report_key") != key:
        return False
    plots = [f for files in (rep.get("plots") or {}).values() for f in files]
    return all((folder / f).is_file() for f in (*FILES, *plots))
