"""The run folder (a checkpoint ``repspace compare`` can load) and :func:`load_run`.

Files (written atomically; the manifest last, so its presence means "complete")::

    repspace_manifest.json   schema "repspace.run" v1 (fields: see MANIFEST_FIELDS)
    weights.safetensors      "repspace.trainable": the parameters the method trained
                             (all stages, plus new task heads); "repspace.full": every parameter
    processor / tokenizer files (save_pretrained of the base's processor)
    train_config.json        the TrainConfig and its hash (written at the start: resume check)
    train_log.jsonl          one JSON line per logged step / evaluation

Rebuilding (:func:`load_run`): load the base (``base=`` or the manifest's ``base``, checked
against ``base_sha256``), add the task head, ``apply_method`` with every stage, then load the
weights strictly (every trainable parameter present, no unknown name, shapes equal).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from repspace.checkpoints.confine import confined
from repspace.checkpoints.errors import CheckpointError
from repspace.checkpoints.loader import MANIFEST_NAME, LoadedCheckpoint, register_manifest_loader
from repspace.outputs import atomic_path, atomic_write_text, clean_stale, staging_prefix

__all__ = ["write_run", "load_run", "manifest_loader", "SCHEMA", "WEIGHTS_NAME", "MANIFEST_FIELDS"]

SCHEMA = "repspace.run"
SCHEMA_VERSION = 1
WEIGHTS_NAME = "weights.safetensors"
MANIFEST_FIELDS = (
    "schema",
    "schema_version",
    "weights_format",
    "weights_file",
    "method",
    "method_config",
    "budget",
    "task",
    "task_kind",
    "task_state",
    "domain",
    "data",
    "data_fraction",
    "seed",
    "steps",
    "stage_steps",
    "trainable_params",
    "total_params",
    "base",
    "base_path",
    "base_sha256",
    "scores",
    "train_config",
    "config_hash",
    "repspace_version",
    "created",
)


def _save_weights(path: Path, weights: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp))


def _save_processor(run_dir: Path, processor) -> None:
    from repspace.checkpoints.processors import ImageOnlyProcessor

    if (
        processor is None
        or isinstance(processor, ImageOnlyProcessor)
        or not hasattr(processor, "save_pretrained")
    ):
        # ImageOnlyProcessor (Qwen2-VL without torchvision) is rebuilt from the base's own
        # files, which load_run falls back to; it has no save_pretrained of its own
        return
    tmp = Path(tempfile.mkdtemp(prefix=staging_prefix(), dir=run_dir))
    try:
        processor.save_pretrained(str(tmp))
        for f in tmp.iterdir():
            if f.is_file():
                os.replace(f, run_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_run(
    run_dir: Path,
    *,
    weights: dict[str, torch.Tensor],
    full: bool,
    processor,
    fields: dict[str, Any],
) -> dict:
    """Write weights, processor files and the manifest (last); returns the manifest."""
    from repspace import __version__

    run_dir = Path(run_dir)
    clean_stale(run_dir)  # temporary files of an earlier, killed save
    _save_weights(run_dir / WEIGHTS_NAME, weights)
    _save_processor(run_dir, processor)
    manifest = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "weights_format": "repspace.full" if full else "repspace.trainable",
        "weights_file": WEIGHTS_NAME,
        **fields,
        "repspace_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    missing = [k for k in MANIFEST_FIELDS if k not in manifest]
    if missing:  # a programming error, never user input
        raise RuntimeError(f"manifest lacks {missing}")
    atomic_write_text(run_dir / MANIFEST_NAME, json.dumps(manifest, indent=2, default=str))
    return manifest


# -- loading --------------------------------------------------------------------------------
def _resolve_base(
    path: Path, manifest: dict, base: str | None, base_loader
) -> tuple[LoadedCheckpoint, list[str]]:
    from repspace.checkpoints.hashing import checkpoint_sha256
    from repspace.checkpoints.loader import resolve_spec

    notes: list[str] = []
    if base is not None:
        loaded = base_loader(str(base))
        if (
            manifest.get("base_sha256")
            and loaded.sha256
            and loaded.sha256 != manifest["base_sha256"]
        ):
            notes.append(
                f"base {base} differs from the one the run was trained on (sha256 mismatch)"
            )
        return loaded, notes
    candidates = [manifest.get("base"), manifest.get("base_path")]
    for spec in [c for c in candidates if c]:
        try:
            resolved = resolve_spec(spec)
        except Exception:  # noqa: BLE001 - e.g. the embedded model is not installed
            continue
        if Path(resolved).exists():
            sha = checkpoint_sha256(resolved)
            if manifest.get("base_sha256") and sha != manifest["base_sha256"]:
                raise CheckpointError(
                    f"{path}: its base {spec} changed since training (sha256 differs); "
                    "pass --base-override with the model it was trained on"
                )
            return base_loader(spec), notes
    raise CheckpointError(
        f"{path}: its base model {manifest.get('base')!r} is not on this machine; "
        "pass --base-override with the base checkpoint it was trained on"
    )


def manifest_loader(path, manifest: dict, base_loader, base: str | None = None) -> LoadedCheckpoint:
    """Loader registered for ``repspace.trainable`` / ``repspace.full`` run folders."""
    from repspace.checkpoints.hashing import checkpoint_sha256
    from repspace.checkpoints.loader import load_processor
    from repspace.checkpoints.state_dict import read_state_dict
    from repspace.methods import apply_method, config_from_dict, load_trainable_state_dict
    from repspace.training.tasks import make_task

    path = Path(path)
    if manifest.get("schema") != SCHEMA:
        raise CheckpointError(
            f"{path / MANIFEST_NAME}: not a repspace training run (schema {manifest.get('schema')!r})"
        )
    for key, kind in (("method_config", dict), ("task", str), ("weights_format", str)):
        if key not in manifest:
            raise CheckpointError(
                f"{path / MANIFEST_NAME}: missing {key!r}; was the run written by repspace?"
            )
        if not isinstance(manifest[key], kind):
            raise CheckpointError(
                f"{path / MANIFEST_NAME}: {key!r} must be a JSON "
                f"{'object' if kind is dict else 'string'}; got {manifest[key]!r:.60}"
            )
    for key, kind in (
        ("task_state", dict),
        ("base", str),
        ("base_path", str),
        ("base_sha256", str),
    ):
        if manifest.get(key) is not None and not isinstance(manifest[key], kind):
            raise CheckpointError(
                f"{path / MANIFEST_NAME}: {key!r} must be a JSON "
                f"{'object' if kind is dict else 'string'}; got {manifest[key]!r:.60}"
            )
    # The manifest is untrusted: its weights file must be this folder's own (symlinks resolved).
    weights_file = confined(
        path, manifest.get("weights_file", WEIGHTS_NAME), f"{path / MANIFEST_NAME}: weights_file"
    )
    state = read_state_dict(weights_file)  # safe read before building anything
    loaded_base, notes = _resolve_base(path, manifest, base, base_loader)
    model, processor = loaded_base.model, load_processor(str(path)) or loaded_base.processor
    try:  # every field below comes from the (untrusted) manifest
        task = make_task(model, processor, manifest["task"])
        task.load_state(manifest.get("task_state") or {})
        model = task.prepare_model(model)
        model = apply_method(model, config_from_dict(manifest["method_config"]), stage=None)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise CheckpointError(
            f"{path / MANIFEST_NAME}: its method_config / task / task_state do not "
            f"describe a model repspace can rebuild ({type(exc).__name__}: "
            f"{str(exc)[:120]}); was the run written by repspace?"
        ) from None
    task.after_apply(model)
    load_trainable_state_dict(
        model, state, str(weights_file), full=manifest["weights_format"] == "repspace.full"
    )
    model.eval()
    return LoadedCheckpoint(
        spec=str(path),
        name=path.name,
        kind="repspace",
        model=model,
        processor=processor,
        sha256=checkpoint_sha256(path),
        base=loaded_base.spec,
        notes=notes,
        manifest=manifest,
    )


def load_run(path: str | os.PathLike, base: str | None = None) -> LoadedCheckpoint:
    """Rebuild a finished run: base + method (all stages) + trained weights, in eval mode.

    ``base`` overrides the manifest's base (needed when it is not on this machine).
    """
    from repspace.checkpoints import load_checkpoint

    path = Path(path)
    if not (path / MANIFEST_NAME).is_file():
        raise CheckpointError(
            f"{path}: no {MANIFEST_NAME}; not a finished repspace run "
            "(an unfinished one resumes with `repspace train --output` on the same folder)"
        )
    return load_checkpoint(str(path), base=base)


# Run folders are a format of checkpoints: the loader that reads them is registered here,
# on import, because checkpoints (a lower floor) must not import training.
register_manifest_loader("repspace.trainable", manifest_loader)
register_manifest_loader("repspace.full", manifest_loader)
