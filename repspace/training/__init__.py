"""Fine-tuning on the shapes world (or COCO / VQAv2-style data) with any registered method.

    from repspace.training import TrainConfig, train, load_run
    result = train(TrainConfig(base="embedded", method="lora", task="vqa", steps=300))
    result.run_dir, result.scores, result.params
    tuned = load_run(result.run_dir)          # a LoadedCheckpoint, like load_checkpoint

Importing this package registers the loaders of run folders with
:func:`repspace.checkpoints.register_manifest_loader` (``"repspace.trainable"``,
``"repspace.full"``), so ``load_checkpoint(run_dir)`` and ``repspace compare`` read them.
"""
from repspace.checkpoints.loader import register_manifest_loader
from repspace.training.api import TrainResult, evaluate_base, evaluate_model, train
from repspace.training.config import DEFAULT_LR, TrainConfig, default_lr
from repspace.training.runs import load_run, manifest_loader

register_manifest_loader("repspace.trainable", manifest_loader)
register_manifest_loader("repspace.full", manifest_loader)

__all__ = ["TrainConfig", "TrainResult", "train", "load_run", "evaluate_model", "evaluate_base", "DEFAULT_LR", "default_lr"]
