"""One per-layer figure for every metric family without a figure of its own.

CKA, the spectrum ranks and the drift measures have their figures in
:mod:`repspace.report.figures_lines`; every other family of the metric registry
(:mod:`repspace.metrics.registry`: shape, subspace, paired drift, neighbours, CCA, RSA,
intrinsic dimension, and any family registered later) gets one figure when the metrics were
asked for by name (``--metrics all``, a family, a metric: anything but the default set, whose
report stays at its six figures) and the report holds at least one of its values: one panel
per measure, each on its own y axis
(their ranges differ), every tuned checkpoint a line in its colour.  A measure of each model
(``…_tuned``) is drawn with the base's value (``…_base``) as the dashed grey reference;
``…_ratio`` keys repeat what those two panels show and are left to the tables.  Captions
come from the registry's descriptions, directions and ranges, so a new metric is drawn and
described without touching this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from repspace.metrics.registry import REGISTRY, MetricInfo
from repspace.report.figures_lines import Quantity, _drawn, _per_layer_figure
from repspace.report.result import CompareResult
from repspace.report.tables import metrics_asked_for

__all__ = ["FAMILY_FIGURES", "family_caption", "family_keys", "family_plots"]

# Families drawn by figures_lines: {family: its figure}
OWN_FIGURE = {"CKA": "cka", "spectrum": "effective_rank", "drift": "drift"}


def _slug(family: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in family.lower())


def _families() -> list[str]:
    return list(dict.fromkeys(m.family for m in REGISTRY.values() if m.family not in OWN_FIGURE))


# figure name -> family (registry order)
FAMILY_FIGURES = {f"family_{_slug(f)}": f for f in _families()}


def family_keys(family: str) -> list[MetricInfo]:
    """The measures of ``family`` drawn as panels (``…_base`` and ``…_ratio`` are not)."""
    return [
        m
        for m in REGISTRY.values()
        if m.family == family and not m.name.endswith(("_base", "_ratio"))
    ]


def _base_series(result: CompareResult, key: str) -> np.ndarray | None:
    for name in result.tuned_names:
        y = result.series(name, key)
        if not np.isnan(y).all():
            return y
    return None


def _quantities(result: CompareResult, family: str) -> list[Quantity]:
    out = []
    for m in family_keys(family):
        ref = (
            _base_series(result, m.name[: -len("_tuned")] + "_base")
            if m.name.endswith("_tuned")
            else None
        )
        title = m.description[:1].upper() + m.description[1:] if m.description else m.name
        out.append(Quantity(m.name, title, f"{m.name}, range {m.range}", ref))
    return out


def _plot(family: str):
    def plot(result: CompareResult, stem: Path) -> list[Path]:
        if not metrics_asked_for(result):
            return []
        return _per_layer_figure(
            result,
            stem,
            _quantities(result, family),
            f"{family[:1].upper() + family[1:]} per layer",
            same_quantity=False,
        )

    plot.__name__ = f"plot_{_slug(family)}"
    plot.__doc__ = f"Per-layer {family} measures, one panel each (see the module docstring)."
    return plot


def family_plots() -> dict:
    """``{figure name: plot function}`` for :data:`repspace.report.plots.ALL_PLOTS`."""
    return {name: _plot(family) for name, family in FAMILY_FIGURES.items()}


_DIRECTION = {
    "similarity": "higher = more similar to the base",
    "distance": "higher = farther from the base, 0 = the same",
    "property": "a property of each model's own features",
}


def family_caption(name: str, result: CompareResult, probe: str, sample_rows: str) -> str:
    """The caption of figure ``name`` (a key of :data:`FAMILY_FIGURES`), as drawn; ``probe``
    and ``sample_rows`` say what the measures saw (as the other captions say it)."""
    family = FAMILY_FIGURES[name]
    drawn = [m for m in family_keys(family) if _drawn(result, [m.name])]
    parts = [
        f"{m.name}: {m.description or m.name} ({_DIRECTION.get(m.direction, m.direction)}; "
        f"range {m.range})"
        for m in drawn
    ]
    text = (
        f"{family[:1].upper() + family[1:]} measures per layer against the base "
        f"{result.base.name}, one panel per measure, each on its own y axis: "
        f"{'; '.join(parts) or 'none computed'}. On {probe}."
    )
    if any(m.name.endswith("_tuned") for m in drawn):
        text += (
            " Measures of each model's own features show the base's value as the dashed grey line."
        )
    sample = [m.name for m in drawn if m.kind == "sample"]
    if sample:
        text += (
            f" {', '.join(sample)} {'is' if len(sample) == 1 else 'are'} computed on the "
            f"seeded row sample: {sample_rows} per layer."
        )
    return text
