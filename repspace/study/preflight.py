"""What a study checks before its first cell, so that a bad study is refused in one line
instead of leaving a folder of failed cells (or silently empty columns).

:func:`preflight` runs, in order of cost, for ``repspace study`` and its ``--dry-run``
alike (the same refusal, the same message, nothing written):

1. the base checkpoint exists (or is a hub id) and asks for no remote code (``auto_map``);
2. every probe file decodes (:func:`repspace.probe.load_probe`: encoding, JSON lines,
   images);
3. every cell's training config builds, and the training data of each (task, data
   fraction) is not degenerate (:func:`repspace.training.data.check_data`: one class, an
   empty split);
4. with ``load_base``: the base loads, the ``[compare]`` ``layers`` resolve on it, and
   ``summary_layer`` indexes one of them — a name or index the model does not have would
   otherwise fail every cell, or give empty summary columns.
"""

from __future__ import annotations

from repspace.study.config import StudyConfig

__all__ = ["preflight"]


def preflight(config: StudyConfig, load_base: bool = True) -> None:
    """Refuse ``config`` (``ValueError`` / ``CheckpointError``, one line naming the study file
    or the input) when a check above fails; returns None when the study can start."""
    from repspace.checkpoints import preflight_checkpoints
    from repspace.probe import BUILTIN_PROBES, load_probe
    from repspace.study.grid import expand_grid, train_config_for
    from repspace.training.data import check_data

    preflight_checkpoints([config.base])
    for source in config.compare.probes:
        if source not in BUILTIN_PROBES:
            load_probe(source, num_samples=config.compare.num_samples, seed=config.compare.seed)
    checked = set()
    for cell in expand_grid(config):
        if cell.is_base:
            continue
        try:
            cfg = train_config_for(config, cell)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"{config.source}: cell {cell.label}: {' '.join(str(exc).split())}"
            ) from None
        if (cfg.task, cfg.data_fraction) not in checked:
            checked.add((cfg.task, cfg.data_fraction))
            check_data(cfg)
    if load_base:
        _check_layers(config)


def _check_layers(config: StudyConfig) -> None:
    from repspace.capture.selection import resolve_layers
    from repspace.checkpoints import load_checkpoint

    model = load_checkpoint(config.base).model
    layers = config.compare.layers
    try:
        names = resolve_layers(model, layers)
    except ValueError as exc:
        raise ValueError(
            f"{config.source}: key 'compare.layers': {' '.join(str(exc).split())} "
            f"(base {config.base})"
        ) from None
    n, i = len(names), config.summary_layer
    if not -n <= i < n:
        raise ValueError(
            f"{config.source}: key 'summary_layer': {i} is not a layer of the "
            f"{n} compared ({layers!r} on the base {config.base}: {names[0]} … "
            f"{names[-1]}); use an index from {-n} to {n - 1} (-1: the last)"
        )
