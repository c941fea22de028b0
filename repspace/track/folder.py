"""The tracker's output folder, written atomically.

``output_dir/`` holds ``trajectory.csv``, ``trajectory.json`` and ``figures/``
(``trajectory.{pdf,png}``: every metric against the step per layer; ``heatmap_<metric>.{pdf,png}``:
layer × step).  Everything is written into a staging folder beside ``output_dir`` and moved in
with one rename (:func:`repspace.outputs.publish`), so a reader sees the old folder or the
new one, never half of one.  The folder is checked before training starts
(:func:`check_track_output`): an existing non-empty folder is only ever replaced when it is a
trajectory folder (its ``trajectory.json`` carries the trajectory schema) — a rerun of the
same training replaces its own earlier trajectory, nothing else is touched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from repspace.outputs import atomic_write_text, check_output, has_json_schema, publish, staging_dir
from repspace.track.trajectory import SCHEMA, Trajectory

__all__ = ["check_track_output", "is_track_folder", "write_trajectory", "HEATMAP_METRICS"]

KIND = "repspace trajectory"
HEATMAP_METRICS = ("linear_cka", "effective_rank_ratio")


def is_track_folder(folder: Path) -> bool:
    return has_json_schema(folder, "trajectory.json", SCHEMA)


def check_track_output(output_dir) -> Path:
    """``output_dir`` as an absolute path, or a one-line ``OutputError`` (a ``ValueError``)."""
    return check_output(
        output_dir, overwrite=True, is_ours=is_track_folder, option="output_dir", kind=KIND
    )


def write_trajectory(
    traj: Trajectory,
    output_dir,
    *,
    figures: bool = True,
    heatmaps: tuple[str, ...] = HEATMAP_METRICS,
) -> Path:
    """Write ``traj`` (csv, json, figures) to ``output_dir``, atomically; returns the folder."""
    out = check_track_output(output_dir)
    tmp = staging_dir(out, "track-")
    try:
        atomic_write_text(tmp / "trajectory.csv", traj.to_csv())
        if figures and traj.steps:
            from repspace.track.figures import plot_heatmap, plot_trajectory

            plot_trajectory(traj, tmp / "figures" / "trajectory")
            for metric in heatmaps:
                if metric in traj.metrics:
                    plot_heatmap(traj, tmp / "figures" / f"heatmap_{metric}", metric)
        atomic_write_text(tmp / "trajectory.json", traj.to_json())  # last: the folder's marker
        from repspace.outputs import apply_umask

        apply_umask(tmp)
        publish(tmp, out, overwrite=True, is_ours=is_track_folder, kind=KIND)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
