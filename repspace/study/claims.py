"""The papers' claims (``docs`` reproduction checklist) checked on a study's main slice.

A claim *holds* or is *contradicted* only when the 95 % interval of its quantity (a
difference between two methods, a ratio against 1, ...) excludes the other side; otherwise
it is *undetermined*, with the numbers: each side's value ± half its interval and the
difference's interval.  The intervals (:mod:`repspace.study.evidence`) are over seeds when
every side has ≥ 2 (Student-t, Welch–Satterthwaite for differences); with one seed they are
the delete-one-block jackknife over the probe rows (representation columns; paired between
two cells probed on the same rows) or the variance bound p(1 − p)/n over the held-out items
(accuracies), and the verdict says "one seed".  A claim made of several comparisons (both
PT-PEFT pairs) holds when every one holds; one contradicted and one holding is "mixed".

Two methods are compared like with like (:class:`Matched`): at the largest data fraction both
have, and at the same budget (``r=8`` vs ``r=8``) where both vary the same knob, otherwise at
the budgets closest in trainable parameters; the evidence names the budgets compared.
One-method checks use the main slice (per method: first budget, largest data fraction; see
:func:`repspace.study.results.main_slice`).  A claim the grid cannot test (a method missing,
one data fraction...) is "not testable".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import scipy.stats

from repspace.study.evidence import ROUTE_WORDS, Side, combine, direction, over_seeds
from repspace.study.results import StudyTables, group_cells, main_slice, score_name

__all__ = ["check_claims"]


def _ok(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _claim(paper, claim, verdict, evidence) -> dict:
    return {"paper": paper, "claim": claim, "verdict": verdict, "evidence": evidence}


def _budget(r: dict) -> str:
    """``r=8, 12k params`` / ``all params`` / ``no budget``: what a row's method was given."""
    from repspace.report.style import compact_number

    tp = r.get("trainable_params")
    params = f"{compact_number(tp)} params" if _ok(tp) else ""
    knob = f"{r['budget_field']}={r['budget']}" if r.get("budget") is not None else ""
    return ", ".join(x for x in (knob, params) if x) or "no budget"


class Matched:
    """Pairs of methods compared like with like.

    Two methods are compared at the largest data fraction both have and, where both vary
    the same budget knob (``r``), at the same value of it (their first common value);
    otherwise at the budget of the second method whose trainable-parameter count is closest
    to the first method's main-slice row.  The evidence names the budgets compared."""

    def __init__(self, tables: StudyTables, task: str):
        self.rows = [r for r in tables.summary if r["task"] == task]
        self.main = {r["method"]: r for r in main_slice(tables.summary, task)}

    def __contains__(self, method: str) -> bool:
        return method in self.main

    def __getitem__(self, method: str) -> dict:
        return self.main[method]

    def pair(self, a: str, b: str) -> tuple[dict, dict] | None:
        if a not in self.main or b not in self.main:
            return None
        mine = lambda m: [r for r in self.rows if r["method"] == m]  # noqa: E731
        ra_all, rb_all = mine(a), mine(b)
        fa = {r["data_fraction"] for r in ra_all}
        fb = {r["data_fraction"] for r in rb_all}
        common = sorted(x for x in fa & fb if x is not None)
        if common:
            ra_all = [r for r in ra_all if r["data_fraction"] == common[-1]]
            rb_all = [r for r in rb_all if r["data_fraction"] == common[-1]]
        ra = ra_all[0]
        if ra.get("budget_field") and ra["budget_field"] == rb_all[0].get("budget_field"):
            shared = [r for r in ra_all if any(x["budget"] == r["budget"] for x in rb_all)]
            if shared:
                ra = shared[0]
                return ra, next(x for x in rb_all if x["budget"] == ra["budget"])
        tp = ra.get("trainable_params")
        if (
            _ok(tp)
            and tp > 0
            and all(_ok(x.get("trainable_params")) and x["trainable_params"] > 0 for x in rb_all)
        ):
            return ra, min(rb_all, key=lambda x: abs(math.log(x["trainable_params"] / tp)))
        return ra, rb_all[0]


