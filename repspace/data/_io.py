"""JSON reading with one-line errors that name the file and what is wrong."""
from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["read_json", "require_list", "require_keys"]


def read_json(path: str | os.PathLike, what: str) -> Any:
    """Parse JSON file ``path`` (described as ``what`` in errors, e.g. ``"caption annotations"``)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{what} file does not exist: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} file {path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} file {path} is not UTF-8 text: {e.reason} at byte {e.start}") from None


def require_list(doc: Any, key: str, path: str) -> list:
    """``doc[key]``, which must exist and be a list (``doc`` must be a JSON object)."""
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: top level must be a JSON object with a {key!r} list, got {type(doc).__name__}")
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
