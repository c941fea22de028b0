"""Fine-tuning on the shapes world (or COCO / VQAv2-style data) with any registered method.

    from repspace.training import TrainConfig, train, load_run
    result = train(TrainConfig(base="embedded", method="lora", task="vqa", steps=300))
    result.run_dir, result.scores, result.params
    tuned = load_run(result.run_dir)          # a LoadedCheckpoint, like load_checkpoint

Importing this package registers the loaders of run folders (:mod:`repspace.training.runs`)
with :func:`repspace.checkpoints.register_manifest_loader`, so ``load_checkpoint(run_dir)``
and ``repspace compare`` read them.  The trainer itself (:mod:`~repspace.training.api`,
:mod:`~repspace.training.trainer`) is imported only when one of its names is used: reading
a run folder needs the methods and the task heads, not the training loop.
"""

from __future__ import annotations

from repspace._lazy import lazy_attributes

from repspace.training.runs import load_run  # importing runs registers the run-folder loaders

# name -> module that defines it (loaded on first use, PEP 562)
_LAZY = {
    "TrainResult": "repspace.training.api",
    "evaluate_base": "repspace.training.api",
    "evaluate_model": "repspace.training.api",
    "train": "repspace.training.api",
    "DEFAULT_LR": "repspace.training.config",
    "TrainConfig": "repspace.training.config",
    "default_lr": "repspace.training.config",
}

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "load_run",
    "evaluate_model",
    "evaluate_base",
    "DEFAULT_LR",
    "default_lr",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
