"""The compare report's line figures: per-layer CKA, effective rank and drift, and the
singular-value spectra, laid out by :mod:`repspace.report.figures_layout` (small multiples
past five checkpoints, one y axis per quantity, log axes where values span orders of
magnitude).  Each decision is a function of the result alone, so the caption
(:mod:`repspace.report.plots`) describes exactly what was drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from repspace.report.figures_layout import (
    CONTEXT_COLOR,
    MAX_LINES,
    broken,
    figure_legend,
    figure_title,
    grid,
    layer_axis,
    log_label,
    needs_log,
    panel_position,
    panel_width,
    save_figure,
    small_multiples,
)
from repspace.report.layer_names import layer_title
from repspace.report.result import CompareResult
from repspace.report.style import (
    BASE_COLOR,
    BASE_MARKER,
    figure_handles,
    log_axis,
    paper_style,
    styles_for,
)

__all__ = [
    "DRIFT_LABELS",
    "SPECTRUM_LOG_RATIO",
    "cka_panels",
    "debiased_agreement",
    "interval_note",
    "many_lines",
    "plot_cka",
    "plot_drift",
    "plot_effective_rank",
    "plot_spectra",
    "rank_is_log",
    "spectra_is_log",
    "spectra_layers",
    "spectra_names",
]

# σ ratios are multiplicative around 1: a factor 4 either way already flattens the rest.
SPECTRUM_LOG_RATIO = 4.0
# Without intervals, debiased and plain CKA count as one curve when they differ by less.
AGREE_WITHOUT_INTERVALS = 0.005


@dataclass
class Quantity:
    """One metric drawn per layer: its panel title, y label and reference (a constant,
    a per-layer series, or None)."""

    key: str
    title: str
    ylabel: str
    reference: float | np.ndarray | None = None


def _styles(result: CompareResult) -> dict[str, dict]:
    return styles_for([*result.tuned_names, result.base.name], base=result.base.name)


def _drawn(result: CompareResult, keys) -> list[str]:
    """The tuned checkpoints with a value for any of ``keys``."""
    return [
        n for n in result.tuned_names if any(not np.isnan(result.series(n, k)).all() for k in keys)
    ]


def many_lines(result: CompareResult, keys=("linear_cka",)) -> bool:
    """Whether a per-layer figure of ``keys`` is drawn as small multiples."""
    return len(_drawn(result, keys)) > MAX_LINES


def _band(result: CompareResult, name: str, metric: str):
    """Per-layer (low, high) of ``metric``'s interval, NaN where a layer has none; None
    when no layer has one."""
    ivs = [result.interval(name, layer, metric) or {} for layer in result.layers]
    lo = np.array([iv.get("low", np.nan) for iv in ivs], dtype=np.float64)
    hi = np.array([iv.get("high", np.nan) for iv in ivs], dtype=np.float64)
    return None if np.isnan(lo).all() else (lo, hi)


def interval_note(result: CompareResult) -> str:
    """The caption sentence that explains the shaded bands (empty without intervals)."""
    iv = result.settings.get("intervals") if result.settings else None
    if not iv:
        return ""
    return (
        f" Shaded: {iv.get('level', 0.95):.0%} interval of a delete-one-block jackknife "
        f"over {iv.get('blocks')} blocks of probe rows (no extra forward pass)."
    )


def _per_layer_figure(
    result: CompareResult,
    stem: Path,
    quantities: list[Quantity],
    title: str,
    same_quantity: bool,
    log: dict[str, bool] | None = None,
) -> list[Path]:
    quantities = [q for q in quantities if _drawn(result, [q.key])]
    names = _drawn(result, [q.key for q in quantities])
    if not names:
        return []
    log = log or {}
    styles = _styles(result)
    by_key = {q.key: q for q in quantities}
    layers = result.layers
    bands = False

    def draw(ax, key, name, mode):
        nonlocal bands
        y = result.series(name, key)
        if np.isnan(y).all():
            return
        x, yb = broken(y, layers)
        if mode == "context":
            ax.plot(x, yb, color=CONTEXT_COLOR, lw=0.9, zorder=1, label="other checkpoints")
            return
        st = styles[name]
        band = _band(result, name, key)
        if band is not None:  # the jackknife interval, in the line's colour
            bands = True
            ax.fill_between(
                x,
                broken(band[0], layers)[1],
                broken(band[1], layers)[1],
                color=st["color"],
                alpha=0.18,
                lw=0,
                zorder=2,
            )
        ax.plot(
            x,
            yb,
            marker=st["marker"],
            ms=4,
            color=st["color"],
            ls=st["ls"],
            lw=1.3,
            label=name,
            zorder=3,
        )

    with paper_style():
        many = len(names) > MAX_LINES
        if many:
            fig, panels = small_multiples(
                names, list(by_key), draw, panel_w=2.45, panel_h=1.75, shared_y=same_quantity
            )
        else:
            fig, axes = grid(
                len(quantities),
                1,
                panel_width(len(layers)),
                2.6 if len(quantities) == 1 else 2.2,
                sharex=True,
                sharey=same_quantity,
            )
            panels = [(axes[i][0], None, q.key) for i, q in enumerate(quantities)]
            for ax, _, key in panels:
                for name in names:
                    draw(ax, key, name, "line")
        for ax, name, key in panels:
            q = by_key[key]
            if isinstance(q.reference, np.ndarray):
                ax.plot(
                    *broken(q.reference, layers),
                    color=BASE_COLOR,
                    ls="--",
                    lw=1.1,
                    marker=BASE_MARKER,
                    ms=3,
                    label=f"{result.base.name} (base)",
                    zorder=2,
                )
            elif q.reference is not None:
                ax.axhline(
                    q.reference,
                    color=BASE_COLOR,
                    ls="--",
                    lw=0.9,
                    label=f"{result.base.name} (base)",
                    zorder=2,
                )
            if log.get(key):
                log_axis(ax, "y")
            top, bottom, left = panel_position(fig, ax)
            layer_axis(ax, layers, labels=bottom, towers=top)
            ylabel = log_label(q.ylabel, bool(log.get(key)))
            if name is None:
                ax.set_title(q.title, loc="left")
                ax.set_ylabel(ylabel)
            elif len(quantities) == 1:  # the y label once for the grid (fig.supylabel below)
                ax.set_title(name, loc="left", fontsize=9, color=styles[name]["color"])
            else:  # one row per checkpoint, one column per quantity
                if top:  # the column's quantity, its unit on a second line
                    ax.set_title(ylabel.replace(" (", "\n("), loc="left", fontsize=8)
                ax.set_ylabel(name if left else "", color=styles[name]["color"], fontsize=9)
        if panels[0][1] is not None and len(quantities) == 1:
            fig.supylabel(
                log_label(quantities[0].ylabel, bool(log.get(quantities[0].key))), fontsize=9
            )
        handles, labels = figure_handles(fig)
        if bands:
            handles.append(Patch(color="0.5", alpha=0.3, lw=0))
            labels.append("interval (shaded)")
        figure_legend(fig, handles, labels)
        figure_title(fig, title)
        return save_figure(fig, stem)


def debiased_agreement(result: CompareResult) -> tuple[bool, float | None, bool]:
    """``(agrees, largest |debiased − linear CKA|, judged by intervals)``: the two agree when
    at every checkpoint and layer the difference is within the larger half-width of their
    intervals (or below :data:`AGREE_WITHOUT_INTERVALS` without intervals).  No debiased
    value at all: ``(False, None, False)``."""
    diffs, agree, by_interval = [], True, False
    for name in result.tuned_names:
        for layer in result.layers:
            m = result.metrics.get(name, {}).get(layer, {})
            a, d = m.get("linear_cka"), m.get("linear_cka_debiased")
            if a is None or d is None or not (math.isfinite(a) and math.isfinite(d)):
                continue
            diffs.append(abs(a - d))
            ivs = [result.interval(name, layer, k) for k in ("linear_cka", "linear_cka_debiased")]
            halves = [
                (iv["high"] - iv["low"]) / 2
                for iv in ivs
                if iv
                and math.isfinite(iv.get("low", math.nan))
                and math.isfinite(iv.get("high", math.nan))
            ]
            if halves:
                by_interval = True
                agree &= abs(a - d) <= max(halves)
            else:
                agree &= abs(a - d) < AGREE_WITHOUT_INTERVALS
    if not diffs:
        return False, None, False
    return agree, max(diffs), by_interval


def cka_panels(result: CompareResult) -> list[str]:
    """The CKA figure's panels: linear CKA, and debiased CKA beside it only where it says
    something else (see :func:`debiased_agreement`)."""
    agrees, largest, _ = debiased_agreement(result)
    return ["linear_cka"] if agrees or largest is None else ["linear_cka", "linear_cka_debiased"]


def plot_cka(result: CompareResult, stem: Path) -> list[Path]:
    """Per-layer CKA to the base: linear CKA, and debiased CKA on the same y axis when the two
    differ by more than their intervals (the caption says which)."""
    qs = {
        "linear_cka": Quantity("linear_cka", "Linear CKA", "linear CKA to the base", 1.0),
        "linear_cka_debiased": Quantity(
            "linear_cka_debiased", "Debiased linear CKA", "debiased linear CKA to the base", 1.0
        ),
    }
    return _per_layer_figure(
        result,
        stem,
        [qs[k] for k in cka_panels(result)],
        "Representation similarity to the base model",
        same_quantity=True,
    )


def _base_rank(result: CompareResult) -> np.ndarray | None:
    for name in result.tuned_names:
        base = result.series(name, "effective_rank_base")
        if not np.isnan(base).all():
            return base
    return None


def rank_is_log(result: CompareResult) -> bool:
    """Whether the effective-rank figure has a log y axis (ranks spanning a decade)."""
    names = _drawn(result, ["effective_rank_tuned"])
    base = _base_rank(result)
    return needs_log(
        np.concatenate(
            [result.series(n, "effective_rank_tuned") for n in names]
            + ([base] if base is not None else [])
        )
        if names
        else []
    )


def plot_effective_rank(result: CompareResult, stem: Path) -> list[Path]:
    """Per-layer effective rank of each tuned checkpoint, the base as the dashed reference."""
    q = Quantity(
        "effective_rank_tuned",
        "Effective rank",
        "effective rank (Roy & Vetterli)",
        _base_rank(result),
    )
    return _per_layer_figure(
        result,
        stem,
        [q],
        "Effective rank of the feature matrix",
        same_quantity=True,
        log={q.key: rank_is_log(result)},
    )


DRIFT_LABELS = {
    "frechet_distance": ("Fréchet distance", "Fréchet distance (feature units²)"),
    "mmd_linear": ("MMD², linear kernel (paired)", "MMD² linear (feature units²)"),
    "mmd_rbf": (
        "MMD², RBF kernel (median-distance bandwidth)",
        "MMD² RBF, median-distance σ (kernel units, 0–2)",
    ),
    "energy_distance": ("Energy distance (Székely)", "energy distance (feature units)"),
}


def plot_drift(result: CompareResult, stem: Path) -> list[Path]:
    """Per-layer distribution drift: Fréchet distance, MMD² and (when asked for) the energy
    distance, one panel each (stacked, each with its own unit)."""
    qs = [Quantity(k, title, ylabel) for k, (title, ylabel) in DRIFT_LABELS.items()]
    return _per_layer_figure(
        result, stem, qs, "Drift from the base distribution", same_quantity=False
    )


# -- spectra -----------------------------------------------------------------------------------
def _ratios(result: CompareResult) -> dict[str, dict[str, np.ndarray]]:
    """``{layer: {checkpoint: σᵢ(tuned) / σᵢ(base)}}`` over the components where the base's
    singular value is not numerically zero."""
    base_sv = result.spectra.get(result.base.name, {})
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer in result.layers:
        if layer not in base_sv:
            continue
        ref = np.asarray(base_sv[layer], dtype=np.float64)
        for name in result.tuned_names:
            sv = result.spectra.get(name, {}).get(layer)
            if sv is None:
                continue
            sv = np.asarray(sv, dtype=np.float64)
            k = min(sv.size, ref.size)
            keep = ref[:k] > ref[0] * 1e-6  # the base's numerically zero tail says nothing
            k = int(keep.sum()) if keep.all() else int(np.argmin(keep))
            if k:
                out.setdefault(layer, {})[name] = sv[:k] / ref[:k]
    return out


def spectra_layers(result: CompareResult) -> list[str]:
    return list(_ratios(result))


def spectra_names(result: CompareResult) -> list[str]:
    """The tuned checkpoints drawn in the spectra figure."""
    ratios = _ratios(result)
    return [n for n in result.tuned_names if any(n in per for per in ratios.values())]


def spectra_is_log(result: CompareResult) -> bool:
    """One scale for every spectra panel: log when any ratio spans :data:`SPECTRUM_LOG_RATIO`."""
    vals = [r for per in _ratios(result).values() for r in per.values()]
    return needs_log(np.concatenate(vals), SPECTRUM_LOG_RATIO) if vals else False


def plot_spectra(result: CompareResult, stem: Path) -> list[Path]:
    """Singular values of each tuned checkpoint relative to the base's, σᵢ / σᵢ(base), at
    the layers kept in ``result.spectra``: 1 = the base's spectrum, above = more variance
    along that component, below = collapsed.  Every panel on one y axis (log or not)."""
    ratios = _ratios(result)
    if not ratios:
        return []
    layers = list(ratios)
    names = spectra_names(result)
    styles = _styles(result)
    log = spectra_is_log(result)

    def draw(ax, layer, name, mode):
        r = ratios[layer].get(name)
        if r is None:
            return
        x = np.arange(1, r.size + 1)
        if mode == "context":
            ax.plot(x, r, color=CONTEXT_COLOR, lw=0.9, zorder=1, label="other checkpoints")
            return
        st = styles[name]
        ax.plot(
            x,
            r,
            color=st["color"],
            ls=st["ls"],
            lw=1.2,
            marker=st["marker"],
            ms=3,
            markevery=max(1, r.size // 12),
            label=name,
            zorder=3,
        )

    with paper_style():
        if len(names) > MAX_LINES:
            fig, panels = small_multiples(names, layers, draw, panel_w=2.45, panel_h=1.75)
        else:
            ncols = min(3, len(layers))
            nrows = math.ceil(len(layers) / ncols)
            fig, axes = grid(nrows, ncols, 2.6, 2.7, sharex=False, sharey=True)
            panels = []
            for i, layer in enumerate(layers):
                ax = axes.ravel()[i]
                for name in names:
                    draw(ax, layer, name, "line")
                panels.append((ax, None, layer))
            for ax in axes.ravel()[len(layers) :]:
                fig.delaxes(ax)
        ylabel = log_label("σᵢ(tuned) / σᵢ(base)", log)
        rows_are_names = panels[0][1] is not None and len(layers) > 1
        for ax, name, layer in panels:
            ax.axhline(1.0, color=BASE_COLOR, ls="--", lw=1.0, label=f"{result.base.name} (base)")
            if log:
                log_axis(ax, "y")
            top, bottom, left = panel_position(fig, ax)
            if name is not None and len(layers) == 1:
                ax.set_title(name, loc="left", fontsize=9, color=styles[name]["color"])
            elif name is None or top:
                ax.set_title(layer_title(result.layers, layer), fontsize=9)
            if rows_are_names:  # one row per checkpoint: the row's name on the left
                ax.set_ylabel(name if left else "", color=styles[name]["color"], fontsize=9)
            elif name is None:
                ax.set_ylabel(ylabel if left else "")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.tick_params(axis="x", labelbottom=bottom)
            ax.set_xlabel("component i" if bottom else "")
        if panels[0][1] is not None and not rows_are_names:  # one layer: the label once
            fig.supylabel(ylabel, fontsize=9)
        figure_legend(fig, *figure_handles(fig))
        where = f" at {layer_title(result.layers, layers[0])}" if len(layers) == 1 else ""
        figure_title(
            fig,
            "Singular-value spectra relative to the base"
            + where
            + (f"\n{ylabel}, one y axis for every panel" if rows_are_names else ""),
        )
        return save_figure(fig, stem)