@dataclass
class _Part:
    """One comparison of a claim: its verdict, the numbers, and the interval's route."""

    verdict: str
    evidence: str
    route: str


def _side(tables: StudyTables, row: dict) -> Side:
    """The cells (seeds) behind a summary row, with their one-seed evidence."""
    return Side(group_cells(tables.cells, row), tables.evidence)


def _difference(
    tables: StudyTables,
    task: str,
    a: tuple[str, dict],
    b: tuple[str, dict],
    col: str,
    claimed: str = ">",
    f=None,
    label=None,
) -> _Part | None:
    """``a − b`` on ``col`` (``f`` applied first) against the claimed side of 0."""
    (na, ra), (nb, rb) = a, b
    sa, sb = _side(tables, ra), _side(tables, rb)
    score = score_name(task, col)
    seeds = over_seeds([sa, sb], col, f)
    ea = combine([(1, sa)], col, f, score_name=score, seeds=seeds)
    eb = combine([(1, sb)], col, f, score_name=score, seeds=seeds)
    if not (_ok(ea.value) and _ok(eb.value)):
        return None
    d = combine([(1, sa), (-1, sb)], col, f, score_name=score, seeds=seeds)
    name = label or (lambda m: m)
    ev = (
        f"{name(na)} {ea.pm()} ({_budget(ra)}) vs {name(nb)} {eb.pm()} ({_budget(rb)}): "
        f"difference {d.bracket()}"
    )
    return _Part(direction(d, claimed), ev, d.route)


def _pair(
    tables: StudyTables,
    rows: Matched,
    task: str,
    a: str,
    b: str,
    col: str,
    claimed: str = ">",
    f=None,
    label=None,
) -> _Part | None:
    pair = rows.pair(a, b)
    if pair is None:
        return None
    return _difference(tables, task, (a, pair[0]), (b, pair[1]), col, claimed, f, label)


def _combined(verdicts: list[str]) -> str:
    """Every part holds: holds; every part contradicted: contradicted; both kinds: mixed;
    otherwise undetermined (how many parts did hold or were contradicted is said)."""
    n = len(verdicts)
    held, against = verdicts.count("holds"), verdicts.count("contradicted")
    if held == n:
        return "holds"
    if against == n:
        return "contradicted"
    if held and against:
        return f"mixed ({held} of {n} hold, {against} contradicted)"
    if against:
        return f"contradicted ({against} of {n}; the rest undetermined)"
    return f"undetermined ({held} of {n} hold)" if held else "undetermined"


def _all_of(
    paper: str, claim: str, parts, why: str = "a method of the comparison is missing"
) -> dict:
    parts = [p for p in parts if p is not None]
    if not parts:
        return _claim(paper, claim, "not testable", why)
    verdict = _combined([p.verdict for p in parts])
    routes = [r for r in dict.fromkeys(p.route for p in parts) if r != "seeds"]
    if routes:  # one seed: the verdict says so, and which interval it read
        verdict += " — one seed: " + "; ".join(ROUTE_WORDS[r] for r in routes)
    return _claim(paper, claim, verdict, "; ".join(p.evidence for p in parts))


def _needs(rows, *groups: str) -> str:
    """Why a claim is not testable: ``"needs prefix and lora or adapter (with scores)"``."""
    missing = [g for g in groups if not any(m in rows for m in g.split("|"))]
    text = " and ".join(g.replace("|", " or ") for g in (missing or groups))
    return f"needs {text} in the grid" if missing else f"needs finite values for {text}"


def _ratio_below_one(tables: StudyTables, rows: Matched, m: str) -> _Part | None:
    if m not in rows or not _ok(rows[m]["erank_ratio"]):
        return None
    side = _side(tables, rows[m])
    ratio = combine([(1, side)], "erank_ratio")
    e = combine([(1, side)], "erank_ratio", constant=-1.0)
    return _Part(direction(e, "<"), f"{m} erank ratio {ratio.pm()} ({_budget(rows[m])})", e.route)


