"""The papers' claims (``docs`` reproduction checklist) checked on a study's main slice.

Each check compares means over seeds and states its criterion.  Two methods are compared
like with like (:class:`Matched`): at the largest data fraction both have, and at the same
budget (``r=8`` vs ``r=8``) where both vary the same knob, otherwise at the budgets closest
in trainable parameters; the evidence names the budgets compared.  One-method checks use
the main slice (per method: first budget, largest data fraction; see
:func:`repspace.study.results.main_slice`).
"holds" / "does not hold" is a *direction* on this model and data, not a significance
test; when both sides have 95 % t-intervals that overlap the verdict says so.  A claim
the grid cannot test (a method missing, one data fraction...) is "not testable".
"""
from __future__ import annotations

import math

import numpy as np
import scipy.stats

from repspace.study.results import StudyTables, main_slice

__all__ = ["check_claims"]


def _ok(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _overlap(a: dict, b: dict, col: str) -> bool:
    lo_a, hi_a, lo_b, hi_b = (a.get(f"{col}_ci_low"), a.get(f"{col}_ci_high"),
                              b.get(f"{col}_ci_low"), b.get(f"{col}_ci_high"))
    return all(_ok(v) for v in (lo_a, hi_a, lo_b, hi_b)) and lo_a <= hi_b and lo_b <= hi_a


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
        if _ok(tp) and tp > 0 and all(_ok(x.get("trainable_params")) and x["trainable_params"] > 0
                                      for x in rb_all):
            return ra, min(rb_all, key=lambda x: abs(math.log(x["trainable_params"] / tp)))
        return ra, rb_all[0]


def _greater(rows: Matched, a: str, b: str, col: str) -> tuple[bool | None, str, bool]:
    """``a > b`` on ``col``, like with like (None when either is missing), evidence, CIs overlap."""
    pair = rows.pair(a, b)
    if pair is None or not (_ok(pair[0][col]) and _ok(pair[1][col])):
        return None, "", False
    ra, rb = pair
    ev = f"{a} {ra[col]:.3f} ({_budget(ra)}) vs {b} {rb[col]:.3f} ({_budget(rb)})"
    return ra[col] > rb[col], ev, _overlap(ra, rb, col)


def _all_of(paper: str, claim: str, results, why: str = "a method of the comparison is missing"
            ) -> dict:
    results = [r for r in results if r[0] is not None]
    if not results:
        return _claim(paper, claim, "not testable", why)
    holds = all(r[0] for r in results)
    verdict = "holds" if holds else "does not hold"
    if any(r[2] for r in results):
        verdict += " (95 % CIs overlap)"
    return _claim(paper, claim, verdict, "; ".join(r[1] for r in results))


def _needs(rows: dict, *groups: str) -> str:
    """Why a claim is not testable: ``"needs prefix and lora or adapter (with scores)"``."""
    missing = [g for g in groups if not any(m in rows for m in g.split("|"))]
    text = " and ".join(g.replace("|", " or ") for g in (missing or groups))
    return f"needs {text} in the grid" if missing else f"needs finite values for {text}"


def _task_claims(tables: StudyTables, task: str) -> list[dict]:
    rows = Matched(tables, task)
    out = []
    pt = "PT-PEFT"
    lower = []
    for m in ("lora", "adapter"):
        if m in rows and _ok(rows[m]["erank_ratio"]):
            lower.append((rows[m]["erank_ratio"] < 1, f"{m} erank ratio {rows[m]['erank_ratio']:.3f}",
                          False))
    out.append(_all_of(pt, "LoRA/adapters lower the effective rank (ratio < 1)", lower,
                       _needs(rows, "lora|adapter")))
    near = []
    for m in ("lora", "adapter"):
        pair = rows.pair("prefix", m)
        if pair and _ok(pair[0]["erank_ratio"]) and _ok(pair[1]["erank_ratio"]):
            dp, dm = abs(pair[0]["erank_ratio"] - 1), abs(pair[1]["erank_ratio"] - 1)
            near.append((dp < dm, f"|prefix − 1| {dp:.3f} ({_budget(pair[0])}) vs |{m} − 1| "
                                  f"{dm:.3f} ({_budget(pair[1])})", False))
    out.append(_all_of(pt, "prefix-tuning keeps the effective rank closer to the base", near,
                       _needs(rows, "prefix", "lora|adapter")))
    out.append(_all_of(pt, "prefix-tuning alone scores lower than LoRA/adapters",
                       [_greater(rows, m, "prefix", "primary_score") for m in ("lora", "adapter")],
                       _needs(rows, "prefix", "lora|adapter")))
    pairs = (("pt_lora", "lora"), ("pt_adapter", "adapter"))
    why = _needs(rows, "pt_lora|pt_adapter", "lora|adapter")
    out.append(_all_of(pt, "PT-PEFT scores higher than vanilla PEFT",
                       [_greater(rows, a, b, "primary_score") for a, b in pairs], why))
    out.append(_all_of(pt, "PT-PEFT ends with a higher effective rank than vanilla PEFT",
                       [_greater(rows, a, b, "erank_ratio") for a, b in pairs], why))
    ada = "AdaLink"
    comp = []
    pair = rows.pair("adalink", "lora")
    if pair and all(_ok(r["primary_score"]) for r in pair):
        a, b = pair[0]["primary_score"], pair[1]["primary_score"]
        comp.append((a >= 0.9 * b, f"adalink {a:.3f} ({_budget(pair[0])}) vs lora {b:.3f} "
                                   f"({_budget(pair[1])}) (criterion: ≥ 90 % of LoRA)", False))
    out.append(_all_of(ada, "competitive with LoRA", comp, _needs(rows, "adalink", "lora")))
    out.append(_all_of(ada, "better than prompt tuning",
                       [_greater(rows, "adalink", "prompt", "primary_score")],
                       _needs(rows, "adalink", "prompt")))
    out += _sweep_claims(tables, task)
    layer = [m for m in ("lora", "adapter") if m in rows and _ok(rows[m]["primary_score"])]
    emb = [m for m in ("prompt", "prefix") if m in rows and _ok(rows[m]["primary_score"])]
    if layer and emb:
        a = float(np.mean([rows[m]["primary_score"] for m in layer]))
        b = float(np.mean([rows[m]["primary_score"] for m in emb]))
        out.append(_claim("Empirical study", "layer composition (LoRA, adapters) beats embedding "
                          "composition (prompt, prefix)", "holds" if a > b else "does not hold",
                          f"mean {'/'.join(layer)} {a:.3f} vs mean {'/'.join(emb)} {b:.3f}"))
    else:
        out.append(_claim("Empirical study", "layer composition (LoRA, adapters) beats embedding "
                          "composition (prompt, prefix)", "not testable",
                          _needs(rows, "lora|adapter", "prompt|prefix")))
    for c in out:
        c["task"] = task
    return out


def _sweep_claims(tables: StudyTables, task: str) -> list[dict]:
    """Score rises with data size / with trainable parameters (Spearman ρ > 0 per method)."""
    out = []
    for axis, claim in (("data_fraction", "score rises with data size"),
                        ("trainable_params", "score rises with trainable-parameter size")):
        per_method: dict[str, list[dict]] = {}
        for r in tables.summary:
            if r["task"] == task and r["method"] != "base" and _ok(r["primary_score"]):
                per_method.setdefault(r["method"], []).append(r)
        tests = []
        for m, rows in per_method.items():
            if axis == "data_fraction":
                b0 = rows[0]["budget"]
                rows = [r for r in rows if r["budget"] == b0]
            else:
                top = max(r["data_fraction"] for r in rows)
                rows = [r for r in rows if r["data_fraction"] == top]
            xs = [r[axis] for r in rows]
            if len(set(xs)) < 2:
                continue
            ys = [r["primary_score"] for r in rows]
            if len(set(ys)) < 2:
                continue  # constant scores: no rank correlation
            rho = scipy.stats.spearmanr(xs, ys).statistic
            if _ok(rho):
                tests.append((rho > 0, f"{m} ρ={rho:+.2f}", False))
        knob = "data_fractions" if axis == "data_fraction" else "budgets"
        verdict = _all_of("Empirical study", claim + " (Spearman ρ > 0)", tests,
                          f"the grid does not vary {knob} (or the scores are constant)")
        if tests and not all(t[0] for t in tests) and any(t[0] for t in tests):
            verdict["verdict"] = f"mixed ({sum(t[0] for t in tests)}/{len(tests)} methods)"
        out.append(verdict)
    return out


def check_claims(tables: StudyTables) -> list[dict]:
    """Every checkable claim, per task: ``{task, paper, claim, verdict, evidence}``."""
    out = []
    for task in dict.fromkeys(r["task"] for r in tables.summary):
        out += _task_claims(tables, task)
    return out
