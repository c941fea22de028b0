"""Safe, automatic loading of base and tuned checkpoints (used by every command)."""
from repspace.checkpoints.errors import CheckpointError
from repspace.checkpoints.hashing import checkpoint_sha256, file_sha256
from repspace.checkpoints.loader import (
    EMBEDDED,
    MANIFEST_NAME,
    LoadedCheckpoint,
    detect_kind,
    load_checkpoint,
    load_hf_model,
    load_processor,
    preflight_checkpoints,
    register_manifest_loader,
    resolve_spec,
)
from repspace.checkpoints.state_dict import apply_state_dict, read_state_dict

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
