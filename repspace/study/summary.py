"""The study's ``summary.md`` and its plain-language headline lines."""

from __future__ import annotations

import math
from pathlib import Path

from repspace.study.claims import check_claims
from repspace.study.config import BASE_METHOD
from repspace.study.results import PRIMARY_SCORE, main_slice
from repspace.outputs import atomic_write_text

__all__ = ["headline", "markdown", "write_summary"]


def _ok(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _pm(row: dict, col: str, digits: int = 3) -> str:
    """``mean ± half-width`` (half of the row's 95 % interval), ``mean`` alone without one."""
    m, lo, hi = row.get(col), row.get(f"{col}_ci_low"), row.get(f"{col}_ci_high")
    if not _ok(m):
        return "n/a"
    if _ok(lo) and _ok(hi):
        return f"{m:.{digits}f} ± {(hi - lo) / 2:.{digits}f}"
    return f"{m:.{digits}f}"


def headline(result) -> list[str]:
    """Five plain-language lines: closest method, best score, rank change, PT-PEFT, where."""
    tables = result.tables
    lines: list[str] = []
    for task in dict.fromkeys(r["task"] for r in tables.summary):
        rows = [r for r in main_slice(tables.summary, task) if r["method"] != BASE_METHOD]
        if not rows:
            continue
        score = PRIMARY_SCORE.get(task, "score")
        by_cka = sorted(
            (r for r in rows if _ok(r["mean_linear_cka"])), key=lambda r: -r["mean_linear_cka"]
        )
        if by_cka:
            top, low = by_cka[0], by_cka[-1]
            lines.append(
                f"[{task}] Closest to the base representation: {top['method']} "
                f"(mean CKA {top['mean_linear_cka']:.4f}); furthest: {low['method']} "
                f"({low['mean_linear_cka']:.4f})."
            )
        scored = sorted(
            (r for r in rows if _ok(r["primary_score"])), key=lambda r: -r["primary_score"]
        )
        base = next(
            (r for r in main_slice(tables.summary, task) if r["method"] == BASE_METHOD), None
        )
        if scored:
            extra = (
                f"; untrained base {base['primary_score']:.3f}"
                if base and _ok(base["primary_score"])
                else ""
            )
            lines.append(
                f"[{task}] Best {score}: {scored[0]['method']} "
                f"({scored[0]['primary_score']:.3f}); lowest: {scored[-1]['method']} "
                f"({scored[-1]['primary_score']:.3f}){extra}."
            )
        ranks = [f"{r['method']} {r['erank_ratio']:.2f}×" for r in rows if _ok(r["erank_ratio"])]
        if ranks:
            lines.append(
                f"[{task}] Effective rank at {tables.summary_layer} vs base: "
                + ", ".join(ranks)
                + "."
            )
        by = {r["method"]: r for r in rows}
        pt = [
            f"{a} {by[a]['primary_score']:.3f} vs {b} {by[b]['primary_score']:.3f} "
            f"(rank ratio {by[a]['erank_ratio']:.2f} vs {by[b]['erank_ratio']:.2f})"
            for a, b in (("pt_lora", "lora"), ("pt_adapter", "adapter"))
            if a in by and b in by and _ok(by[a]["primary_score"]) and _ok(by[b]["primary_score"])
        ]
        if pt:
            lines.append(f"[{task}] PT-PEFT vs vanilla ({score}): " + "; ".join(pt) + ".")
    lines.append(
        f"Tables: {result.output_dir / 'results'}; figures: "
        f"{result.output_dir / 'figures'}; summary: {result.output_dir / 'summary.md'}."
    )
    return lines


def _table(tables, task: str) -> list[str]:
    score = PRIMARY_SCORE.get(task, "score")
    layer = tables.summary_layer
    head = [
        "method",
        "budget",
        "data",
        "seeds",
        "trainable %",
        score,
        "mean CKA",
        f"erank ratio ({layer})",
        "erank Δ",
        "PR ratio",
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in (r for r in tables.summary if r["task"] == task):
        budget = "—" if r["budget"] is None else f"{r['budget_field']}={r['budget']}"
        data = "—" if r["data_fraction"] is None else f"{r['data_fraction']:g}"
        pct = (
            f"{r['trainable_percent']:.3f}"
            if _ok(r["trainable_percent"])
            else ("0" if r["method"] == BASE_METHOD else "n/a")
        )
        out.append(
            "| "
            + " | ".join(
                [
                    r["method"],
                    budget,
                    data,
                    str(r["n_seeds"]),
                    pct,
                    _pm(r, "primary_score"),
                    _pm(r, "mean_linear_cka", 4),
                    _pm(r, "erank_ratio"),
                    _pm(r, "erank_delta", 2),
                    _pm(r, "pr_ratio"),
                ]
            )
            + " |"
        )
    return out


def _probe_table(tables, task: str) -> list[str]:
    """One row per method: CKA, effective-rank and participation-ratio ratios on each probe
    (only when the study compared on more than one)."""
    probes = list(
        dict.fromkeys(
            c.split(":", 1)[0]
            for r in tables.summary
            for c in r
            if ":" in c and c.endswith(":erank_ratio")
        )
    )
    if len(probes) < 2:
        return []
    head = ["method", "budget", "data"] + [
        f"{p} {m}" for p in probes for m in ("mean CKA", "erank ratio", "PR ratio")
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in (r for r in tables.summary if r["task"] == task):
        budget = "—" if r["budget"] is None else f"{r['budget_field']}={r['budget']}"
        data = "—" if r["data_fraction"] is None else f"{r['data_fraction']:g}"
        out.append(
            "| "
            + " | ".join(
                [r["method"], budget, data]
                + [
                    _pm(r, f"{p}:{c}", 4 if c == "mean_linear_cka" else 3)
                    for p in probes
                    for c in ("mean_linear_cka", "erank_ratio", "pr_ratio")
                ]
            )
            + " |"
        )
    return [
        "",
        f"Per probe (ratios tuned / base at `{tables.summary_layer}`; `task` = the "
        "shapes-world probe, the tasks' own distribution; `general` = diverse "
        "general-text sentences, `repspace.probe.general_text`):",
        "",
        *out,
    ]


def markdown(result) -> str:
    cfg, tables = result.config, result.tables
    n = len(result.records) + len(result.failed)
    lines = [
        f"# repspace study: {cfg.name}",
        "",
        f"{n} cells ({len(result.computed)} computed in the last run, {len(result.cached)} "
        f"from cache, {len(result.failed)} failed). Base `{cfg.base}`, tasks "
        f"{', '.join(cfg.tasks)}, seeds {', '.join(map(str, cfg.seeds))}, probe "
        f"{' + '.join(f'`{p}`' for p in cfg.compare.probes)} "
        f"({cfg.compare.num_samples} samples each, layers "
        f"`{cfg.compare.layers}`).",
        "",
    ]
    lines += [f"- {line}" for line in headline(result)[:-1]]
    one_seed = all(r["n_seeds"] < 2 for r in tables.summary)
    lines += [
        "",
        "Values are means over seeds ± half the 95 % Student-t interval (n − 1 dof)"
        + (
            ". **One seed per cell: no interval over seeds is defined**; the values are "
            "± half the interval the claim checks use instead: the delete-one-block "
            "jackknife over the probe rows for CKA, ranks and their ratios, p(1 − p)/n "
            "over the held-out items for accuracies; a value without ± has neither "
            "(`interval` in summary.csv names the source per row)."
            if one_seed
            else "; cells with one seed are ± the jackknife over the probe rows (CKA, "
            "ranks) or the held-out items (accuracies), or the value alone where neither "
            "applies (`interval` in summary.csv)."
        ),
        "`erank ratio` = effective rank of the tuned model / the base's, at the summary "
        "layer; `PR ratio` the same for the participation ratio; `mean CKA` = linear "
        "CKA to the base averaged over the compared layers.",
        "",
    ]
    for task in dict.fromkeys(r["task"] for r in tables.summary):
        lines += [f"## {task}", "", *_table(tables, task), *_probe_table(tables, task), ""]
    claims = check_claims(tables) if tables.summary else []
    if claims:
        lines += [
            "## The papers' claims on this study",
            "",
            "A claim **holds** or is **contradicted** only when the 95 % interval of "
            "its quantity (the difference between two methods, a ratio against 1) "
            "excludes the other side; otherwise it is **undetermined**. The evidence "
            "gives each side as value ± half its interval and the difference with its "
            "interval. Intervals: over seeds when every side has two or more (Student-t; "
            "Welch–Satterthwaite for differences); with **one seed** (the verdict says "
            "so) the delete-one-block jackknife over the probe rows for representation "
            "numbers (paired when both cells saw the same probe rows), the bound "
            "p(1 − p)/n over the held-out items for accuracies, none for other scores. "
            "Two methods are compared like with like: at the largest data fraction both "
            "have and at the same budget where both vary the same knob (else the budgets "
            "closest in trainable parameters); the evidence names the budgets compared. "
            "One-method checks use the main slice (first budget, largest data "
            "fraction).",
            "",
            "| task | paper | claim | verdict | evidence |",
            "|---|---|---|---|---|",
        ]
        cell = lambda text: str(text).replace("|", "\\|")  # noqa: E731 - |x − 1| in evidence
        lines += [
            "| "
            + " | ".join(cell(c[k]) for k in ("task", "paper", "claim", "verdict", "evidence"))
            + " |"
            for c in claims
        ]
        lines.append("")
    if getattr(result, "seed_baseline", None):
        from repspace.study.seed_baseline import summary_lines

        lines += summary_lines(
            result.seed_baseline, figure="seed_baseline.png" in getattr(result, "files", {})
        )
    skipped = {
        f"`{probe}` ({why})": None
        for rec in result.records
        for probe, why in (rec.get("probe_errors") or {}).items()
    }
    if skipped:
        lines += ["## Probes skipped", "", *[f"- {k}" for k in skipped], ""]
    if result.failed:
        lines += [
            "## Failed cells",
            "",
            *[f"- `{k}`: {v}" for k, v in result.failed.items()],
            "",
            "Tracebacks: `cells/<cell>.error.txt`. Rerun the study to retry them.",
            "",
        ]
    pngs = [p for name, p in result.files.items() if name.endswith(".png")]
    if pngs:
        from repspace.study.figures import CAPTIONS

        lines += ["## Figures", ""]
        for i, p in enumerate(pngs, 1):
            lines += [
                f"![{p.stem}](figures/{p.name})",
                "",
                f"*Figure {i}.* {CAPTIONS.get(p.stem, p.stem)} (vector: `figures/{p.stem}.pdf`)",
                "",
            ]
    lines += [
        "## Files",
        "",
        "- `results/cells.csv`: one row per cell (scores, parameter counts, summaries)",
        "- `results/summary.csv`: means and 95 % CIs (over seeds; one seed: over probe rows "
        "or held-out items, `interval`)",
        "- `results/metrics_long.csv`: every metric per cell × layer",
        "- `cells/*.json`: cached cell results; `runs/*`: the trained runs "
        "(`repspace compare BASE runs/<cell>` works on them)",
        "",
    ]
    if "trajectory.csv" in result.files:
        lines.insert(
            -1,
            "- `results/trajectory.csv`: the tracked distortion per method, step, "
            "layer and metric (mean and 95 % CI over seeds)",
        )
    if result.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in result.notes], ""]
    return "\n".join(lines)


def write_summary(result) -> Path:
    return atomic_write_text(Path(result.output_dir) / "summary.md", markdown(result))
