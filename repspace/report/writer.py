"""Write a complete report folder atomically.

Everything is written into a recognisable staging folder beside the target first
(:mod:`repspace.outputs`), given the umask's modes and moved into place with one rename at
the end, so an interrupted or failed run never leaves a half-written report, and only an
existing *report* folder is ever replaced (with ``overwrite=True``).  Names come from
checkpoints and probes, i.e. from strangers: report.md and report.html escape them.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import os
import re
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np

from repspace import __version__
from repspace.outputs import apply_umask, check_output, publish, staging_dir
from repspace.report import plots as _plots
from repspace.report.result import CompareResult
from repspace.report.summary import summarize
from repspace.report.tables import grid, markdown_table, md_text, to_csv

SCHEMA = "repspace.report"
SCHEMA_VERSION = 1
PACKAGES = ("torch", "transformers", "peft", "numpy", "scipy", "scikit-learn", "umap-learn",
            "matplotlib", "safetensors")
FILES = ("report.json", "metrics.csv", "report.md", "report.html")


def package_versions() -> dict[str, str | None]:
    out = {"repspace": __version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN; null means "undefined", see the metric's warning
    if isinstance(v, (np.floating, np.integer)):
        return _jsonable(v.item())
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def report_dict(result: CompareResult, summary: str, plots: dict[str, list[str]]) -> dict:
    return _jsonable({
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "packages": package_versions(),
        "inputs": {"base": result.base.to_dict(), "tuned": [t.to_dict() for t in result.tuned],
                   "probe": result.probe},
        "settings": result.settings,
        "layers": result.layers,
        "results": [{"checkpoint": name, "layer": layer,
                     "metrics": result.metrics.get(name, {}).get(layer, {})}
                    for name in result.tuned_names for layer in result.layers],
        "spectra": {name: {layer: sv for layer, sv in by_layer.items()}
                    for name, by_layer in result.spectra.items()},
        "summary": summary,
        "warnings": list(getattr(result, "warnings", [])),
        "plots": plots,
    })


def _markdown(result: CompareResult, summary: str, plots: dict[str, list[str]]) -> str:
    names = md_text(", ".join(result.tuned_names))
    lines = [f"# repspace report: {names} vs {md_text(result.base.name)}", "",
             md_text(summary), "", "## Inputs", "",
             f"- base: {md_text(result.base.spec)} ({md_text(result.base.kind)}, sha256 "
             f"{md_text(result.base.sha256 or 'n/a')})"]
    lines += [f"- tuned: {md_text(t.spec)} ({md_text(t.kind)}, sha256 {md_text(t.sha256 or 'n/a')})"
              for t in result.tuned]
    if result.probe:
        lines.append(f"- probe data: {md_text(result.probe.get('source', '?'))}, "
                     f"{md_text(result.probe.get('num_samples', '?'))} samples")
    if getattr(result, "warnings", None):
        lines += ["", "## Warnings", ""] + [f"- {md_text(w)}" for w in result.warnings]
    lines += ["", "## Per-layer metrics", "", markdown_table(result), "",
              "All metrics per layer are in `metrics.csv` (tidy) and `report.json`.", "",
              "## Figures", ""]
    for name, files in plots.items():
        png = next((f for f in files if f.endswith(".png")), None)
        if png:
            lines += [f"![{name}]({png})", ""]
    return "\n".join(lines)


def _h(text) -> str:
    """HTML-escaped text with control characters (terminal escapes, NUL) made visible."""
    return html.escape(re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}",
                              str(text)))


def _html(result: CompareResult, summary: str, plots: dict[str, list[str]], root: Path) -> str:
    def img(path: str) -> str:
        data = base64.b64encode((root / path).read_bytes()).decode()
        return f'<figure><img alt="{html.escape(path)}" src="data:image/png;base64,{data}"></figure>'

    head, rows = grid(result)  # the cells themselves: a "|" in a name cannot shift columns
    table = ("<table><thead><tr>" + "".join(f"<th>{_h(h)}</th>" for h in head)
             + "</tr></thead><tbody>"
             + "".join("<tr>" + "".join(f"<td>{_h(c)}</td>" for c in r) + "</tr>" for r in rows)
             + "</tbody></table>")
    figures = "".join(img(f) for files in plots.values() for f in files if f.endswith(".png"))
    inputs = "".join(f"<li><code>{_h(t.spec)}</code> ({_h(t.kind)})</li>"
                     for t in [result.base, *result.tuned])
    warned = "".join(f"<li>{_h(w)}</li>" for w in getattr(result, "warnings", []))
    warned = f'<h2>Warnings</h2><ul class="warnings">{warned}</ul>' if warned else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>repspace report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; }} th, td {{ border: 1px solid #ccc; padding: 3px 7px; text-align: right; }}
th {{ background: #f2f2f2; }} td:nth-child(-n+2) {{ text-align: left; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }} .summary {{ font-size: 1.05em; background: #f7f7f7; padding: 0.8em 1em; border-left: 4px solid #0072B2; }}
</style></head><body>
<h1>repspace report</h1>
<p class="summary">{_h(summary)}</p>
<h2>Inputs</h2><ul>{inputs}</ul>
{warned}
<h2>Per-layer metrics</h2>{table}
<h2>Figures</h2>{figures}
<p><small>repspace {__version__}. Full data: report.json, metrics.csv.</small></p>
</body></html>
"""


def write_report(result: CompareResult, out_dir: str | Path, overwrite: bool = False,
                 plots: tuple[str, ...] | None = None, inputs=()) -> Path:
    """Write ``report.json``, ``metrics.csv``, ``report.md``, ``report.html`` and
    ``plots/*.{pdf,png}`` into ``out_dir`` atomically; returns ``out_dir``.

    ``out_dir`` may be new, an empty folder, or (with ``overwrite``) an earlier report; never
    anything else, and never one of ``inputs`` (``(what, path)`` pairs being read).  The
    check runs again here (the CLI also runs it before loading any model) and once more
    under the final rename (:func:`repspace.outputs.publish`).
    """
    out = check_output(out_dir, overwrite=overwrite, inputs=inputs)
    created = [p for p in out.parents if not os.path.lexists(p)]  # removed again on failure
    tmp = staging_dir(out)
    try:
        written: dict[str, list[str]] = {}
        for name, fn in _plots.ALL_PLOTS.items():
            if plots is not None and name not in plots:
                continue
            files = fn(result, tmp / "plots" / name)
            if files:
                written[name] = [str(p.relative_to(tmp)) for p in files]
        summary = summarize(result)
        (tmp / "report.json").write_text(json.dumps(report_dict(result, summary, written), indent=2))
        (tmp / "metrics.csv").write_text(to_csv(result))
        (tmp / "report.md").write_text(_markdown(result, summary, written))
        (tmp / "report.html").write_text(_html(result, summary, written, tmp))
        apply_umask(tmp)  # mkdtemp made it 0700: a report is as readable as any file you write
        publish(tmp, out, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # deepest first; only the empty ones this call made
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return Path(out_dir)
