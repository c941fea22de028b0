"""Reports: report.json, metrics.csv, report.md, report.html and paper-ready figures.

Names load on first use (PEP 562): a comparison that writes no report (``--no-report``)
should not pay for importing matplotlib.
"""

from __future__ import annotations

from repspace._lazy import lazy_attributes

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

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "CheckpointInfo",
    "CompareResult",
    "summarize",
    "terminal_table",
    "tidy_rows",
    "write_report",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
