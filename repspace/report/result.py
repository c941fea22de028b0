"""The in-memory result of a comparison, the one input of every report writer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class CheckpointInfo:
    """Identity of one checkpoint in a report."""

    name: str
    spec: str
    kind: str
    sha256: str | None = None
    base: str | None = None
    notes: list[str] = field(default_factory=list)
    manifest: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CompareResult:
    """Per-layer metrics of each tuned checkpoint against the base.

    ``metrics[tuned_name][layer][metric]`` holds floats keyed by the metric functions'
    names; ``spectra[checkpoint_name][layer]`` singular values (descending) for the layers
    chosen for spectrum plots (the base under its own name); ``embedding`` an optional
    2-D embedding ``{"layer", "method", "points": {checkpoint_name: (m, 2) array}}``;
    ``warnings`` the warnings raised during the comparison (``"Category: message"``);
    ``analyses`` the optional analyses that ran (JSON-able, keyed by analysis: e.g.
    ``"segments"``, ``"layer_matching"``; rendered by :mod:`repspace.report.analyses`);
    ``intervals[tuned][layer][metric]`` the jackknife interval of each metric
    (``{"se", "low", "high"}``, method in ``settings["intervals"]``) and ``differences``
    the paired intervals of every difference between two tuned checkpoints.
    """

    base: CheckpointInfo
    tuned: list[CheckpointInfo]
    layers: list[str]
    metrics: dict[str, dict[str, dict[str, float]]]
    settings: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)
    spectra: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    embedding: dict | None = None
    warnings: list[str] = field(default_factory=list)  # raised while comparing, shown in reports
    analyses: dict = field(default_factory=dict)
    # {tuned: {layer: {metric: {"se", "low", "high"}}}}: jackknife intervals (settings["intervals"])
    intervals: dict = field(default_factory=dict)
    # {"A − B": {layer: {metric: {"estimate", "se", "low", "high"}}}}: paired over the same rows
    differences: dict = field(default_factory=dict)
    # {tuned: {layer: {metric: (B,) array}}}: the jackknife replicates behind ``intervals``
    # (same blocks everywhere), for intervals of derived numbers; not written to report.json
    replicates: dict = field(default_factory=dict, repr=False)

    @property
    def tuned_names(self) -> list[str]:
        return [t.name for t in self.tuned]

    def series(self, tuned: str, metric: str) -> np.ndarray:
        """``metric`` of checkpoint ``tuned`` over the layers (NaN where absent)."""
        rows = self.metrics.get(tuned, {})
        return np.array(
            [rows.get(layer, {}).get(metric, np.nan) for layer in self.layers], dtype=np.float64
        )

    def interval(self, tuned: str, layer: str, metric: str) -> dict | None:
        """``{"se", "low", "high"}`` of one metric, or None where none was computed."""
        return self.intervals.get(tuned, {}).get(layer, {}).get(metric)

    def derived_interval(self, tuned: str, fn, *metric_layers) -> dict | None:
        """Jackknife interval of ``fn(values)`` where ``values`` are the metrics named by
        ``(metric, layer)`` pairs: ``fn`` applied to the estimates and to each replicate
        (the same blocks), e.g. a mean over layers or a ratio; None without replicates."""
        import numpy as np

        from repspace.closed_forms.jackknife import jackknife_interval

        reps = self.replicates.get(tuned, {})
        try:
            values = [self.metrics[tuned][layer][m] for m, layer in metric_layers]
            arrays = [np.asarray(reps[layer][m]) for m, layer in metric_layers]
        except KeyError:
            return None
        level = self.settings.get("intervals", {}).get("level", 0.95)
        iv = jackknife_interval(float(fn(values)), np.array([fn(r) for r in zip(*arrays)]), level)
        return {"estimate": iv.estimate, **iv.to_dict()}

    def metric_names(self) -> list[str]:
        names: dict[str, None] = {}
        for rows in self.metrics.values():
            for row in rows.values():
                names.update(dict.fromkeys(row))
        return list(names)


def rename_checkpoint(
    result: CompareResult, old: str, new: str, info: CheckpointInfo | None = None
) -> None:
    """Show checkpoint ``old`` (base or tuned; ``info`` when only that one) as ``new``
    everywhere in ``result``."""
    if old == new:
        return
    for ck in [result.base, *result.tuned]:
        if ck.name == old and (info is None or ck is info):
            ck.name = new
    if old in result.metrics:
        result.metrics[new] = result.metrics.pop(old)
    if old in result.spectra:
        result.spectra[new] = result.spectra.pop(old)
    for per in result.analyses.values():  # each analysis is keyed by checkpoint name
        if isinstance(per, dict) and old in per:
            per[new] = per.pop(old)
    if result.embedding and old in result.embedding.get("points", {}):
        pts = result.embedding["points"]
        result.embedding["points"] = {(new if k == old else k): v for k, v in pts.items()}
