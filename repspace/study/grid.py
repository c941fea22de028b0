"""The study grid: cells, their training configs and their cache keys.

A cell is one (task, method, budget, data fraction, seed).  Its **key** is a sha256 of
everything that changes its result: the training config's own
:meth:`~repspace.training.TrainConfig.config_hash` (all result-relevant training fields,
the resolved learning rate included), the compare settings and the repspace version.  The
key names the cell's files (``runs/<label>-<key10>/``, ``cells/<label>-<key10>.json``),
so editing one method's options reruns only that method's cells, and switching back
finds the old results again.

The ``"base"`` method has no training config: its key hashes the base spec, the task's
evaluation settings and the compare settings; it has one cell per task, at the first seed
(the training seed does not change an untrained model's evaluation; budgets and data
fractions do not apply to it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repspace import __version__
from repspace.study.config import BASE_METHOD, StudyConfig, method_name

__all__ = ["Cell", "expand_grid", "train_config_for", "cell_key", "track_settings", "RECORD_SCHEMA"]

# The layout of a cached cell record; bump it when a key or a score name changes, so old
# caches are recomputed instead of read with missing values (2: bleu_4 / cider_d).
RECORD_SCHEMA = 2


@dataclass(frozen=True)
class Cell:
    """One grid cell.  ``budget`` None: the method's configured default; ``data_fraction``
    None for the base (no training data)."""

    task: str
    method: str
    seed: int
    budget: Any = None
    budget_field: str | None = None
    data_fraction: float | None = None

    @property
    def label(self) -> str:
        """Readable, filesystem-safe id: ``vqa-lora-r8-d0.5-s0``."""
        parts = [self.task, self.method]
        if self.budget is not None:
            parts.append(f"{self.budget_field or 'b'}{self.budget}")
        if self.data_fraction is not None:
            parts.append(f"d{self.data_fraction:g}")
        parts.append(f"s{self.seed}")
        return "-".join(str(p).replace("/", "_").replace(" ", "") for p in parts)

    @property
    def is_base(self) -> bool:
        return self.method == BASE_METHOD

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "method": self.method,
            "budget_field": self.budget_field,
            "budget": self.budget,
            "data_fraction": self.data_fraction,
            "seed": self.seed,
        }


def _budget_field(method: str) -> str | None:
    from repspace.methods import get_method

    return get_method(method_name(method)).config_class.budget_field


def expand_grid(config: StudyConfig) -> list[Cell]:
    """Cells in run order: task, then method (the study's order), budget, fraction, seed."""
    cells = []
    for task in config.tasks:
        for method in config.methods:
            if method == BASE_METHOD:
                # Once per task: the untrained base's scores and its compare against itself
                # depend on the task's data (data_seed) and the compare settings, not on the
                # training seed; one cell per seed only repeated the same evaluation.
                cells.append(Cell(task, method, config.seeds[0]))
                continue
            budgets = config.budgets_for(method)
            fld = _budget_field(method) if budgets != (None,) else None
            for budget in budgets:
                for fraction in config.data_fractions:
                    for seed in config.seeds:
                        cells.append(Cell(task, method, seed, budget, fld, float(fraction)))
    return cells


def _trainer_settings(config: StudyConfig) -> dict:
    """The study's ``train`` table and image size: the TrainConfig fields every cell (and the
    base's evaluation) shares."""
    kw = dict(config.train)
    if config.image_size is not None:
        kw["image_size"] = config.image_size
    return kw


def train_config_for(config: StudyConfig, cell: Cell, output_dir: str | Path | None = None):
    """The :class:`~repspace.training.TrainConfig` of a trained cell."""
    from repspace.training import TrainConfig

    if cell.is_base:
        raise ValueError("the base cell is not trained")
    options = dict(config.options.get(cell.method, {}))
    if cell.budget is not None:
        options[cell.budget_field] = cell.budget
    return TrainConfig(
        base=config.base,
        method=method_name(cell.method),
        method_options=options,
        task=cell.task,
        domain=config.domain,
        data_fraction=cell.data_fraction,
        n_train=config.n_train,
        n_eval=config.n_eval,
        steps=config.steps_for(cell.method),
        batch_size=config.batch_size,
        lr=config.lr_for(cell.method),
        seed=cell.seed,
        output_dir=None if output_dir is None else str(output_dir),
        **_trainer_settings(config),
    )


def base_eval_config(config: StudyConfig, cell: Cell):
    """The :class:`~repspace.training.TrainConfig` that evaluates the untrained base on
    ``cell``'s task (the base cell trains nothing; the first trained method stands in for the
    trainer's settings, which do not change the base's evaluation)."""
    from repspace.training import TrainConfig

    method = method_name(config.trained_methods[0]) if config.trained_methods else "full"
    return TrainConfig(
        base=config.base,
        method=method,
        task=cell.task,
        domain=config.domain,
        n_train=config.n_train,
        n_eval=config.n_eval,
        seed=cell.seed,
        batch_size=config.batch_size,
        **_trainer_settings(config),
    )


def _sha(payload: dict) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def cell_key(config: StudyConfig, cell: Cell, train_config=None) -> str:
    """sha256 (hex) of everything that affects the cell's result (see the module doc)."""
    payload: dict[str, Any] = {
        "repspace": __version__,
        "records": RECORD_SCHEMA,
        "compare": config.compare.to_dict(),
        "cell": cell.to_dict(),
    }
    if cell.is_base:
        payload["base"] = {
            "spec": config.base,
            "domain": config.domain,
            "n_eval": config.n_eval,
            "image_size": config.image_size,
            "batch_size": config.batch_size,
            "n_train": config.n_train,
            "train": dict(config.train),
        }
    else:
        cfg = train_config if train_config is not None else train_config_for(config, cell)
        payload["train"] = cfg.config_hash()
        if config.track_every is not None:
            # tracking changes no weight, but a cell cached without its trajectory cannot
            # give one: a tracked cell is its own cell (untracked keys stay as they were)
            payload["track"] = track_settings(config)
    return _sha(payload)


def track_settings(config: StudyConfig) -> dict[str, Any]:
    """``train(track_every=, track_probe=, track_samples=, track_figures=)`` of every trained
    cell ({} when the study does not track).  Each run keeps its trajectory.csv / .json but
    not its own figures: the study draws every method's trajectory over seeds in one."""
    if config.track_every is None:
        return {}
    return {
        "track_every": config.track_every,
        "track_probe": config.compare.probes[0],
        "track_samples": config.track_samples,
        "track_figures": False,
    }