def _criterion_part(tables, task, pair, coef: float, words: str) -> _Part | None:
    """``a − coef · b ≥ 0`` on the primary score (AdaLink: ≥ 90 % of LoRA)."""
    (na, ra), (nb, rb) = pair
    sa, sb = _side(tables, ra), _side(tables, rb)
    score = score_name(task, "primary_score")
    seeds = over_seeds([sa, sb], "primary_score")
    ea = combine([(1, sa)], "primary_score", score_name=score, seeds=seeds)
    eb = combine([(1, sb)], "primary_score", score_name=score, seeds=seeds)
    if not (_ok(ea.value) and _ok(eb.value)):
        return None
    d = combine([(1, sa), (-coef, sb)], "primary_score", score_name=score, seeds=seeds)
    return _Part(
        direction(d, ">="),
        f"{na} {ea.pm()} ({_budget(ra)}) vs {nb} {eb.pm()} "
        f"({_budget(rb)}) ({words}): {na} − {coef:g} × {nb} {d.bracket()}",
        d.route,
    )


def _task_claims(tables: StudyTables, task: str) -> list[dict]:
    rows = Matched(tables, task)
    out = []
    pt = "PT-PEFT"

    def pair(a, b, col, claimed=">", f=None, label=None):
        return _pair(tables, rows, task, a, b, col, claimed, f, label)

    out.append(
        _all_of(
            pt,
            "LoRA/adapters lower the effective rank (ratio < 1)",
            [_ratio_below_one(tables, rows, m) for m in ("lora", "adapter")],
            _needs(rows, "lora|adapter"),
        )
    )

    def dist(x: float) -> float:  # distance of a rank ratio from the base's 1
        return abs(x - 1.0)

    out.append(
        _all_of(
            pt,
            "prefix-tuning keeps the effective rank closer to the base",
            [
                pair("prefix", m, "erank_ratio", "<", dist, lambda n: f"|{n} − 1|")
                for m in ("lora", "adapter")
            ],
            _needs(rows, "prefix", "lora|adapter"),
        )
    )
    out.append(
        _all_of(
            pt,
            "prefix-tuning alone scores lower than LoRA/adapters",
            [pair(m, "prefix", "primary_score") for m in ("lora", "adapter")],
            _needs(rows, "prefix", "lora|adapter"),
        )
    )
    pairs = (("pt_lora", "lora"), ("pt_adapter", "adapter"))
    why = _needs(rows, "pt_lora|pt_adapter", "lora|adapter")
    out.append(
        _all_of(
            pt,
            "PT-PEFT scores higher than vanilla PEFT",
            [pair(a, b, "primary_score") for a, b in pairs],
            why,
        )
    )
    out.append(
        _all_of(
            pt,
            "PT-PEFT ends with a higher effective rank than vanilla PEFT",
            [pair(a, b, "erank_ratio") for a, b in pairs],
            why,
        )
    )
    ada = "AdaLink"
    matched = rows.pair("adalink", "lora")
    comp = (
        [
            _criterion_part(
                tables,
                task,
                (("adalink", matched[0]), ("lora", matched[1])),
                0.9,
                "criterion: ≥ 90 % of LoRA",
            )
        ]
        if matched
        else []
    )
    out.append(_all_of(ada, "competitive with LoRA", comp, _needs(rows, "adalink", "lora")))
    out.append(
        _all_of(
            ada,
            "better than prompt tuning",
            [pair("adalink", "prompt", "primary_score")],
            _needs(rows, "adalink", "prompt"),
        )
    )
    out += _sweep_claims(tables, task)
    out.append(_composition_claim(tables, rows, task))
    for c in out:
        c["task"] = task
    return out


