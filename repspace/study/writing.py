"""A finished study's outputs: tables, figures and ``summary.md`` (the last step of a run)."""

from __future__ import annotations

from repspace.study.figures import make_figures
from repspace.study.results import build_tables, write_tables
from repspace.study.summary import write_summary
from repspace.study.trajectories import write_trajectories

__all__ = ["write_results"]


def write_results(result, figures: bool = True) -> None:
    """Tables, figures and ``summary.md`` of a :class:`~repspace.study.runner.StudyResult`."""
    tables = build_tables(result.records, result.config.summary_layer)
    result.tables = tables
    files, notes = write_tables(tables, result.output_dir / "results")
    result.files.update(files)
    result.notes.extend(notes)
    if figures:
        figs, fig_notes = make_figures(tables, result.output_dir / "figures")
        result.files.update(figs)
        result.notes.extend(fig_notes)
    write_trajectories(result, figures=figures)  # a tracked study: after the end-point figures
    result.files["summary.md"] = write_summary(result)
