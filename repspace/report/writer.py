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
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from repspace import __version__
from repspace.outputs import apply_umask, check_output, publish, staging_dir
from repspace.report import analyses as _analyses  # noqa: F401 - registers the analysis captions
from repspace.report import plots as _plots
from repspace.report.result import CompareResult
from repspace.report.summary import rank_bound, summarize
from repspace.report.tables import family_columns, grid, markdown_table, md_text, to_csv

SCHEMA = "repspace.report"
SCHEMA_VERSION = 1
PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "numpy",
    "scipy",
    "scikit-learn",
    "umap-learn",
    "matplotlib",
    "safetensors",
)
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


def figure_captions(result: CompareResult, plots: dict[str, list[str]]) -> dict[str, str]:
    """``{figure file: caption}`` for every file written (PDF and PNG of one figure share
    the caption that report.html and report.md print under it)."""
    from repspace.report.plots import caption

    return {f: caption(name, result) for name, files in plots.items() for f in files}


def report_dict(result: CompareResult, summary: str, plots: dict[str, list[str]]) -> dict:
    return _jsonable(
        {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "packages": package_versions(),
            "inputs": {
                "base": result.base.to_dict(),
                "tuned": [t.to_dict() for t in result.tuned],
                "probe": result.probe,
            },
            "settings": result.settings,
            "layers": result.layers,
            "results": [
                {
                    "checkpoint": name,
                    "layer": layer,
                    "metrics": result.metrics.get(name, {}).get(layer, {}),
                    "intervals": result.intervals.get(name, {}).get(layer, {}),
                }
                for name in result.tuned_names
                for layer in result.layers
            ],
            "differences": result.differences,
            "spectra": {
                name: {layer: sv for layer, sv in by_layer.items()}
                for name, by_layer in result.spectra.items()
            },
            "summary": summary,
            "warnings": list(getattr(result, "warnings", [])),
            "analyses": getattr(result, "analyses", {}),
            "plots": plots,
            "captions": figure_captions(result, plots),
        }
    )


def _fmt_num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}" if abs(v) < 1e4 else f"{v:.3e}"


def key_numbers(result: CompareResult) -> tuple[list[str], list[list[str]]]:
    """The few numbers per checkpoint that matter (header, rows): mean and min linear CKA
    (and the layer of the min), the effective-rank ratio tuned/base at the last layer, and
    the mean Fréchet distance and Procrustes distance where measured."""
    from repspace.report.layer_names import tower_short_names

    short = dict(zip(result.layers, tower_short_names(result.layers)))
    last = result.layers[-1] if result.layers else None
    names = set(result.metric_names())
    head = [
        "checkpoint",
        "mean linear CKA",
        "min linear CKA (layer)",
        f"effective-rank ratio ({short.get(last, 'last layer')})",
    ]
    extra = [
        (m, label)
        for m, label in (
            ("frechet_distance", "mean Fréchet distance"),
            ("procrustes", "mean Procrustes distance"),
            ("procrustes_distance", "mean Procrustes distance"),
        )
        if m in names
    ]
    head += [label for _, label in extra]
    rows = []
    for name in result.tuned_names:
        cka = result.series(name, "linear_cka")
        if np.isnan(cka).all():
            mean, low = "n/a", "n/a"
        else:
            i = int(np.nanargmin(cka))
            mean = _with_interval(
                float(np.nanmean(cka)),
                result.derived_interval(
                    name, np.mean, *(("linear_cka", layer) for layer in result.layers)
                ),
                4,
            )
            low = (
                _with_interval(
                    float(cka[i]), result.interval(name, result.layers[i], "linear_cka"), 4
                )
                + f" ({short[result.layers[i]]})"
            )
        row = result.metrics.get(name, {}).get(last, {}) if last else {}
        eb, et = row.get("effective_rank_base"), row.get("effective_rank_tuned")
        ratio = (
            et / eb if (eb and et is not None and math.isfinite(eb) and math.isfinite(et)) else None
        )
        ratio_iv = (
            result.derived_interval(
                name,
                lambda v: v[1] / v[0],
                ("effective_rank_base", last),
                ("effective_rank_tuned", last),
            )
            if last
            else None
        )
        cells = [name, mean, low, _with_interval(ratio, ratio_iv)]
        for m, _ in extra:
            s = result.series(name, m)
            cells.append(
                "n/a"
                if np.isnan(s).all()
                else _with_interval(
                    float(np.nanmean(s)),
                    result.derived_interval(
                        name, np.mean, *((m, layer) for layer in result.layers)
                    ),
                )
            )
        rows.append(cells)
    return head, rows