def _composition_claim(tables: StudyTables, rows: Matched, task: str) -> dict:
    """Mean score of LoRA/adapters minus the mean of prompt/prefix tuning (equal weights)."""
    claim = "layer composition (LoRA, adapters) beats embedding composition (prompt, prefix)"
    layer = [m for m in ("lora", "adapter") if m in rows and _ok(rows[m]["primary_score"])]
    emb = [m for m in ("prompt", "prefix") if m in rows and _ok(rows[m]["primary_score"])]
    if not (layer and emb):
        return _claim(
            "Empirical study", claim, "not testable", _needs(rows, "lora|adapter", "prompt|prefix")
        )
    score = score_name(task, "primary_score")
    sides_a = [_side(tables, rows[m]) for m in layer]
    sides_b = [_side(tables, rows[m]) for m in emb]
    seeds = over_seeds(sides_a + sides_b, "primary_score")
    ea = combine(
        [(1 / len(layer), s) for s in sides_a], "primary_score", score_name=score, seeds=seeds
    )
    eb = combine(
        [(1 / len(emb), s) for s in sides_b], "primary_score", score_name=score, seeds=seeds
    )
    d = combine(
        [(1 / len(layer), s) for s in sides_a] + [(-1 / len(emb), s) for s in sides_b],
        "primary_score",
        score_name=score,
        seeds=seeds,
    )
    part = _Part(
        direction(d, ">"),
        f"mean {'/'.join(layer)} {ea.pm()} vs mean {'/'.join(emb)} "
        f"{eb.pm()}: difference {d.bracket()}",
        d.route,
    )
    return _all_of("Empirical study", claim, [part])


def _sweep_claims(tables: StudyTables, task: str) -> list[dict]:
    """Score rises with data size / with trainable parameters: per method, the score at the
    largest value minus the score at the smallest (with its interval); Spearman ρ of the
    means over every value is shown beside it."""
    out = []
    for axis, claim in (
        ("data_fraction", "score rises with data size"),
        ("trainable_params", "score rises with trainable-parameter size"),
    ):
        per_method: dict[str, list[dict]] = {}
        for r in tables.summary:
            if r["task"] == task and r["method"] != "base" and _ok(r["primary_score"]):
                per_method.setdefault(r["method"], []).append(r)
        parts = []
        for m, mine in per_method.items():
            if axis == "data_fraction":
                b0 = mine[0]["budget"]
                mine = [r for r in mine if r["budget"] == b0]
            else:
                top = max(r["data_fraction"] for r in mine)
                mine = [r for r in mine if r["data_fraction"] == top]
            mine = [r for r in mine if _ok(r[axis])]
            if len({r[axis] for r in mine}) < 2:
                continue
            mine.sort(key=lambda r: r[axis])
            lo, hi = mine[0], mine[-1]
            word = "data" if axis == "data_fraction" else "params"
            part = _difference(
                tables,
                task,
                (f"{m} at {word} {hi[axis]:g}", hi),
                (f"{m} at {word} {lo[axis]:g}", lo),
                "primary_score",
            )
            if part is None:
                continue
            ys = [r["primary_score"] for r in mine]
            if len(mine) > 2 and len(set(ys)) > 1:
                rho = scipy.stats.spearmanr([r[axis] for r in mine], ys).statistic
                part.evidence += f" (Spearman ρ of the {len(mine)} means {rho:+.2f})"
            parts.append(part)
        knob = "data_fractions" if axis == "data_fraction" else "budgets"
        out.append(
            _all_of(
                "Empirical study",
                claim + " (largest vs smallest)",
                parts,
                f"the grid does not vary {knob}",
            )
        )
    return out


def check_claims(tables: StudyTables) -> list[dict]:
    """Every checkable claim, per task: ``{task, paper, claim, verdict, evidence}``."""
    out = []
    for task in dict.fromkeys(r["task"] for r in tables.summary):
        out += _task_claims(tables, task)
    return out
