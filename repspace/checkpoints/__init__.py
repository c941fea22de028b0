"""Safe, automatic loading of base and tuned checkpoints (used by every command).

The names below are imported on first use (PEP 562): reading a config (``compare --plan``,
:mod:`repspace.checkpoints.precision`, :mod:`repspace.checkpoints.errors`) needs no torch.
"""

from __future__ import annotations

from repspace._lazy import lazy_attributes
from repspace.checkpoints.errors import CheckpointError  # torch-free, and caught everywhere

# name -> module that defines it (loaded on first use)
_LAZY = {
    "checkpoint_sha256": "repspace.checkpoints.hashing",
    "file_sha256": "repspace.checkpoints.hashing",
    **dict.fromkeys(
        [
            "EMBEDDED",
            "MANIFEST_NAME",
            "LoadedCheckpoint",
            "detect_kind",
            "load_checkpoint",
            "load_hf_model",
            "load_processor",
            "preflight_checkpoints",
            "register_manifest_loader",
            "resolve_spec",
        ],
        "repspace.checkpoints.loader",
    ),
    "apply_state_dict": "repspace.checkpoints.state_dict",
    "read_state_dict": "repspace.checkpoints.state_dict",
}

__all__ = [
    "EMBEDDED",
    "MANIFEST_NAME",
    "CheckpointError",
    "LoadedCheckpoint",
    "apply_state_dict",
    "checkpoint_sha256",
    "detect_kind",
    "file_sha256",
    "load_checkpoint",
    "load_hf_model",
    "load_processor",
    "preflight_checkpoints",
    "read_state_dict",
    "register_manifest_loader",
    "resolve_spec",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
