"""Content hashes that identify checkpoints and data in reports.

A multi-GB checkpoint takes seconds to hash (sha256 runs at ~1.5 GB/s here), and one compare
meets the same base several times (the tuned adapter's recorded base, the shared base, the
provenance of each side).  So a file's digest is remembered, keyed by what changes whenever its
bytes can have changed: device, inode, size, mtime and ctime in nanoseconds (ctime cannot be set
from user space: a rewrite that restores mtime still moves it).  Only files of 64 MiB and more
are remembered (smaller ones hash in milliseconds), and only once their mtime and ctime are two
seconds old (git's "racy" rule: a write within the clock's granularity may leave the stat data
unchanged).  In the process, and on disk under ``$REPSPACE_CACHE_DIR`` (default
``$XDG_CACHE_HOME/repspace/sha256``, i.e. ``~/.cache/repspace/sha256``), one small file per
digest written atomically, as git's index and DVC trust stat data.  ``REPSPACE_HASH_CACHE=0``
turns the disk cache off; an unreadable or unwritable cache only costs the hashing again.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

# Every file kind transformers / tokenizers read when building a model and its inputs
# (weights, configs, vocabularies, merges, sentencepiece models, chat templates).
HASHED_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".json",
    ".model",
    ".txt",
    ".jinja",
    ".tiktoken",
    ".spm",
    ".vocab",
    ".codes",
)

DISK_CACHE_MIN_BYTES = 64 << 20
RACY_NS = 2_000_000_000
_MEMO: dict[str, str] = {}  # stat key -> digest, this process


def _stat_key(path: str | Path) -> str | None:
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return f"{real}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"


def cache_dir() -> Path | None:
    """Where digests of large files are remembered between runs; None when turned off."""
    if os.environ.get("REPSPACE_HASH_CACHE", "1").strip().lower() in {"0", "false", "no", "off"}:
        return None
    explicit = os.environ.get("REPSPACE_CACHE_DIR")
    if explicit:
        return Path(explicit) / "sha256"
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "repspace" / "sha256"


def _entry(key: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / hashlib.sha256(key.encode()).hexdigest()


def _read_cached(key: str) -> str | None:
    entry = _entry(key)
    if entry is None:
        return None
    try:
        stored_key, digest = entry.read_text(encoding="utf-8").split("\n")[:2]
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if stored_key != key.replace("\0", "|") or len(digest) != 64:
        return None
    try:
        bytes.fromhex(digest)
    except ValueError:
        return None
    return digest


def _write_cached(key: str, digest: str) -> None:
    entry = _entry(key)
    if entry is None:
        return
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        tmp.write_text(f"{key.replace(chr(0), '|')}\n{digest}\n", encoding="utf-8")
        os.replace(tmp, entry)
    except OSError:  # a read-only home: the next run hashes again, nothing else changes
        return


def _hash_file(path: str | Path, chunk: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """sha256 (hex) of one file's bytes, remembered while the file's stat data are unchanged."""
    key = _stat_key(path)
    if key is None:  # let open() raise its own, precise error
        return _hash_file(path, chunk)
    fields = key.split("\0")
    settled = time.time_ns() - max(int(fields[4]), int(fields[5])) > RACY_NS
    if int(fields[3]) < DISK_CACHE_MIN_BYTES or not settled:
        return _hash_file(path, chunk)
    if key in _MEMO:
        return _MEMO[key]
    digest = _read_cached(key)
    if digest is None:
        digest = _hash_file(path, chunk)
        if _stat_key(path) != key:  # rewritten while it was read: remember nothing
            return digest
        _write_cached(key, digest)
    _MEMO[key] = digest
    return digest


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
