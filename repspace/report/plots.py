"""Report figures, each saved as a vector PDF and a PNG.

Every function takes a :class:`~repspace.report.result.CompareResult` and an output
stem (``out/plots/cka``) and returns the written paths.  Colours come from
:mod:`repspace.report.style`, so a checkpoint keeps its colour across figures.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from repspace.report.layer_names import layer_groups, layer_title, short_layer_names
from repspace.report.result import CompareResult
from matplotlib.ticker import MaxNLocator

from repspace.report.style import (BASE_COLOR, figure_handles, legend_outside, log_axis, paper_style,
                                   styles_for, subplots)

__all__ = ["save_figure", "plot_cka", "plot_effective_rank", "plot_spectra", "plot_drift",
           "plot_embedding", "plot_heatmap", "short_layer_names", "layer_groups", "broken",
           "layer_axis", "caption", "ALL_PLOTS"]


def save_figure(fig, stem: Path) -> list[Path]:
    from repspace.outputs import atomic_path

    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for ext in ("pdf", "png"):
            path = stem.with_suffix(f".{ext}")
            with atomic_path(path) as tmp:  # unique: two studies may share a figures/ folder
                fig.savefig(tmp, format=ext, bbox_inches="tight")
            paths.append(path)
    finally:
        fig.clear()  # frees the artists now; the figure was never registered with pyplot
    return paths



def broken(y, layers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` for a per-layer line with a NaN gap between towers, so that no line joins
    the last vision layer to the first text layer."""
    y = np.asarray(y, dtype=np.float64)
    xs, ys = [], []
    for g, (_, idx) in enumerate(layer_groups(layers)):
        if g:
            xs.append(idx[0] - 0.5)
            ys.append(np.nan)
        xs.extend(idx)
        ys.extend(y[idx])
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def layer_axis(ax, layers: list[str], fontsize: float | None = None) -> None:
    """Layer ticks (short names within each tower), a divider between towers and the tower
    names along the top edge."""
    groups = layer_groups(layers)
    ticks = [""] * len(layers)
    for _, idx in groups:
        for i, short in zip(idx, short_layer_names([layers[i] for i in idx])):
            ticks[i] = short
    rotate = len(layers) > 4 or max((len(t) for t in ticks), default=0) > 10
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(ticks, rotation=45 if rotate else 0, ha="right" if rotate else "center",
                       fontsize=fontsize)
    ax.set_xlim(-0.5, len(layers) - 0.5)
    ax.set_xlabel("layer")
    if len(groups) > 1:
        for _, idx in groups[1:]:
            ax.axvline(idx[0] - 0.5, color="#555555", lw=0.8, ls="-", alpha=0.6)
        top = ax.secondary_xaxis("top")
        top.set_xticks([(idx[0] + idx[-1]) / 2 for _, idx in groups])
        top.set_xticklabels([str(name) for name, _ in groups], fontsize=8, style="italic")
        top.tick_params(length=0)
        top.spines["top"].set_visible(False)


def _per_layer(result: CompareResult, metric: str, ax, styles: dict, **kw) -> bool:
    drawn = False
    for name in result.tuned_names:
        y = result.series(name, metric)
        if np.isnan(y).all():
            continue
        x, y = broken(y, result.layers)
        st = styles[name]
        band = _band(result, name, metric)
        if band is not None:  # the jackknife interval, in the line's colour
            _, lo = broken(band[0], result.layers)
            _, hi = broken(band[1], result.layers)
            ax.fill_between(x, lo, hi, color=st["color"], alpha=0.18, lw=0)
        ax.plot(x, y, marker=st["marker"], ms=4, color=st["color"], ls=st["ls"], lw=1.3,
                label=name, **kw)
        drawn = True
    return drawn