def _with_interval(v, iv: dict | None, digits: int = 3) -> str:
    """``0.912 ± 0.011``: the value and half its 95 % interval (when there is one)."""
    text = _fmt_num(v, digits)
    if text == f"-{0:.{digits}f}":
        text = f"{0:.{digits}f}"
    if (
        v is not None
        and iv
        and math.isfinite(iv.get("low", math.nan))
        and math.isfinite(iv.get("high", math.nan))
    ):
        text += f" ± {(iv['high'] - iv['low']) / 2:.{digits}f}"
    return text


def _shown(spec: str) -> str:
    """A checkpoint as the user named it: the built-in model as ``embedded``, not the folder
    it resolves to (other specs are kept as given: relative stays relative)."""
    try:
        from repspace.checkpoints import resolve_spec

        if spec == resolve_spec("embedded"):
            return "embedded (the built-in model)"
    except Exception:  # noqa: BLE001 - not installed: nothing to map
        pass
    return str(spec)


def statistics_text(stats: dict) -> str:
    """``rows for 22 layers, moments for 2 (5.8 MB held)``: how the statistics were held."""
    routes = stats.get("routes", {})
    if routes and all(isinstance(v, dict) for v in routes.values()):  # per checkpoint
        routes = {f"{name}: {layer}": r for name, per in routes.items() for layer, r in per.items()}
    counts = {route: sum(1 for r in routes.values() if r == route) for route in ("rows", "moments")}
    text = ", ".join(
        f"{route} for {k} layer{'s' if k != 1 else ''}" for route, k in counts.items() if k
    )
    held = stats.get("bytes")
    return f"{text or 'none'}" + (f" ({held / 2**20:.1f} MiB held)" if held is not None else "")


def _settings_text(result: CompareResult) -> list[tuple[str, str]]:
    """(label, value) lines of the report header."""
    st = result.settings or {}
    probe = result.probe or {}
    out = [("base model", f"{result.base.name} = {_shown(result.base.spec)} ({result.base.kind})")]
    out += [("tuned", f"{t.name} = {_shown(t.spec)} ({t.kind})") for t in result.tuned]
    if probe:
        sha = probe.get("sha256")
        out.append(
            (
                "probe",
                f"{probe.get('source', '?')}, n = {probe.get('num_samples', '?')}"
                + (f", sha256 {sha[:12]}…" if sha else "")
                + (
                    f", modalities {', '.join(probe['modalities'])}"
                    if probe.get("modalities")
                    else ""
                ),
            )
        )
    from repspace.report.layer_names import layer_groups, short_layer_names

    groups = layer_groups(result.layers)
    if len(groups) > 1:
        text = "; ".join(
            f"{g}: " + ", ".join(short_layer_names([result.layers[i] for i in idx]))
            for g, idx in groups
        )
    else:
        text = ", ".join(result.layers)
    out.append(("layers", f"{len(result.layers)} ({st.get('layers', 'chosen')}): {text}"))
    if st.get("pooling"):
        out.append(("pooling", str(st["pooling"])))
    from repspace.report.analyses import base_capture_text

    captured = base_capture_text(st)
    if captured:
        out.append(("base capture", captured))
    if isinstance(st.get("statistics"), dict):
        out.append(("statistics", statistics_text(st["statistics"])))
    rest = {
        k: v for k, v in st.items() if k not in ("layers", "pooling", "base_capture", "statistics")
    }
    if rest:
        out.append(("settings", ", ".join(f"{k}={v}" for k, v in rest.items())))
    return out


