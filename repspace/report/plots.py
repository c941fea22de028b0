"""Report figures, each saved as a vector PDF and a PNG.

Every function takes a :class:`~repspace.report.result.CompareResult` and an output
stem (``out/plots/cka``) and returns the written paths.  Colours come from
:mod:`repspace.report.style`, so a checkpoint keeps its colour across figures.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from repspace.report.figures_layout import (
    MAX_LINES,
    SMALL_MULTIPLES_NOTE,
    SMALL_MULTIPLES_ROWS_NOTE,
    broken,
    layer_axis,
    save_figure,
)
from repspace.report.figures_lines import (
    DRIFT_LABELS,
    cka_panels,
    debiased_agreement,
    interval_note,
    many_lines,
    plot_cka,
    plot_drift,
    plot_effective_rank,
    plot_spectra,
    rank_is_log,
    spectra_is_log,
    spectra_layers,
    spectra_names,
)
from repspace.report.figures_families import (
    FAMILY_FIGURES,
    family_caption,
    family_keys,
    family_plots,
)
from repspace.report.figures_points import embedding_panels, plot_embedding, plot_heatmap
from repspace.report.layer_names import layer_groups, layer_title, short_layer_names
from repspace.report.result import CompareResult

__all__ = [
    "ALL_PLOTS",
    "broken",
    "caption",
    "interval_note",
    "layer_axis",
    "layer_groups",
    "plot_cka",
    "plot_drift",
    "plot_effective_rank",
    "plot_embedding",
    "plot_heatmap",
    "plot_spectra",
    "save_figure",
    "short_layer_names",
    "tower_note",
]


# Figures drawn by other report modules caption themselves: {name prefix: caption function},
# filled when that module is imported (report.analyses registers "analysis_").
_CAPTIONERS: dict[str, Callable[[str, CompareResult], str]] = {}


def register_captioner(prefix: str, fn: Callable[[str, CompareResult], str]) -> None:
    """Let the module that draws figures named ``prefix…`` write their captions."""
    _CAPTIONERS[prefix] = fn


def tower_note(layers: list[str], lines: bool = True) -> str:
    """The caption sentence for a figure with a layer axis over several towers ("" for one);
    ``lines``: the figure draws lines (never joined across the divider)."""
    towers = [g for g, _ in layer_groups(layers) if g]
    if not towers:
        return ""
    return f" The vertical line separates the towers ({', '.join(towers)})" + (
        "; lines are not joined across it." if lines else "."
    )


def _pooled_samples(result: CompareResult) -> int | None:
    """The number of feature rows per layer when each probe sample gives one (pooled)."""
    n = result.probe.get("num_samples")
    pooling = (result.settings or {}).get("pooling")
    return n if isinstance(n, int) and pooling and pooling != "tokens" else None


def _sample_rows(result: CompareResult) -> str:
    """How many rows the row-sample metrics saw: "128 rows" when each probe sample is one
    row and the sample takes them all, else "up to N rows (--sample-rows)"."""
    cap = (result.settings or {}).get("sample_rows")
    rows = _pooled_samples(result)
    if isinstance(cap, int) and rows is not None and rows <= cap:
        return f"all {rows} rows"
    return f"up to {cap} rows (--sample-rows)" if cap else "the row sample"


def _cka_caption(result: CompareResult, probe: str) -> str:
    base = result.base.name
    _, largest, by_interval = debiased_agreement(result)
    what = (
        f"between each tuned checkpoint's and the base model {base}'s features, per layer, "
        f"on {probe}; 1 = the same representation up to rotation and scale (dashed)."
    )
    if len(cka_panels(result)) == 2:
        return (
            f"Linear CKA (top) and debiased linear CKA (bottom; the unbiased HSIC "
            f"estimator, which removes the bias of plain CKA at small n) {what} Both panels "
            f"share one y axis; the two differ by up to {largest:.3g}, more than their "
            "intervals."
        )
    text = f"Linear CKA {what}"
    if largest is not None:
        level = (result.settings.get("intervals") or {}).get("level", 0.95)
        within = f"within its {level:.0%} interval" if by_interval else "to within 0.005"
        text += (
            f" Debiased linear CKA agrees with it {within} at every checkpoint and layer "
            f"at this n (largest difference {largest:.2g}), so it is not drawn a second "
            "time; its values are in the per-layer table, metrics.csv and report.json."
        )
    return text


def _drift_caption(result: CompareResult, probe: str) -> str:
    drawn = [
        m
        for m in DRIFT_LABELS
        if any(not np.isnan(result.series(n, m)).all() for n in result.tuned_names)
    ]
    parts = {
        "frechet_distance": "Fréchet distance between Gaussians fitted to the base's and the "
        "tuned features, ‖μ − μ′‖² + tr(Σ + Σ′ − 2(ΣΣ′)^½), in squared "
        "feature units",
        "mmd_linear": "MMD² with a linear kernel on the paired rows (squared feature units; "
        "unbiased, so it can dip below 0)",
        "mmd_rbf": "MMD² with an RBF kernel exp(−‖a − b‖² / 2σ²), σ = the median pairwise "
        "distance of the pooled base and tuned row sample at each layer (median "
        f"heuristic; on {_sample_rows(result)}), in kernel units between 0 and 2",
        "energy_distance": "energy distance 2E‖a − b‖ − E‖a − a′‖ − E‖b − b′‖ (Székely; a "
        f"V-statistic on {_sample_rows(result)}), in feature units",
    }
    listed = "; ".join(parts[m] for m in drawn) or "no drift metric"
    return (
        f"Distribution drift from the base {result.base.name} per layer, one panel per "
        f"measure, each on its own y axis (their units differ): {listed}. On {probe}; "
        "0 = no drift."
    )


def caption(name: str, result: CompareResult) -> str:
    """One-paragraph caption of figure ``name`` (plain text, for report.html and report.md):
    what is drawn, the axes (log where log), the bands and the layout, as drawn."""
    for prefix, fn in _CAPTIONERS.items():
        if name.startswith(prefix):
            return fn(name, result)
    n = result.probe.get("num_samples")
    probe = (
        f"{n} probe samples from {result.probe.get('source', 'the probe')}"
        if n
        else "the probe samples"
    )
    pooling = result.settings.get("pooling")
    if pooling:
        probe += (
            f", features {pooling}-pooled per sample"
            if pooling != "tokens"
            else ", one row per token"
        )
    base = result.base.name
    if name == "cka":
        text = _cka_caption(result, probe)
    elif name == "effective_rank":
        rows = _pooled_samples(result)
        text = (
            f"Effective rank (Roy & Vetterli, exponential of the entropy of the normalised "
            f"singular values) of the centred feature matrix per layer, base {base} dashed "
            f"grey, on {probe}. A drop means the features collapse onto fewer directions. "
            "It cannot exceed min(rows − 1, feature width)"
            + (f": at most {rows - 1} with {rows} samples." if rows else ".")
            + (
                " Log y axis: the ranks span more than a factor of 10."
                if rank_is_log(result)
                else ""
            )
        )
    elif name == "spectra":
        where = ", ".join(layer_title(result.layers, layer) for layer in spectra_layers(result))
        text = (
            f"Singular values of each tuned checkpoint's centred features divided by the "
            f"base {base}'s, component by component (1 = unchanged, dashed), at {where}. "
            "Above 1: more variance along that component; below: collapsed. Components "
            "where the base's singular value is numerically zero are left out. "
            + (
                "Every panel shares one log y axis (the ratios span more than a factor of 4)."
                if spectra_is_log(result)
                else "Every panel shares one linear y axis."
            )
        )
    elif name == "drift":
        text = _drift_caption(result, probe)
    elif name == "embedding":
        emb = result.embedding or {}
        method = str(emb.get("method", "")).upper()
        layer = emb.get("layer", "?")
        where = layer_title(result.layers, layer) if layer in result.layers else str(layer)
        sizes = {k: len(v) for k, v in (emb.get("points") or {}).items()}
        m = max(sizes.values(), default=0)
        point = (
            "one point per probe sample"
            if pooling and pooling != "tokens"
            else "one point per sampled feature row"
        )
        axes = (
            "the first two principal components of the pooled points (arbitrary units)"
            if method == "PCA"
            else "UMAP coordinates: neighbourhoods are meaningful, "
            "distances between clusters and the axes are not"
        )
        panels = embedding_panels(result)
        layout = (
            " One panel per tuned checkpoint (its points in its colour), the base's "
            "points in grey behind each; the panels share their axes."
            if len(panels) > 1
            else ""
        )
        text = (
            f"2-D {method} of the features at {where}: the base {base}'s and every tuned "
            f"checkpoint's row sample (up to {m} rows each, {point}) embedded jointly in one "
            f"fit, so positions compare across checkpoints. Axes: {axes}.{layout}"
        )
    elif name == "heatmap":
        text = (
            f"Linear CKA to the base {base} per checkpoint and layer; the colour scale spans "
            "the values shown (see the colour bar), so small differences stay visible."
        )
    elif name in FAMILY_FIGURES:
        text = family_caption(name, result, probe, _sample_rows(result))
    else:
        return name
    keys = {
        "cka": cka_panels(result),
        "effective_rank": ["effective_rank_tuned"],
        "drift": list(DRIFT_LABELS),
        **{n: [m.name for m in family_keys(f)] for n, f in FAMILY_FIGURES.items()},
    }.get(name)
    many = (
        len(spectra_names(result)) > MAX_LINES
        if name == "spectra"
        else keys is not None and many_lines(result, keys)
    )
    per_measure = name == "drift" or name in FAMILY_FIGURES  # one column per measure drawn
    if many:
        if per_measure:
            columns = [
                m
                for m in keys
                if any(not np.isnan(result.series(n, m)).all() for n in result.tuned_names)
            ]
        else:
            columns = spectra_layers(result) if name == "spectra" else keys
        if len(columns) > 1:
            shared = {
                "drift": "the panels of one measure (a column) share their y axis",
                "spectra": "every panel shares one y axis, the layer above each column",
            }.get("drift" if per_measure else name, "every panel shares one y axis")
            text += SMALL_MULTIPLES_ROWS_NOTE.format(max_lines=MAX_LINES, shared=shared)
        else:
            text += SMALL_MULTIPLES_NOTE.format(max_lines=MAX_LINES)
    if name in ("cka", "effective_rank", "drift") or name in FAMILY_FIGURES:
        text += interval_note(result)
    if name in ("cka", "effective_rank", "drift", "heatmap") or name in FAMILY_FIGURES:
        text += tower_note(result.layers, lines=name != "heatmap")
    return text


ALL_PLOTS = {
    "cka": plot_cka,
    "effective_rank": plot_effective_rank,
    "spectra": plot_spectra,
    "drift": plot_drift,
    "embedding": plot_embedding,
    "heatmap": plot_heatmap,
    # every other metric family, one figure each, drawn when the report holds its values
    **family_plots(),
}
