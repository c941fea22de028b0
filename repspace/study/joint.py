"""One compare report of every method of a study against the base (``repspace compare``'s
report: per-layer tables, CKA/rank/spectra/drift plots, embedding), for the main slice."""
from __future__ import annotations

from pathlib import Path

from repspace.study.config import BASE_METHOD
from repspace.study.figures import main_slice

__all__ = ["joint_compare_report"]


def joint_compare_report(result, folder: str | Path, task: str | None = None,
                         progress: bool = True, compare_fn=None) -> Path | None:
    """Compare the base with the main-slice run of every method (first task unless ``task``,
    lowest seed) in one :func:`repspace.compare.compare` call and write its report folder.

    Returns the folder, or None when the study has no trained run to show.
    """
    from repspace.report import write_report
    from repspace.study.runner import _compare_kwargs, default_compare

    tables = result.tables
    tasks = list(dict.fromkeys(r["task"] for r in tables.summary))
    if not tasks:
        return None
    task = task or tasks[0]
    keys = ("task", "method", "budget", "data_fraction")
    names, specs = [], []
    for row in main_slice(tables.summary, task):
        if row["method"] == BASE_METHOD:
            continue
        recs = [r for r in result.records if r.get("run_dir")
                and all(r["cell"][k] == row[k] for k in keys)]
        if recs:
            rec = min(recs, key=lambda r: r["cell"]["seed"])
            names.append(row["method"])
            specs.append(str(Path(result.output_dir) / rec["run_dir"]))
    if not specs:
        return None
    kwargs = _compare_kwargs(result.config)
    kwargs.update(embedding="pca", progress=progress, names=names)
    compared = (compare_fn or default_compare)(result.config.base, specs, **kwargs)
    return write_report(compared, folder, overwrite=True)
