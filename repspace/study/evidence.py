"""Intervals behind the claim checks: a claim *holds* or is *contradicted* only when its
interval excludes the other side (:func:`direction`), otherwise it is *undetermined*.

A claimed quantity is a linear combination ``Σ cᵢ · f(columnᵢ)`` of one study column (a
score, a rank ratio, ...) on one or more sides (a side = one group of cells over seeds,
:class:`Side`): a difference ``a − b``, ``a − 0.9 · b``, a mean of methods against another
mean, or one value against a constant.  Its interval comes from one of three routes:

- **seeds** (every side has ≥ 2 seeds): each side's mean over seeds of ``f(column)`` with
  variance s²/n; the sides are independent, so the combination's variance is
  Σ cᵢ² sᵢ²/nᵢ with Welch–Satterthwaite degrees of freedom and a Student-t interval (for one
  side this is the t-interval of the seed mean, as in ``summary.csv``).
- **rows** (one seed, a representation column): the cell's delete-one-block jackknife over
  the probe rows (:mod:`repspace.closed_forms.jackknife`; the replicates a cell keeps,
  :data:`repspace.study.runner.JACKKNIFE_METRICS`).  Two cells probed on the same rows (the
  base's replicates agree exactly: same probe, same blocks) are **paired** — the combination
  is taken replicate by replicate, as compare's paired differences are; otherwise the
  variances add (t with min(B) − 1 dof).
- **items** (one seed, a score that is a mean over eval items of values in [0, 1]: VQA
  accuracy, classification accuracy): the variance of one item is at most p(1 − p)
  (Bhatia–Davis), so se ≤ √(p(1 − p)/n) on the cell's n independent held-out items
  (shapes-world VQA: its images, whose several questions are not independent); the sides' variances
  add (normal interval).  Unpaired: it assumes two methods' per-item scores are not
  negatively correlated on the same items (they are positively correlated when both find the
  same questions easy), so it is conservative then.

A quantity none of the routes covers (one seed of CIDEr-D, a cell cached before the
intervals were recorded) has no interval and is undetermined.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

__all__ = [
    "BOUNDED_SCORES",
    "ROUTE_WORDS",
    "Estimate",
    "Side",
    "combine",
    "direction",
    "over_seeds",
]

# Scores that are a mean over eval items of per-item values in [0, 1] (the items route).
BOUNDED_SCORES = ("vqa_accuracy", "accuracy")
# How each route's interval is named in a verdict.
ROUTE_WORDS = {
    "seeds": "95 % t-interval over seeds",
    "rows": "95 % jackknife interval over the probe rows",
    "items": "95 % interval over the held-out items",
    "none": "no interval",
}


@dataclass(frozen=True)
class Estimate:
    """A number with its interval (NaN bounds: none) and the route that gave it."""

    value: float
    low: float = math.nan
    high: float = math.nan
    route: str = "none"

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def pm(self, digits: int = 3) -> str:
        """``0.627 ± 0.137`` (half the interval's width; asymmetric intervals are not made
        here), ``0.627 (no interval)``."""
        if not math.isfinite(self.value):
            return "n/a"
        if not self.has_interval:
            return f"{self.value:.{digits}f} (no interval)"
        return f"{self.value:.{digits}f} ± {(self.high - self.low) / 2:.{digits}f}"

    def bracket(self, digits: int = 3) -> str:
        """``+0.012 [-0.041, +0.065]``, a signed difference with its interval."""
        if not math.isfinite(self.value):
            return "n/a"
        if not self.has_interval:
            return f"{self.value:+.{digits}f} (no interval)"
        return f"{self.value:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


@dataclass
class Side:
    """One group of cells (a summary row's seeds): ``cells`` are their ``cells.csv`` rows,
    ``evidence[label]`` each cell's jackknife replicates per column and its number of
    eval items (:func:`repspace.study.results.cell_evidence`)."""

    cells: list[dict]
    evidence: dict[str, dict] = field(default_factory=dict)

    def values(self, col: str, f: Callable | None = None) -> np.ndarray:
        f = f or _identity
        v = np.array([f(float(c[col])) for c in self.cells if _ok(c.get(col))], dtype=np.float64)
        return v[np.isfinite(v)]

    @property
    def first(self) -> dict:
        """The lowest seed's cell: the one-seed routes read it."""
        return min(self.cells, key=lambda c: c["seed"])


def _identity(x: float) -> float:
    return x


def _ok(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _t(dof: float, level: float) -> float:
    return (
        float(stats.t.ppf((1 + level) / 2, dof))
        if math.isfinite(dof)
        else float(stats.norm.ppf((1 + level) / 2))
    )


def _seeds(terms, col, f, level) -> Estimate:
    est, var, dof_den = 0.0, 0.0, 0.0
    for c, side in terms:
        v = side.values(col, f)
        est += c * float(v.mean())
        w = c * c * float(v.var(ddof=1)) / v.size
        var += w
        dof_den += w * w / (v.size - 1)
    if var == 0.0:  # every seed gave the same values: the interval is the point
        return Estimate(est, est, est, "seeds")
    dof = var * var / dof_den if dof_den > 0 else math.inf  # (underflow: a normal interval)
    half = _t(dof, level) * math.sqrt(var)
    return Estimate(est, est - half, est + half, "seeds")


def _rows(terms, col, f, level) -> Estimate | None:
    from repspace.closed_forms.jackknife import jackknife_interval

    parts = []
    for c, side in terms:
        cell = side.first
        ev = side.evidence.get(cell["cell"]) or {}
        reps = (ev.get("replicates") or {}).get(col)
        if reps is None or not _ok(cell.get(col)):
            return None
        parts.append(
            (
                c,
                f(float(cell[col])),
                np.array([f(x) for x in reps], dtype=np.float64),
                ev.get("replicates", {}).get("erank_base"),
            )
        )
    est = sum(c * v for c, v, _, _ in parts)
    sizes = {r.size for _, _, r, _ in parts}
    bases = [b for _, _, _, b in parts]
    paired = (
        len(sizes) == 1
        and all(b is not None for b in bases)
        and all(np.array_equal(np.asarray(b), np.asarray(bases[0])) for b in bases)
    )
    if paired:  # the same probe rows and blocks: the combination replicate by replicate
        iv = jackknife_interval(est, sum(c * r for c, _, r, _ in parts), level)
        return Estimate(est, iv.low, iv.high, "rows")
    var, dof = 0.0, math.inf
    for c, v, r, _ in parts:
        iv = jackknife_interval(v, r, level)
        if not math.isfinite(iv.se):
            return None
        var += c * c * iv.se**2
        dof = min(dof, r.size - 1)
    half = _t(dof, level) * math.sqrt(var)
    return Estimate(est, est - half, est + half, "rows")


def _items(terms, col, level) -> Estimate | None:
    est, var = 0.0, 0.0
    for c, side in terms:
        cell = side.first
        n = (side.evidence.get(cell["cell"]) or {}).get("n_eval_items")
        p = cell.get(col)
        if not (_ok(n) and n >= 1 and _ok(p) and 0.0 <= p <= 1.0):
            return None
        est += c * p
        var += c * c * p * (1 - p) / n
    half = _t(math.inf, level) * math.sqrt(var)
    return Estimate(est, est - half, est + half, "items")


def over_seeds(sides, col: str, f: Callable | None = None) -> bool:
    """Whether every side has ≥ 2 seeds of ``col``: the seeds route applies."""
    return all(side.values(col, f).size >= 2 for side in sides)


def combine(
    terms: list[tuple[float, Side]],
    col: str,
    f: Callable | None = None,
    constant: float = 0.0,
    score_name: str | None = None,
    level: float = 0.95,
    seeds: bool | None = None,
) -> Estimate:
    """``constant + Σ c · f(col)`` over ``terms`` with its interval (module doc for the
    routes; ``f`` None: the column itself).  ``score_name``: the task score behind ``col``
    when it is the primary score (the items route needs one of :data:`BOUNDED_SCORES` and no
    ``f``).  ``seeds``: use the seeds route (None: when :func:`over_seeds`); a claim passes
    the same choice for each side and their difference, so the numbers it shows add up."""
    bounded = f is None and score_name in BOUNDED_SCORES
    f = f or _identity
    if not terms or any(side.values(col, f).size == 0 for _, side in terms):
        return Estimate(math.nan)
    if seeds is None:
        seeds = over_seeds([side for _, side in terms], col, f)
    if seeds:
        e = _seeds(terms, col, f, level)
    else:
        e = _rows(terms, col, f, level)
        if e is None and bounded:
            e = _items(terms, col, level)
        if e is None:
            e = Estimate(sum(c * f(float(side.first[col])) for c, side in terms))
    return Estimate(e.value + constant, e.low + constant, e.high + constant, e.route)


def direction(e: Estimate, claimed: str = ">") -> str:
    """``holds`` when the interval of ``e`` lies on the claimed side of 0 (``>``: above;
    ``<``: below; ``>=``: at or above), ``contradicted`` when it lies wholly on the other
    side, else ``undetermined`` (also when there is no interval)."""
    if not e.has_interval:
        return "undetermined"
    if claimed == ">":
        return "holds" if e.low > 0 else "contradicted" if e.high < 0 else "undetermined"
    if claimed == "<":
        return "holds" if e.high < 0 else "contradicted" if e.low > 0 else "undetermined"
    if claimed == ">=":
        return "holds" if e.low >= 0 else "contradicted" if e.high < 0 else "undetermined"
    raise ValueError(f"claimed must be '>', '<' or '>=', got {claimed!r}")
