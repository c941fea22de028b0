"""Paths read from untrusted files (manifests, resume states) stay inside their folder.

A run folder's manifest names its weights file and a resume state names its step folder;
both are data an attacker can edit.  :func:`confined` resolves the name (symlinks
included) and refuses anything that ends up outside the folder, so a manifest cannot
load someone else's weights under the run's recorded hash.
"""

from __future__ import annotations

import os
from pathlib import Path

from repspace.checkpoints.errors import CheckpointError

__all__ = ["confined"]


def confined(root: str | Path, name, what: str) -> Path:
    """``root / name`` after checking that it resolves inside ``root``; ``what`` names the
    field in the error (e.g. ``"run/repspace_manifest.json: weights_file"``)."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise CheckpointError(f"{what} must be a file name inside {root}; got {name!r}")
    if os.path.isabs(name):
        raise CheckpointError(
            f"{what} {name!r} is an absolute path; it must name a file inside "
            f"{root}; refusing to read it"
        )
    real_root = Path(os.path.realpath(root))
    target = Path(os.path.realpath(Path(root) / name))
    if target == real_root or real_root not in target.parents:
        raise CheckpointError(
            f"{what} {name!r} resolves to {target}, outside {root}; refusing to "
            "read it (a run folder only ever refers to its own files)"
        )
    return Path(root) / name