def _markdown(result: CompareResult, summary: str, plots: dict[str, list[str]]) -> str:
    from repspace.report.plots import caption

    names = md_text(", ".join(result.tuned_names))
    lines = [
        f"# repspace report: {names} vs {md_text(result.base.name)}",
        "",
        md_text(summary),
        "",
        "## Setup",
        "",
    ]
    lines += [f"- **{label}**: {md_text(value)}" for label, value in _settings_text(result)]
    lines += [
        f"- sha256 of {md_text(c.name)}: {md_text(c.sha256 or 'n/a')}"
        for c in [result.base, *result.tuned]
    ]
    if getattr(result, "warnings", None):
        lines += ["", "## Warnings", ""] + [f"- {md_text(w)}" for w in result.warnings]
    head, rows = key_numbers(result)
    lines += [
        "",
        "## Key numbers",
        "",
        "| " + " | ".join(md_text(h) for h in head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(md_text(c) for c in r) + " |" for r in rows]
    bound = rank_bound(result)
    if bound:
        lines += ["", md_text(bound)]
    lines += [
        "",
        "## Per-layer metrics",
        "",
        "<details><summary>Full table "
        f"({len(result.tuned_names)} checkpoints × {len(result.layers)} layers)</summary>",
        "",
        markdown_table(result),
        "",
        "</details>",
        "",
    ]
    for family, keys in family_columns(result):  # metrics asked for by name: every one
        lines += [
            f"### {md_text(family[:1].upper() + family[1:])}",
            "",
            markdown_table(result, keys),
            "",
        ]
    lines += ["All metrics per layer are in `metrics.csv` (tidy) and `report.json`."]
    if result.settings.get("intervals"):
        iv = result.settings["intervals"]
        lines += [
            "",
            f"± is half the {iv.get('level', 0.95):.0%} interval of a delete-one-block "
            f"jackknife over {iv.get('blocks')} blocks of probe rows (no extra forward "
            "pass; the same blocks for every checkpoint, so differences are paired: "
            "`differences` in report.json).",
        ]
    from repspace.report.analyses import markdown_section

    lines += markdown_section(result) + ["", "## Figures", ""]
    for i, (name, files) in enumerate(plots.items(), 1):
        png = next((f for f in files if f.endswith(".png")), None)
        if png:
            lines += [
                f"![{name}]({png})",
                "",
                f"*Figure {i}.* {md_text(caption(name, result))} "
                f"(vector version: `{next((f for f in files if f.endswith('.pdf')), '')}`)",
                "",
            ]
    return "\n".join(lines)


def _h(text) -> str:
    """HTML-escaped text with control characters (terminal escapes, NUL) and the invisible
    characters that reorder or hide text (bidi overrides and isolates, zero-width
    characters: a checkpoint named ``lora-\u202egnp.exe``) made visible."""
    from repspace.cli_errors import escape_text

    return html.escape(escape_text(str(text)).replace("\r", "\\x0d"))


def _html(result: CompareResult, summary: str, plots: dict[str, list[str]], root: Path) -> str:
    from repspace.report.plots import caption

    def img(i: int, name: str, path: str) -> str:
        data = base64.b64encode((root / path).read_bytes()).decode()
        return (
            f'<figure id="fig-{_h(name)}"><img alt="Figure {i}: {_h(name)}" '
            f'src="data:image/png;base64,{data}"><figcaption><b>Figure {i}.</b> '
            f"{_h(caption(name, result))}</figcaption></figure>"
        )

    def table(head, rows, cls) -> str:
        return (
            f'<table class="{cls}"><thead><tr>'
            + "".join(f"<th>{_h(h)}</th>" for h in head)
            + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{_h(c)}</td>" for c in r) + "</tr>" for r in rows)
            + "</tbody></table>"
        )

    head, rows = grid(result)  # the cells themselves: a "|" in a name cannot shift columns
    head = [h.replace("_", " ") for h in head]
    full = table(head, rows, "full")
    for family, keys in family_columns(result):  # metrics asked for by name: every one
        fhead, frows = grid(result, keys)
        full += f"<h3>{_h(family[:1].upper() + family[1:])}</h3>" + table(
            [h.replace("_", " ") for h in fhead], frows, "full"
        )
    key = table(*key_numbers(result), "key")
    pngs = [
        (name, next((f for f in files if f.endswith(".png")), None))
        for name, files in plots.items()
    ]
    figures = "".join(img(i, name, f) for i, (name, f) in enumerate(pngs, 1) if f)
    setup = "".join(
        f"<tr><th>{_h(label)}</th><td><code>{_h(value)}</code></td></tr>"
        if label in ("base model", "tuned")
        else f"<tr><th>{_h(label)}</th><td>{_h(value)}</td></tr>"
        for label, value in _settings_text(result)
    )
    warned = "".join(f"<li>{_h(w)}</li>" for w in getattr(result, "warnings", []))
    warned = f'<h2>Warnings</h2><ul class="warnings">{warned}</ul>' if warned else ""
    title = f"{', '.join(result.tuned_names)} vs {result.base.name}"
    from repspace.report.analyses import html_section

    analyses = html_section(result)
    sentences = "".join(f"<li>{_h(x)}</li>" for x in re.split(r"(?<=\.) (?=\S)", summary) if x)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>repspace report: {_h(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }}
table {{ border-collapse: collapse; font-size: 0.85em; }} th, td {{ border: 1px solid #ccc; padding: 3px 7px; text-align: right; }}
th {{ background: #f2f2f2; }} td:first-child {{ text-align: left; }}
table.setup th, table.setup td {{ text-align: left; border: none; padding: 2px 10px 2px 0; background: none; vertical-align: top; }}
table.setup code {{ word-break: break-all; }}
.scroll {{ overflow-x: auto; max-width: 100%; }} table.full {{ font-size: 0.78em; }}
table.full td:nth-child(2) {{ text-align: left; word-break: break-all; }}
details {{ margin: 1em 0; }} summary {{ cursor: pointer; font-weight: 600; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }} figcaption {{ font-size: 0.9em; color: #444; margin-top: 0.3em; }}
.summary {{ font-size: 1.0em; background: #f7f7f7; padding: 0.6em 1em 0.6em 2em; border-left: 4px solid #0072B2; }}
ul.warnings {{ background: #fff6e5; border-left: 4px solid #E69F00; padding: 0.6em 0.6em 0.6em 2em; }}
</style></head><body>
<h1>repspace report: {_h(title)}</h1>
<ul class="summary">{sentences}</ul>
<h2>Setup</h2><table class="setup">{setup}</table>
{warned}
<h2>Key numbers</h2><div class="scroll">{key}</div>
<p><small>Mean and minimum over the {len(result.layers)} compared layers; effective-rank ratio = tuned / base at the last layer (1 = unchanged). {_h(rank_bound(result))}</small></p>
<h2>Per-layer metrics</h2>
<details><summary>Full table ({len(result.tuned_names)} checkpoints × {len(result.layers)} layers)</summary><div class="scroll">{full}</div></details>
{analyses}
<h2>Figures</h2>{figures}
<p><small>repspace {__version__}. Full data: report.json, metrics.csv.</small></p>
</body></html>
"""


def write_report(
    result: CompareResult,
    output_dir: str | Path,
    overwrite: bool = False,
    plots: tuple[str, ...] | None = None,
    inputs=(),
    progress: bool | None = None,
) -> Path:
    """Write ``report.json``, ``metrics.csv``, ``report.md``, ``report.html`` and
    ``plots/*.{pdf,png}`` into ``output_dir`` atomically; returns ``output_dir``.

    ``output_dir`` may be new, an empty folder, or (with ``overwrite``) an earlier report; never
    anything else, and never one of ``inputs`` (``(what, path)`` pairs being read).  The
    check runs again here (the CLI also runs it before loading any model) and once more
    under the final rename (:func:`repspace.outputs.publish`).  ``progress``: a bar over the
    figures (None: when stderr is a terminal).
    """
    out = check_output(output_dir, overwrite=overwrite, inputs=inputs)
    if progress is None:
        progress = sys.stderr.isatty()
    created = [p for p in out.parents if not os.path.lexists(p)]  # removed again on failure
    tmp = staging_dir(out)
    try:
        written: dict[str, list[str]] = {}
        chosen = {
            name: fn for name, fn in _plots.ALL_PLOTS.items() if plots is None or name in plots
        }
        for name, fn in tqdm(
            chosen.items(),
            total=len(chosen),
            desc="report",
            unit="figure",
            disable=not progress,
            leave=False,
        ):
            files = fn(result, tmp / "plots" / name)
            if files:
                written[name] = [str(p.relative_to(tmp)) for p in files]
        if plots is None:  # the analyses that ran (issue 19), captioned by report.analyses
            from repspace.report.analyses import analysis_plots

            for name, files in analysis_plots(result, tmp / "plots").items():
                written[name] = [str(p.relative_to(tmp)) for p in files]
        summary = summarize(result)
        (tmp / "report.json").write_text(
            json.dumps(report_dict(result, summary, written), indent=2)
        )
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
    return Path(output_dir)
