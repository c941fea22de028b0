"""Reading text, JSON, JSON-lines and CSV files that users (or strangers) wrote: one place
for decoding, with one-line errors that name the file and what to do.

Every text file repspace reads as data (probe ``.txt`` / ``.jsonl`` / ``.csv`` files,
``captions.*`` beside an image folder, training data specs, COCO / VQAv2 JSON, labelled
``.jsonl`` texts, study configs) is decoded by :func:`decode_text`: UTF-8, with a leading
byte-order mark dropped (editors on Windows write one; left in, it became part of the first
text), UTF-16 and other encodings refused in one line naming the file and the fix.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any

__all__ = [
    "decode_text",
    "read_text",
    "read_json",
    "parse_json",
    "read_jsonl",
    "read_csv",
    "require_list",
    "require_keys",
]

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")


def decode_text(data: bytes, path: str | os.PathLike, what: str) -> str:
    """``data`` (the bytes of file ``path``, described as ``what``) as text: UTF-8, a leading
    byte-order mark dropped; ``ValueError`` naming the file and the fix otherwise."""
    path = os.fspath(path)
    if data.startswith(_UTF32_BOMS) or data.startswith(_UTF16_BOMS):
        kind = "UTF-32" if data.startswith(_UTF32_BOMS) else "UTF-16"
        raise ValueError(
            f"{what} {path} is {kind} text, not UTF-8; save it as UTF-8 (e.g. "
            f"iconv -f {kind} -t UTF-8, or 'Save as UTF-8' in the editor)"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8, or "
            "'Save as UTF-8' in the editor)"
        ) from None


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__


def read_text(path: str | os.PathLike, what: str) -> str:
    """The text of file ``path`` (see :func:`decode_text`); a missing file, a folder or a
    named pipe (which would block the reader) fail in one line naming it."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"{what} file does not exist: {path}")
    if not os.path.isfile(path):
        raise ValueError(f"{what} {path} is not a regular file")
    with open(path, "rb") as f:
        return decode_text(f.read(), path, what)


def parse_json(text: str, path: str | os.PathLike, what: str) -> Any:
    """JSON ``text`` of file ``path``; ``ValueError`` naming the file and the position."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{what} file {os.fspath(path)} is not valid JSON: {e.msg} at line "
            f"{e.lineno} column {e.colno}"
        ) from None
    except RecursionError:
        raise ValueError(
            f"{what} file {os.fspath(path)} is not usable JSON: nested too deeply"
        ) from None
    except ValueError as e:  # e.g. an integer beyond Python's 4300-digit conversion limit
        raise ValueError(f"{what} file {os.fspath(path)} is not usable JSON: {_short(e)}") from None


def read_json(path: str | os.PathLike, what: str) -> Any:
    """Parse JSON file ``path`` (described as ``what`` in errors, e.g. ``"caption annotations"``)."""
    return parse_json(read_text(path, what), path, what)


def read_jsonl(path: str | os.PathLike, what: str, hint: str = "") -> list[tuple[int, dict]]:
    """``(line number, object)`` for every non-blank line of JSON-lines file ``path``; a line
    that is not JSON, or JSON but not an object, fails naming the file and the line
    (``hint``: what one line should look like)."""
    path = os.fspath(path)
    out = []
    for i, line in enumerate(read_text(path, what).splitlines()):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, a 5000-digit integer
            why = (
                exc.msg
                if isinstance(exc, json.JSONDecodeError)
                else "nested too deeply"
                if isinstance(exc, RecursionError)
                else _short(exc)
            )
            raise ValueError(f"{path}: line {i + 1} is not valid JSON ({why})") from None
        if not isinstance(obj, dict):
            raise ValueError(
                f"{path}: line {i + 1} is JSON but not an object "
                f"({type(obj).__name__}){'; ' + hint if hint else ''}"
            )
        out.append((i + 1, obj))
    return out


def read_csv(path: str | os.PathLike, what: str) -> list[dict]:
    """The rows of CSV file ``path`` as dicts keyed by its header row."""
    path = os.fspath(path)
    text = read_text(path, what)
    try:
        return list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:  # NUL bytes, a field beyond the size limit
        raise ValueError(f"{path}: not a readable CSV file ({exc})") from None


def require_list(doc: Any, key: str, path: str) -> list:
    """``doc[key]``, which must exist and be a list (``doc`` must be a JSON object)."""
    if not isinstance(doc, dict):
        raise ValueError(
            f"{path}: top level must be a JSON object with a {key!r} list, got {type(doc).__name__}"
        )
    if key not in doc:
        raise ValueError(f"{path}: missing top-level key {key!r}")
    if not isinstance(doc[key], list):
        raise ValueError(f"{path}: {key!r} must be a list, got {type(doc[key]).__name__}")
    return doc[key]


def require_keys(entry: Any, keys: tuple[str, ...], where: str, path: str) -> None:
    """Check that ``entry`` (described as ``where``, e.g. ``"images[3]"``) is an object with ``keys``."""
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: {where} must be a JSON object, got {type(entry).__name__}")
    missing = [k for k in keys if k not in entry]
    if missing:
        raise ValueError(f"{path}: {where} is missing key(s) {missing}")
