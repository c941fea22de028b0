"""The papers' claims (``docs`` reproduction checklist) checked on a study's main slice.

Each check compares means over seeds of the main slice (per method: first budget, largest
data fraction; see :func:`repspace.study.figures.main_slice`) and states its criterion.
"holds" / "does not hold" is a *direction* on this model and data, not a significance
test; when both sides have 95 % t-intervals that overlap the verdict says so.  A claim
the grid cannot test (a method missing, one data fraction...) is "not testable".
"""
from __future__ import annotations

import math

import numpy as np
import scipy.stats

from repspace.study.figures import main_slice
from repspace.study.results import StudyTables

__all__ = ["check_claims"]


def _ok(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _overlap(a: dict, b: dict, col: str) -> bool:
    lo_a, hi_a, lo_b, hi_b = (a.get(f"{col}_ci_low"), a.get(f"{col}_ci_high"),
                              b.get(f"{col}_ci_low"), b.get(f"{col}_ci_high"))
    return all(_ok(v) for v in (lo_a, hi_a, lo_b, hi_b)) and lo_a <= hi_b and lo_b <= hi_a


def _claim(paper, claim, verdict, evidence) -> dict:
    return {"paper": paper, "claim": claim, "verdict": verdict, "evidence": evidence}


def _greater(rows: dict, a: str, b: str, col: str) -> tuple[bool | None, str, bool]:
    """``rows[a][col] > rows[b][col]``? (None when either is missing), evidence, CIs overlap."""
    if a not in rows or b not in rows or not (_ok(rows[a][col]) and _ok(rows[b][col])):
        return None, "", False
    ev = f"{a} {rows[a][col]:.3f} vs {b} {rows[b][col]:.3f}"
    return rows[a][col] > rows[b][col], ev, _overlap(rows[a], rows[b], col)


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
    rows = {r["method"]: r for r in main_slice(tables.summary, task)}
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
    if "prefix" in rows and _ok(rows["prefix"]["erank_ratio"]):
        dp = abs(rows["prefix"]["erank_ratio"] - 1)
        for m in ("lora", "adapter"):
            if m in rows and _ok(rows[m]["erank_ratio"]):
                dm = abs(rows[m]["erank_ratio"] - 1)
                near.append((dp < dm, f"|prefix − 1| {dp:.3f} vs |{m} − 1| {dm:.3f}", False))
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
    if "adalink" in rows and "lora" in rows and all(_ok(rows[m]["primary_score"])
                                                    for m in ("adalink", "lora")):
        a, b = rows["adalink"]["primary_score"], rows["lora"]["primary_score"]
        comp.append((a >= 0.9 * b, f"adalink {a:.3f} vs lora {b:.3f} (criterion: ≥ 90 % of LoRA)",
                     False))
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
