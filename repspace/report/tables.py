"""Tidy rows, CSV, terminal and markdown tables of a comparison."""

from __future__ import annotations

import csv
import io
import math
import re

from repspace.report.result import CompareResult

CSV_COLUMNS = ("checkpoint", "layer", "layer_index", "metric", "value", "se", "low", "high")
HEADLINE = (
    "linear_cka",
    "linear_cka_debiased",
    "effective_rank_base",
    "effective_rank_tuned",
    "twonn_dimension_ratio",
    "mle_dimension_ratio",  # opt-in: shown when computed
    "frechet_distance",
    "cosine_similarity_mean",
)


def tidy_rows(result: CompareResult) -> list[dict]:
    """One row per checkpoint × layer × metric."""
    rows = []
    for name in result.tuned_names:
        for i, layer in enumerate(result.layers):
            for metric, value in result.metrics.get(name, {}).get(layer, {}).items():
                iv = result.interval(name, layer, metric) or {}
                rows.append(
                    {
                        "checkpoint": name,
                        "layer": layer,
                        "layer_index": i,
                        "metric": metric,
                        "value": value,
                        **{k: iv.get(k, math.nan) for k in ("se", "low", "high")},
                    }
                )
    return rows


def to_csv(result: CompareResult) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in tidy_rows(result):
        writer.writerow({**row, **{k: repr(float(row[k])) for k in ("value", "se", "low", "high")}})
    return buf.getvalue()


def _fmt(v, iv: dict | None = None) -> str:
    """``0.9123 ± 0.0110`` (half the 95 % interval) where an interval exists; no ``-0.0000``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "nan"
    text = f"{v:.4f}" if abs(v) < 1e4 else f"{v:.3e}"
    text = "0.0000" if text == "-0.0000" else text
    if iv and math.isfinite(iv.get("low", math.nan)) and math.isfinite(iv.get("high", math.nan)):
        half = (iv["high"] - iv["low"]) / 2
        text += f" ± {half:.4f}" if abs(half) < 1e4 else f" ± {half:.3e}"
    return text


# "&" only where it would start an entity ("&amp;" would otherwise print as "&"): a plain
# "Roy & Vetterli" stays readable in the .md file and renders as written.
_ENTITY_START = re.compile(r"&(?=#?[0-9A-Za-z]+;)")


def md_text(text) -> str:
    """``text`` as literal markdown: one line, markdown punctuation backslash-escaped, HTML
    tags and entities neutralised, control characters and the invisible characters that
    reorder or hide text (bidi overrides U+202A–U+202E, isolates U+2066–U+2069, zero-width
    characters) shown escaped: names come from checkpoint and probe files, i.e. from anyone."""
    from repspace.cli_errors import printable

    text = " ".join(str(text).split())
    text = re.sub(r"([\\`*_{}\[\]()#|~$^])", r"\\\1", text)  # mid-line: - . + ! are inert
    text = printable(text)  # one line already: every control / invisible character escaped
    text = _ENTITY_START.sub("&amp;", text)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def grid(result: CompareResult, metrics=HEADLINE) -> tuple[list[str], list[list[str]]]:
    """Header and rows (checkpoint, layer, formatted headline metrics) of the tables."""
    return _grid(result, metrics)


def _grid(result: CompareResult, metrics) -> tuple[list[str], list[list[str]]]:
    metrics = [m for m in metrics if m in result.metric_names()]
    header = ["checkpoint", "layer", *metrics]
    body = []
    for name in result.tuned_names:
        for layer in result.layers:
            row = result.metrics.get(name, {}).get(layer, {})
            body.append(
                [name, layer, *(_fmt(row.get(m), result.interval(name, layer, m)) for m in metrics)]
            )
    return header, body


def terminal_table(result: CompareResult, metrics=HEADLINE) -> str:
    header, body = _grid(result, metrics)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    line = "  ".join
    out = [
        line(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))
    ]
    out.append(line("-" * w for w in widths))
    for r in body:
        out.append(
            line(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        )
    return "\n".join(out)


def metrics_asked_for(result: CompareResult) -> bool:
    """Whether the metrics were chosen by name (``--metrics all``, a family, a metric), not
    the default set: then the report shows every measure, by family."""
    return (result.settings or {}).get("metrics", "default") != "default"


def family_columns(result: CompareResult) -> list[tuple[str, list[str]]]:
    """``[(family, metric keys)]`` of every computed registered measure not in the headline
    table, in the registry's order, when :func:`metrics_asked_for` (else ``[]``)."""
    if not metrics_asked_for(result):
        return []
    from repspace.metrics.registry import REGISTRY

    computed = set(result.metric_names())
    out: dict[str, list[str]] = {}
    for m in REGISTRY.values():
        if m.name in computed and m.name not in HEADLINE:
            out.setdefault(m.family, []).append(m.name)
    return list(out.items())


def markdown_table(result: CompareResult, metrics=HEADLINE) -> str:
    header, body = _grid(result, metrics)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += [
        "| " + " | ".join(md_text(c) if i < 2 else c for i, c in enumerate(r)) + " |" for r in body
    ]
    return "\n".join(out)