def _band(result: CompareResult, name: str, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
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
    return (f" Shaded: {iv.get('level', 0.95):.0%} interval of a delete-one-block jackknife "
            f"over {iv.get('blocks')} blocks of probe rows (no extra forward pass).")


def _styles(result: CompareResult) -> dict[str, dict]:
    return styles_for([*result.tuned_names, result.base.name], base=result.base.name)


def _width(result: CompareResult, panels: int = 1) -> float:
    return max(3.6, 0.4 * len(result.layers) + 2.2) * panels + 1.6  # + the legend on the right


def _metric_panels(result: CompareResult, stem: Path, labels: dict[str, str], ylabel, title: str,
                   reference: float | None = None) -> list[Path]:
    """One panel per metric of ``labels`` that has a value (per-layer lines, one per tuned
    checkpoint), a shared legend outside; ``reference``: a dashed line for the base's value."""
    metrics = [m for m in labels
               if any(not np.isnan(result.series(n, m)).all() for n in result.tuned_names)]
    if not metrics:
        return []
    styles = _styles(result)
    with paper_style():
        fig, axes = subplots(1, len(metrics), figsize=(_width(result, len(metrics)), 3.2),
                             squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            _per_layer(result, metric, ax, styles)
            if reference is not None:
                ax.axhline(reference, color=BASE_COLOR, lw=0.9, ls="--",
                           label=f"{result.base.name} (base)")
            ax.set_ylabel(ylabel(metric))
            ax.set_title(labels[metric], loc="left")
            layer_axis(ax, result.layers)
        legend_outside(axes[0][-1], *figure_handles(fig))
        fig.suptitle(title)
        fig.tight_layout()
        return save_figure(fig, stem)


def plot_cka(result: CompareResult, stem: Path) -> list[Path]:
    """Per-layer CKA to the base: linear CKA, and debiased CKA in its own panel."""
    titles = {"linear_cka": "Linear CKA", "linear_cka_debiased": "Debiased linear CKA"}
    return _metric_panels(result, stem, titles, lambda m: f"{titles[m]} to the base",
                          "Representation similarity to the base model", reference=1.0)


def plot_effective_rank(result: CompareResult, stem: Path) -> list[Path]:
    """Per-layer effective rank of each tuned checkpoint, with the base as reference."""
    styles = _styles(result)
    with paper_style():
        fig, ax = subplots(figsize=(_width(result), 3.2))
        if result.tuned_names:
            base = result.series(result.tuned_names[0], "effective_rank_base")
            x, y = broken(base, result.layers)
            st = styles[result.base.name]
            ax.plot(x, y, color=st["color"], ls="--", marker=st["marker"], ms=4, lw=1.3,
                    label=f"{result.base.name} (base)")
        _per_layer(result, "effective_rank_tuned", ax, styles)
        ax.set_ylabel("effective rank (Roy & Vetterli)")
        ax.set_title("Effective rank of the feature matrix")
        layer_axis(ax, result.layers)
        legend_outside(ax)
        return save_figure(fig, stem)


def plot_spectra(result: CompareResult, stem: Path) -> list[Path]:
    """Singular values of each tuned checkpoint relative to the base's, σᵢ / σᵢ(base), at
    the layers kept in ``result.spectra``: 1 = the base's spectrum, above = more variance
    along that component, below = collapsed."""
    base_sv = result.spectra.get(result.base.name, {})
    layers = [layer for layer in result.layers if layer in base_sv
              and any(layer in result.spectra.get(n, {}) for n in result.tuned_names)]
    if not layers:
        return []
    styles = _styles(result)
    with paper_style():
        fig, axes = subplots(1, len(layers), figsize=(3.0 * len(layers) + 1.8, 3.0),
                                 squeeze=False)
        for ax, layer in zip(axes[0], layers):
            ref = np.asarray(base_sv[layer], dtype=np.float64)
            ax.axhline(1.0, color=BASE_COLOR, ls="--", lw=1.0, label=f"{result.base.name} (base)")
            for name in result.tuned_names:
                sv = result.spectra.get(name, {}).get(layer)
                if sv is None:
                    continue
                sv = np.asarray(sv, dtype=np.float64)
                k = min(sv.size, ref.size)
                keep = ref[:k] > ref[0] * 1e-6  # the base's numerically zero tail says nothing
                k = int(keep.sum()) if keep.all() else int(np.argmin(keep))
                if k == 0:
                    continue
                st = styles[name]
                step = max(1, k // 12)
                ax.plot(np.arange(1, k + 1), sv[:k] / ref[:k], color=st["color"], ls=st["ls"],
                        lw=1.2, marker=st["marker"], ms=3, markevery=step, label=name)
            ax.set_title(layer_title(result.layers, layer), fontsize=9)
            ax.set_xlabel("component i")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ratios = np.concatenate([ln.get_ydata() for ln in ax.get_lines()[1:]] or [[1.0]])
            ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
            if ratios.size and ratios.max() / ratios.min() > 4:  # one big ratio flattens the rest
                log_axis(ax, "y")
        axes[0][0].set_ylabel("σᵢ(tuned) / σᵢ(base)  (1 = unchanged)")
        legend_outside(axes[0][-1], *figure_handles(fig))
        fig.suptitle("Singular-value spectra relative to the base")
        fig.tight_layout()
        return save_figure(fig, stem)


def plot_drift(result: CompareResult, stem: Path) -> list[Path]:
    """Per-layer distribution drift: Fréchet distance and MMD²."""
    labels = {"frechet_distance": "Fréchet distance", "mmd_linear": "MMD² (linear kernel, paired)",
              "mmd_rbf": "MMD² (RBF kernel)"}
    return _metric_panels(result, stem, labels, labels.get, "Drift from the base distribution")


def plot_embedding(result: CompareResult, stem: Path) -> list[Path]:
    """2-D embedding (UMAP, or PCA) of base and tuned features at one layer."""
    emb = result.embedding
    if not emb or not emb.get("points"):
        return []
    styles = styles_for(list(dict.fromkeys([*result.tuned_names, result.base.name,
                                            *emb["points"]])), base=result.base.name)
    with paper_style():
        fig, ax = subplots(figsize=(5.4, 3.8))
        for name, pts in emb["points"].items():
            pts = np.asarray(pts)
            st = styles[name]
            ax.scatter(pts[:, 0], pts[:, 1], s=9, alpha=0.6, color=st["color"], marker=st["marker"],
                       label=name + (" (base)" if name == result.base.name else ""), linewidths=0)
        ax.set_xlabel(f"{emb['method'].upper()} component 1")
        ax.set_ylabel(f"{emb['method'].upper()} component 2")
        ax.set_title(f"Features at {layer_title(result.layers, emb['layer'])}"
                     if emb["layer"] in result.layers else f"Features at {emb['layer']}")
        legend_outside(ax, markerscale=1.5)
        return save_figure(fig, stem)


def plot_heatmap(result: CompareResult, stem: Path, metric: str = "linear_cka") -> list[Path]:
    """Summary heat map: checkpoints × layers of ``metric``, the colour scale fitted to the
    values shown (with a colour bar), the values printed in the cells."""
    data = np.vstack([result.series(n, metric) for n in result.tuned_names]) \
        if result.tuned_names else np.zeros((0, len(result.layers)))
    if data.size == 0 or np.isnan(data).all():
        return []
    lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
    if hi - lo < 1e-6:
        lo, hi = lo - 0.005, hi + 0.005
    digits = 2 if hi - lo > 0.3 else (3 if hi - lo > 0.03 else 4)
    label = {"linear_cka": "linear CKA to the base"}.get(metric, metric.replace("_", " "))
    with paper_style():
        fig, ax = subplots(figsize=(max(4.0, 0.6 * len(result.layers) + 3.0),
                                        0.3 * len(result.tuned_names) + 1.9))
        im = ax.imshow(np.ma.masked_invalid(data), aspect="auto", cmap="viridis", vmin=lo, vmax=hi,
                       interpolation="nearest")
        cbar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
        cbar.set_label(label)
        if data.shape[1] <= 16 and data.shape[0] <= 20:
            mid = (lo + hi) / 2
            for (i, j), v in np.ndenumerate(data):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.{digits}f}", ha="center", va="center", fontsize=7,
                            color="white" if v < mid else "black")
        for _, idx in layer_groups(result.layers)[1:]:
            ax.axvline(idx[0] - 0.5, color="white", lw=2)
        layer_axis(ax, result.layers)
        ax.set_yticks(range(len(result.tuned_names)))
        ax.set_yticklabels(result.tuned_names)
        ax.set_ylabel("checkpoint")
        ax.set_title(f"{label[0].upper() + label[1:]}, per checkpoint and layer")
        ax.grid(False)
        ax.spines[:].set_visible(False)
        return save_figure(fig, stem)


# Figures drawn by other report modules caption themselves: {name prefix: caption function},
# filled when that module is imported (report.analyses registers "analysis_").
_CAPTIONERS: dict[str, Callable[[str, CompareResult], str]] = {}


def register_captioner(prefix: str, fn: Callable[[str, CompareResult], str]) -> None:
    """Let the module that draws figures named ``prefix…`` write their captions."""
    _CAPTIONERS[prefix] = fn


def caption(name: str, result: CompareResult) -> str:
    """One-paragraph caption of figure ``name`` (plain text, for report.html and report.md)."""
    for prefix, fn in _CAPTIONERS.items():
        if name.startswith(prefix):
            return fn(name, result)
    n = result.probe.get("num_samples")
    probe = (f"{n} probe samples from {result.probe.get('source', 'the probe')}" if n
             else "the probe samples")
    pooling = result.settings.get("pooling")
    pooled = f", features {pooling}-pooled per sample" if pooling else ""
    towers = [g for g, _ in layer_groups(result.layers) if g]
    split = (f" The vertical line separates the towers ({', '.join(towers)}); lines are not "
             "joined across it." if towers else "")
    base = result.base.name
    return {
        "cka": f"Linear CKA (left) and debiased linear CKA (right) between each tuned "
               f"checkpoint's and the base model {base}'s features, per layer, on {probe}"
               f"{pooled}. 1 = the same representation up to rotation and scale (dashed line).",
        "effective_rank": f"Effective rank (Roy & Vetterli, exponential of the entropy of the "
                          f"normalised singular values) of the centred feature matrix per "
                          f"layer, base {base} dashed grey, on {probe}{pooled}. A drop means "
                          "the features collapse onto fewer directions.",
        "spectra": f"Singular values of each tuned checkpoint's centred features divided by "
                   f"the base {base}'s, component by component (1 = unchanged, dashed), at the "
                   "layers shown. Above 1: more variance along that component; below: "
                   "collapsed. Components where the base's singular value is numerically zero "
                   "are left out.",
        "drift": f"Distribution drift from the base {base} per layer: Fréchet distance "
                 f"between Gaussians fitted to the features, and MMD², on {probe}{pooled}. "
                 "0 = no drift.",
        "embedding": f"2-D {str((result.embedding or {}).get('method', '')).upper()} embedding "
                     f"of the base and tuned features at layer "
                     f"{(result.embedding or {}).get('layer', '?')}, one point per probe "
                     "sample.",
        "heatmap": f"Linear CKA to the base {base} per checkpoint and layer; the colour scale "
                   "spans the values shown (see the colour bar), so small differences stay "
                   "visible.",
    }.get(name, name) + (interval_note(result) if name in ("cka", "effective_rank", "drift")
                         else "") + split


ALL_PLOTS = {
    "cka": plot_cka,
    "effective_rank": plot_effective_rank,
    "spectra": plot_spectra,
    "drift": plot_drift,
    "embedding": plot_embedding,
    "heatmap": plot_heatmap,
}
