"""Load a single ``.safetensors`` file written by ``save_pretrained`` onto its architecture.

transformers 5 renames weights between the format on disk and the modules in memory (e.g.
ViT's ``encoder.layer.0.attention.attention.key`` vs. ``layers.0.attention.k_proj``, LLaVA's
``language_model.model.*`` vs. ``model.language_model.*``) and converts them in
``from_pretrained``.  A ``model.safetensors`` taken out of a fine-tuned folder therefore does
not match ``model.state_dict()`` key for key.  Rather than re-implementing the renaming, the
file is loaded the way transformers loads it: from a temporary folder holding the
architecture's ``config.json`` and a link to the file, with the loading report checked as
strictly as a state dict (missing or unexpected keys are an error unless ``strict=False``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from repspace.checkpoints.errors import CheckpointError

__all__ = ["load_saved_format"]


def _config_file(arch_spec: str) -> Path | None:
    p = Path(arch_spec)
    if p.is_dir() and (p / "config.json").is_file():
        return p / "config.json"
    if p.is_file() and p.suffix == ".json":
        return p
    return None


def load_saved_format(
    weights: Path, arch_spec: str, *, strict: bool, dtype: torch.dtype | None = None
):
    """``(model, notes)`` from ``weights`` loaded through ``from_pretrained`` with the config of
    ``arch_spec`` (a model folder or config.json), or None when that cannot apply (not a
    ``.safetensors`` file, no local config).  Raises ``CheckpointError`` naming missing /
    unexpected keys when the file still does not fit."""
    from repspace.checkpoints.kernels import no_hub_kernels
    from repspace.checkpoints.remote_code import model_class_of

    config = _config_file(arch_spec)
    if weights.suffix.lower() != ".safetensors" or config is None:
        return None
    import transformers

    with tempfile.TemporaryDirectory(prefix="repspace-weights-") as tmp:
        shutil.copy(config, Path(tmp) / "config.json")
        try:
            os.symlink(weights.resolve(), Path(tmp) / "model.safetensors")
        except OSError:  # no symlinks (some Windows set-ups): copy instead
            shutil.copy(weights, Path(tmp) / "model.safetensors")
        cfg = transformers.AutoConfig.from_pretrained(
            tmp, local_files_only=True, trust_remote_code=False
        )
        cls = model_class_of(cfg, str(config))
        try:
            model, info = cls.from_pretrained(
                tmp,
                config=cfg,
                local_files_only=True,
                dtype=dtype or torch.float32,
                trust_remote_code=False,
                output_loading_info=True,
                **no_hub_kernels(),
            )
        except Exception as exc:  # noqa: BLE001 - shape mismatches and friends, in many types
            first = " ".join(str(exc).split())[:200]
            raise CheckpointError(
                f"{weights}: does not load onto {cls.__name__} ({type(exc).__name__}: {first})"
            ) from None
    missing, unexpected = list(info.get("missing_keys", [])), list(info.get("unexpected_keys", []))
    mismatched = list(info.get("mismatched_keys", []))
    problems = [
        f"{len(v)} {what} key(s), e.g. {', '.join(map(str, sorted(v)[:3]))}"
        for what, v in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong-shape", mismatched),
        )
        if v
    ]
    if problems and strict:
        raise CheckpointError(
            f"{weights}: does not match {cls.__name__}: {'; '.join(problems)}; "
            "pass the base it was fine-tuned from, or --non-strict"
        )
    notes = [f"loaded through transformers' on-disk format ({cls.__name__})"]
    notes += [f"non-strict load: {p}" for p in problems]
    return model, notes
