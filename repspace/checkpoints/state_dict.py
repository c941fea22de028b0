"""Safe reading of single-file state dicts and strict application onto a model.

Checkpoints from strangers are untrusted: ``.safetensors`` holds tensors only, and
pickle-based files (``.ckpt``/``.pt``/``.pth``/``.bin``) are read **only** with
``torch.load(weights_only=True)``, which refuses any pickle that would construct
arbitrary Python objects (and so run code) — we turn that refusal into an explanation.
"""

from __future__ import annotations

import pickle
import re
from collections import defaultdict
from pathlib import Path

import torch

from repspace.checkpoints.errors import CheckpointError

__all__ = ["STATE_DICT_SUFFIXES", "read_state_dict", "apply_state_dict", "KNOWN_PREFIXES"]

STATE_DICT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
# Wrappers that training frameworks put around a model's own keys.
KNOWN_PREFIXES = ("model.", "module.", "base_model.model.", "_orig_mod.", "net.", "backbone.")
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "module", "weights")


def _convert_hint(path: Path) -> str:
    # No command line here: the file name is the attacker's to choose (it would be pasted into
    # a shell), and converting means unpickling it, which is exactly the code execution refused.
    return (
        "ask its author for a .safetensors copy, or convert it only inside a throw-away "
        "sandbox (see docs/security.md)"
    )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a flat ``{key: tensor}`` state dict from a single file, safely."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(
                f"{path}: not a readable safetensors file (truncated or corrupt? {exc}); "
                "re-download or re-save it"
            ) from None
    if suffix not in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path}: unknown weights format {suffix!r}; expected one of "
            f"{', '.join(STATE_DICT_SUFFIXES)} or a model/adapter directory"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is long; the offending global (e.g. "os.system") is what matters.
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = (
            f"it references {found.group(1)}" if found else "it holds Python objects beyond tensors"
        )
        raise CheckpointError(
            f"{path}: refused — {what}, and unpickling it could run arbitrary code; "
            f"{_convert_hint(path)}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (truncated or corrupt? {first[:160]})"
        ) from None
    return _flatten(obj, path)


def _flatten(obj, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in NESTED_KEYS:  # Lightning {"state_dict": ...}, DDP {"model": ...}, ...
            inner = obj.get(key)
            if (
                isinstance(inner, dict)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                obj = inner
                break
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: holds {type(obj).__name__}, not a state dict of tensors")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(
            f"{path}: no tensors found (top-level keys: {', '.join(map(str, list(obj)[:6]))})"
        )
    return tensors


def _best_renaming(keys: list[str], target: set[str]) -> dict[str, str]:
    """Strip (or add) the known wrapper prefix that best matches the model's keys."""
    candidates = [dict(zip(keys, keys))]
    for prefix in KNOWN_PREFIXES:
        if any(k.startswith(prefix) for k in keys):
            candidates.append({k: k[len(prefix) :] if k.startswith(prefix) else k for k in keys})
        candidates.append({k: prefix + k for k in keys})
    return max(candidates, key=lambda m: len(target.intersection(m.values())))


def apply_state_dict(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, strict: bool = True
) -> list[str]:
    """Load ``state`` into ``model`` after checking keys and shapes.

    Missing keys that share storage with a loaded key (tied embeddings) are fine.  With
    ``strict`` any other missing or unexpected key is an error that lists examples;
    otherwise they are returned as human-readable notes.
    """
    own = model.state_dict()
    renaming = _best_renaming(list(state), set(own))
    renamed = {renaming[k]: v for k, v in state.items()}
    unexpected = sorted(set(renamed) - set(own))
    groups = defaultdict(set)
    for k, v in own.items():
        groups[(v.data_ptr(), v.shape)].add(k)
    missing = sorted(
        k
        for k in set(own) - set(renamed)
        if not groups[(own[k].data_ptr(), own[k].shape)] & set(renamed)
    )
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in renamed.items()
        if k in own and v.shape != own[k].shape
    ]
    arch = type(model).__name__
    if mismatched:
        raise CheckpointError(
            f"{source}: {len(mismatched)} tensor(s) have the wrong shape for {arch} (e.g. "
            f"{'; '.join(mismatched[:3])}); it was trained on a different architecture - pass "
            "--config with the model config it was trained with"
        )
    notes = []
    if missing:
        notes.append(f"{len(missing)} missing key(s), e.g. {', '.join(missing[:3])}")
    if unexpected:
        notes.append(f"{len(unexpected)} unexpected key(s), e.g. {', '.join(unexpected[:3])}")
    if notes and strict:
        raise CheckpointError(
            f"{source}: does not match {arch}: {'; '.join(notes)}; pass --config with the "
            "architecture it was trained with, or --non-strict to load the matching part"
        )
    model.load_state_dict({k: v for k, v in renamed.items() if k in own}, strict=False)
    return notes
