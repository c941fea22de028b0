"""Reports: report.json, metrics.csv, report.md, report.html and paper-ready figures."""
from repspace.report.result import CheckpointInfo, CompareResult
from repspace.report.summary import summarize
from repspace.report.tables import terminal_table, tidy_rows
from repspace.report.writer import SCHEMA, SCHEMA_VERSION, write_report

__all__ = ["SCHEMA", "SCHEMA_VERSION", "CheckpointInfo", "CompareResult", "summarize",
           "terminal_table", "tidy_rows", "write_report"]
