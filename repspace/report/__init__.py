"""Reports: report.json, metrics.csv, report.md, report.html and paper-ready figures.

Names load on first use (PEP 562): a comparison that writes no report (``--no-report``)
should not pay for importing matplotlib.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "CheckpointInfo": "repspace.report.result",
    "CompareResult": "repspace.report.result",
    "summarize": "repspace.report.summary",
    "terminal_table": "repspace.report.tables",
    "tidy_rows": "repspace.report.tables",
    "SCHEMA": "repspace.report.writer",
    "SCHEMA_VERSION": "repspace.report.writer",
    "write_report": "repspace.report.writer",
}

__all__ = ["SCHEMA", "SCHEMA_VERSION", "CheckpointInfo", "CompareResult", "summarize",
           "terminal_table", "tidy_rows", "write_report"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'repspace.report' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
