"""Resumable training state, written atomically.

Layout inside the run folder::

    state/step-000100/weights.safetensors   parameters trained so far (every stage)
    state/step-000100/optimizer.pt          AdamW state + torch RNG states (torch.save)
    state/step-000100/meta.json             step, stage, python/numpy RNG states, config hash
    state/latest.json                       {"dir": "step-000100", "step": 100, ...}

A step folder is written under a temporary name and renamed; ``latest.json`` is replaced
atomically afterwards, then older step folders are deleted — an interruption at any point
leaves the previous complete state in place.  Reading uses safetensors and
``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from repspace.checkpoints.confine import confined
from repspace.outputs import apply_umask, atomic_write_text, publish

__all__ = [
    "save_state",
    "load_state",
    "latest_state",
    "atomic_write_text",
    "rng_state",
    "set_rng_state",
]


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU, CUDA) RNG states; the torch ones as tensors."""
    py = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [
            np_state[0],
            np_state[1].tolist(),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(
    run_dir: Path,
    step: int,
    stage: int,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict,
    meta: dict[str, Any],
) -> None:
    """Write the state after ``step`` optimizer steps (see the module docstring)."""
    from safetensors.torch import save_file

    root = Path(run_dir) / "state"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp / "weights.safetensors"))
        rng = rng_state()
        torch.save(
            {
                "optimizer": optimizer_state,
                "torch_rng": rng.pop("torch"),
                "cuda_rng": rng.pop("cuda"),
            },
            tmp / "optimizer.pt",
        )
        (tmp / "meta.json").write_text(
            json.dumps({**meta, "step": step, "stage": stage, "rng": rng})
        )
        apply_umask(tmp)  # mkdtemp's 0700 / save_file's modes -> what the umask asks
        # the one folder swap repspace has: a leftover state of this step (an interrupted
        # earlier try) is replaced only when it is one, and restored if the swap fails
        publish(
            tmp,
            root / name,
            overwrite=True,
            is_ours=lambda d: (d / "meta.json").is_file(),
            kind="training state",
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(
        root / "latest.json",
        json.dumps(
            {"dir": name, "step": step, "stage": stage, "config_hash": meta.get("config_hash")}
        ),
    )
    for old in root.iterdir():
        if old.is_dir() and old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def latest_state(run_dir: Path) -> dict | None:
    """``latest.json`` of ``run_dir`` (None when there is no complete saved state)."""
    p = Path(run_dir) / "state" / "latest.json"
    if not p.is_file():
        return None
    try:
        latest = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(latest, dict) or not latest.get("dir"):
        return None
    # latest.json is data: its "dir" must be a step folder of this state/ (symlinks resolved).
    return latest if confined(p.parent, latest["dir"], f"{p}: dir").is_dir() else None


def load_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """``(weights, optimizer_state, meta)`` of the latest state; RNG states are in ``meta["rng"]``
    (torch ones restored into it as tensors)."""
    from safetensors.torch import load_file

    latest = latest_state(run_dir)
    if latest is None:
        raise ValueError(f"{run_dir}: no saved training state to resume from")
    d = confined(
        Path(run_dir) / "state", latest["dir"], f"{Path(run_dir) / 'state' / 'latest.json'}: dir"
    )
    try:
        weights = load_file(str(d / "weights.safetensors"))
        blob = torch.load(d / "optimizer.pt", map_location="cpu", weights_only=True)
        meta = json.loads((d / "meta.json").read_text())
    except Exception as exc:  # noqa: BLE001 - any corruption means: cannot resume
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ValueError(
            f"{d}: saved training state is unreadable ({first}); "
            "pass overwrite=True / --overwrite to start over"
        ) from None
    # meta.json and optimizer.pt are data too: check their shape before the trainer trusts them.
    ok = (
        isinstance(meta, dict)
        and isinstance(blob, dict)
        and isinstance(meta.get("rng"), dict)
        and {"python", "numpy"} <= set(meta["rng"])
        and "torch_rng" in blob
        and isinstance(blob.get("optimizer"), dict)
        and all(
            isinstance(meta.get(k), int) and not isinstance(meta.get(k), bool)
            for k in ("step", "stage")
        )
        and 0 <= meta["step"] < 1 << 40
        and 1 <= meta["stage"] <= 16
    )
    if not ok:
        raise ValueError(
            f"{d}: saved training state is malformed (meta.json / optimizer.pt); "
            "pass overwrite=True / --overwrite to start over"
        )
    meta["rng"]["torch"] = blob["torch_rng"]
    meta["rng"]["cuda"] = blob.get("cuda_rng", [])
    return weights, blob["optimizer"], meta
