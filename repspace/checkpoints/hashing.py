"""Content hashes that identify checkpoints and data in reports."""
from __future__ import annotations

import hashlib
from pathlib import Path

# Every file kind transformers / tokenizers read when building a model and its inputs
# (weights, configs, vocabularies, merges, sentencepiece models, chat templates).
HASHED_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".json", ".model", ".txt",
                   ".jinja", ".tiktoken", ".spm", ".vocab", ".codes")


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def checkpoint_sha256(path: str | Path) -> str | None:
    """sha256 of a file, or of a directory's weight/config files (names and contents).

    None for something that is not on disk (a hub id: its revision identifies it).
    """
    p = Path(path)
    if p.is_file():
        return file_sha256(p)
    if not p.is_dir():
        return None
    from repspace.checkpoints.files import weight_files

    h = hashlib.sha256()
    # every shard an index names is inside (checked at the door) and hashed, whatever its suffix
    for f in weight_files(p, HASHED_SUFFIXES):
        h.update(str(f.relative_to(p)).encode())
        h.update(bytes.fromhex(file_sha256(f)))
    return h.hexdigest()
