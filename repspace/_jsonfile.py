"""Reading a JSON file that anyone may have written: the one safe reader.

A checkpoint's ``config.json``, an adapter's ``adapter_config.json``, a weights index, a run
manifest: each comes from whoever made the checkpoint.  :func:`read_json` reads one without
blocking or exhausting the machine:

- a named pipe, socket or device where the file should be is refused before a byte is read
  (it is opened non-blocking and checked with ``fstat``, so nothing can swap it in between):
  reading a pipe with no writer would block forever, a device could be read without end;
- a file larger than ``max_bytes`` is refused by its size, and no more than ``max_bytes + 1``
  bytes are ever read (a file that grows, or one whose size the OS does not know);
- nesting deeper than the JSON parser's recursion limit is an unreadable file, not a
  ``RecursionError`` escaping to the caller.

Every failure is one :class:`JSONFileError`; callers word it in their own vocabulary (the
checkpoint loader names the file and the fix, the threads policy reads "width unknown").
Floor 0: imports nothing of repspace.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

__all__ = ["JSONFileError", "NOT_REGULAR", "read_json"]

NOT_REGULAR = "not a regular file (a pipe, socket or device)"


class JSONFileError(ValueError):
    """A file that could not be read as JSON.  ``problem`` says why in a few words: the OS's or
    the parser's own message, :data:`NOT_REGULAR`, or ``"N bytes is too large"``; ``size`` is
    the file's size in bytes when it was refused for being larger than allowed, else None."""

    def __init__(self, path: str | Path, problem: str, size: int | None = None):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem, self.size = Path(path), problem, size


def read_json(path: str | Path, *, max_bytes: int | None = None) -> Any:
    """The JSON value in the file ``path`` (UTF-8); :class:`JSONFileError` when it is missing,
    unreadable, not a regular file, larger than ``max_bytes`` or not valid JSON."""
    try:
        # O_NONBLOCK: opening a pipe with no writer returns at once instead of waiting for one
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise JSONFileError(path, str(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise JSONFileError(path, NOT_REGULAR)
        if max_bytes is not None and st.st_size > max_bytes:
            raise JSONFileError(path, f"{st.st_size} bytes is too large", st.st_size)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    except OSError as exc:
        raise JSONFileError(path, str(exc)) from None
    finally:
        os.close(fd)
    if max_bytes is not None and len(data) > max_bytes:
        raise JSONFileError(path, f"more than {max_bytes} bytes is too large", len(data))
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise JSONFileError(path, str(exc)) from None
