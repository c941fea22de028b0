"""Watch the representation move while it trains: a distortion tracker.

    from repspace.track import Tracker, DistortionCallback, read_trajectory

- :class:`Tracker` (:mod:`.tracker`): framework-free — plain PyTorch, accelerate, Lightning
  loops: ``Tracker(base_model, probe)`` captures the base once; ``measure(model, step)`` runs
  only the current model on the probe and returns ``{layer: {metric: value}}``;
  ``finish(output_dir)`` writes ``trajectory.csv`` / ``trajectory.json`` and figures.
- :class:`DistortionCallback` (:mod:`.callback`): the same for ``transformers.Trainer`` and
  the trainers built on it (TRL's ``SFTTrainer`` …): ``repspace/<metric>/<layer>`` scalars in
  the trainer's log (so ``report_to`` sends them to TensorBoard, W&B, MLflow), the trajectory
  folder at the end of training.
- :class:`Trajectory` / :func:`read_trajectory` (:mod:`.trajectory`): the tidy table.
- :mod:`.figures`: metric vs step per layer, layer × step heat map, runs side by side.

See ``docs/tracking.md``.  The names load on first use: importing the package imports
neither transformers nor matplotlib.
"""

from __future__ import annotations

from repspace._lazy import lazy_attributes

_LAZY = {
    "Tracker": "repspace.track.tracker",
    "scalar_name": "repspace.track.tracker",
    "DistortionCallback": "repspace.track.callback",
    "Trajectory": "repspace.track.trajectory",
    "read_trajectory": "repspace.track.trajectory",
    "DEFAULT_METRICS": "repspace.track.options",
    "plot_trajectory": "repspace.track.figures",
    "plot_heatmap": "repspace.track.figures",
    "plot_runs": "repspace.track.figures",
    "write_trajectory": "repspace.track.folder",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
