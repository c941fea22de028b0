"""Report figures, each saved as a vector PDF and a PNG.

Every function takes a :class:`~repspace.report.result.CompareResult` and an output
stem (``out/plots/cka``) and returns the written paths.  Colours come from
:mod:`repspace.report.style`, so a checkpoint keeps its colour across figures.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from repspace.report.result import CompareResult
from repspace.report.style import BASE_COLOR, colors_for, log_axis, paper_style

__all__ = ["save_figure", "plot_cka", "plot_effective_rank", "plot_spectra", "plot_drift",
           "plot_embedding", "plot_heatmap", "short_layer_names", "ALL_PLOTS"]


def short_layer_names(layers: list[str]) -> list[str]:
    """Drop the dotted prefix all layer names share: ``encoder.layer.3`` → ``layer.3``."""
    if len(layers) < 2:
        return list(layers)
    parts = [name.split(".") for name in layers]
    # Keep a word before a bare index: "layer.3", not "3".
    keep = [2 if p[-1].isdigit() and len(p) > 1 else 1 for p in parts]
    common = 0
    while (all(len(p) - common > k for p, k in zip(parts, keep))
           and len({p[common] for p in parts}) == 1):
        common += 1
    return [".".join(p[common:]) for p in parts]


def save_figure(fig, stem: Path) -> list[Path]:
    from repspace.outputs import current_umask, staging_prefix

    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for ext in ("pdf", "png"):
            path = stem.with_suffix(f".{ext}")
            # A unique temporary name: two studies writing one figures/ folder must not collide.
            fd, tmp = tempfile.mkstemp(prefix=f"{staging_prefix()}{path.name}.", suffix=".tmp",
                                       dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    fig.savefig(f, format=ext, bbox_inches="tight")
                os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 is not what was asked
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            paths.append(path)
    finally:
        plt.close(fig)
    return paths


def _layer_axis(ax, result: CompareResult) -> None:
    names = short_layer_names(result.layers)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    ax.set_xlabel("layer")


def _per_layer(result: CompareResult, metric: str, ax, label_suffix: str = "", **kw) -> bool:
    colors = colors_for(result.tuned_names)
    drawn = False
    for name in result.tuned_names:
        y = result.series(name, metric)
        if np.isnan(y).all():
            continue
        ax.plot(range(len(y)), y, marker="o", ms=3, color=colors[name],
                label=name + label_suffix, **kw)
        drawn = True
    return drawn


def plot_cka(result: CompareResult, stem: Path) -> list[Path]:
    """Per-layer CKA to the base: linear (solid) and debiased (dashed)."""
    with paper_style():
        fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(result.layers) + 2.5), 3.0))
        _per_layer(result, "linear_cka", ax)
        _per_layer(result, "linear_cka_debiased", ax, label_suffix=" (debiased)", ls="--", alpha=0.8)
        ax.axhline(1.0, color=BASE_COLOR, lw=0.8, ls=":")
        ax.set_ylabel("CKA to base")
        ax.set_title("Representation similarity to the base model")
        _layer_axis(ax, result)
        ax.legend(frameon=False, ncol=1 if len(result.tuned) < 4 else 2)
        return save_figure(fig, stem)


def plot_effective_rank(result: CompareResult, stem: Path) -> list[Path]:
    """Per-layer effective rank of each tuned checkpoint, with the base as reference."""
    with paper_style():
        fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(result.layers) + 2.5), 3.0))
        if result.tuned_names:
            base = result.series(result.tuned_names[0], "effective_rank_base")
            ax.plot(range(len(base)), base, color=BASE_COLOR, ls="--", marker="s", ms=3,
                    label=f"{result.base.name} (base)")
        _per_layer(result, "effective_rank_tuned", ax)
        ax.set_ylabel("effective rank (Roy & Vetterli)")
        ax.set_title("Effective rank of the feature matrix")
        _layer_axis(ax, result)
        ax.legend(frameon=False)
        return save_figure(fig, stem)


def plot_spectra(result: CompareResult, stem: Path) -> list[Path]:
    """Singular-value spectra (log scale) at the layers kept in ``result.spectra``."""
    layers = [layer for layer in result.layers
              if any(layer in s for s in result.spectra.values())]
    if not layers:
        return []
    colors = colors_for(result.tuned_names)
    colors[result.base.name] = BASE_COLOR
    with paper_style():
        fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 2.8), squeeze=False)
        for ax, layer in zip(axes[0], layers):
            for name in [*result.tuned_names, result.base.name]:  # base drawn on top
                sv = result.spectra.get(name, {}).get(layer)
                if sv is None:
                    continue
                sv = np.asarray(sv, dtype=np.float64)
                sv = sv[sv > 0]
                ax.plot(np.arange(1, sv.size + 1), sv / sv[0], color=colors[name],
                        ls="--" if name == result.base.name else "-", lw=1.2,
                        label=name + (" (base)" if name == result.base.name else ""))
            log_axis(ax, "y")
            ax.set_title(short_layer_names(result.layers)[result.layers.index(layer)])
            ax.set_xlabel("component")
        axes[0][0].set_ylabel("σᵢ / σ₁ (centred features)")
        axes[0][-1].legend(frameon=False)
        fig.suptitle("Singular-value spectra", y=1.02)
        return save_figure(fig, stem)


def plot_drift(result: CompareResult, stem: Path) -> list[Path]:
    """Per-layer distribution drift: Fréchet distance and MMD²."""
    metrics = [m for m in ("frechet_distance", "mmd", "mmd_rbf") if any(
        not np.isnan(result.series(n, m)).all() for n in result.tuned_names)]
    if not metrics:
        return []
    labels = {"frechet_distance": "Fréchet distance", "mmd": "MMD² (linear kernel, paired)",
              "mmd_rbf": "MMD² (RBF kernel)"}
    with paper_style():
        fig, axes = plt.subplots(1, len(metrics), figsize=(max(4.0, 0.3 * len(result.layers) + 2.5)
                                                         * len(metrics), 3.0), squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            _per_layer(result, metric, ax)
            ax.set_ylabel(labels[metric])
            _layer_axis(ax, result)
        axes[0][0].legend(frameon=False)
        fig.suptitle("Drift from the base distribution", y=1.02)
        return save_figure(fig, stem)


def plot_embedding(result: CompareResult, stem: Path) -> list[Path]:
    """2-D embedding (UMAP, or PCA) of base and tuned features at one layer."""
    emb = result.embedding
    if not emb or not emb.get("points"):
        return []
    colors = colors_for(result.tuned_names)
    colors[result.base.name] = BASE_COLOR
    with paper_style():
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
        for name, pts in emb["points"].items():
            pts = np.asarray(pts)
            ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.6, color=colors.get(name, "#777777"),
                       label=name + (" (base)" if name == result.base.name else ""), linewidths=0)
        ax.set_xlabel(f"{emb['method'].upper()} 1")
        ax.set_ylabel(f"{emb['method'].upper()} 2")
        ax.set_title(f"Features at {emb['layer']}")
        ax.legend(frameon=False, markerscale=2)
        return save_figure(fig, stem)


def plot_heatmap(result: CompareResult, stem: Path, metric: str = "linear_cka") -> list[Path]:
    """Summary heat map: checkpoints × layers of ``metric``."""
    import seaborn as sns

    data = np.vstack([result.series(n, metric) for n in result.tuned_names]) \
        if result.tuned_names else np.zeros((0, len(result.layers)))
    if data.size == 0:
        return []
    with paper_style():
        fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(result.layers) + 2.0),
                                        0.45 * len(result.tuned_names) + 1.4))
        sns.heatmap(data, ax=ax, vmin=0.0, vmax=1.0, cmap="viridis", annot=data.shape[1] <= 16,
                    fmt=".2f", annot_kws={"size": 7}, cbar_kws={"label": metric.replace("_", " ")},
                    xticklabels=short_layer_names(result.layers), yticklabels=result.tuned_names)
        ax.set_xlabel("layer")
        ax.set_ylabel("checkpoint")
        ax.set_title(f"{metric.replace('_', ' ')} to the base")
        ax.grid(False)
        return save_figure(fig, stem)


ALL_PLOTS = {
    "cka": plot_cka,
    "effective_rank": plot_effective_rank,
    "spectra": plot_spectra,
    "drift": plot_drift,
    "embedding": plot_embedding,
    "heatmap": plot_heatmap,
}
