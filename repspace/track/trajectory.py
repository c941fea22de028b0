"""A distortion trajectory: metric values per training step and layer, as a tidy table.

One record per (step, layer, metric): ``trajectory.csv`` has the columns ``step, layer,
layer_index, metric, value`` (``layer_index``: depth order, 0 = first captured layer), ready
for pandas / R / a spreadsheet; ``trajectory.json`` holds the same values as
``values[metric][layer] = [value per step]`` beside ``steps``, the layers in depth order,
the settings that decide the numbers (layers, pooling, batch size, max length, metrics,
every_n_steps, precision, world size) and the probe's identity (source, size, SHA-256).
Undefined values are NaN in memory, empty in the CSV and ``null`` in the JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Trajectory", "read_trajectory", "SCHEMA", "SCHEMA_VERSION", "CSV_COLUMNS"]

SCHEMA = "repspace.trajectory"
SCHEMA_VERSION = 1
CSV_COLUMNS = ("step", "layer", "layer_index", "metric", "value")


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


@dataclass
class Trajectory:
    """Metric values per step and layer (``values[step][layer][metric]``), steps ascending."""

    layers: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    values: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)

    def add(self, step: int, values: dict[str, dict[str, float]]) -> None:
        """Record one measurement ``{layer: {metric: value}}`` at ``step`` (a step measured
        again replaces its earlier values)."""
        step = int(step)
        for layer, row in values.items():
            if layer not in self.layers:
                self.layers.append(layer)
            for metric in row:
                if metric not in self.metrics:
                    self.metrics.append(metric)
        self.values[step] = {
            layer: {m: _float(v) for m, v in row.items()} for layer, row in values.items()
        }
        self.values = dict(sorted(self.values.items()))

    def merge(self, other: "Trajectory") -> "Trajectory":
        """Add ``other``'s steps that this trajectory lacks (a resumed run continuing the
        trajectory its first part wrote: ``tracker.trajectory.merge(read_trajectory(folder))``)."""
        for step in other.steps:
            if step not in self.values:
                self.add(step, other.at(step))
        return self

    def __len__(self) -> int:
        return len(self.values)

    @property
    def steps(self) -> list[int]:
        return list(self.values)

    def at(self, step: int) -> dict[str, dict[str, float]]:
        """``{layer: {metric: value}}`` measured at ``step`` (KeyError when it was not)."""
        return self.values[int(step)]

    def last(self) -> dict[str, dict[str, float]]:
        """The values of the last measured step (empty before any)."""
        return self.values[self.steps[-1]] if self.values else {}

    def series(self, metric: str, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of one metric at one layer (NaN where it was not measured)."""
        steps = np.asarray(self.steps, dtype=np.int64)
        vals = np.asarray(
            [self.values[s].get(layer, {}).get(metric, math.nan) for s in self.steps],
            dtype=np.float64,
        )
        return steps, vals

    def matrix(self, metric: str) -> np.ndarray:
        """``(layers, steps)`` array of one metric (NaN where missing)."""
        return np.asarray(
            [self.series(metric, layer)[1] for layer in self.layers], dtype=np.float64
        ).reshape(len(self.layers), len(self.values))

    # -- tidy table ----------------------------------------------------------------------
    def records(self) -> list[dict]:
        """One dict per (step, layer, metric), in step, depth and metric order."""
        out = []
        for step, per_layer in self.values.items():
            for i, layer in enumerate(self.layers):
                row = per_layer.get(layer, {})
                for metric in self.metrics:
                    if metric in row:
                        out.append(
                            {
                                "step": step,
                                "layer": layer,
                                "layer_index": i,
                                "metric": metric,
                                "value": row[metric],
                            }
                        )
        return out

    def to_dataframe(self):
        """The tidy table as a pandas ``DataFrame`` (pandas is imported here, on demand)."""
        import pandas as pd

        return pd.DataFrame(self.records(), columns=list(CSV_COLUMNS))

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for r in self.records():
            v = r["value"]
            writer.writerow(
                [
                    r["step"],
                    r["layer"],
                    r["layer_index"],
                    r["metric"],
                    "" if math.isnan(v) else repr(float(v)),
                ]
            )
        return buf.getvalue()

    def to_dict(self) -> dict:
        """The JSON document (NaN as None)."""

        def clean(v):
            return None if v is None or math.isnan(v) else float(v)

        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "settings": self.settings,
            "probe": self.probe,
            "layers": list(self.layers),
            "metrics": list(self.metrics),
            "steps": self.steps,
            "values": {
                m: {
                    layer: [clean(self.values[s].get(layer, {}).get(m)) for s in self.steps]
                    for layer in self.layers
                }
                for m in self.metrics
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, doc: dict) -> "Trajectory":
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise ValueError(f"not a repspace trajectory (schema {SCHEMA!r} expected)")
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"trajectory schema version {doc.get('schema_version')!r}; this "
                f"repspace reads version {SCHEMA_VERSION}"
            )
        traj = cls(
            layers=list(doc["layers"]),
            metrics=list(doc["metrics"]),
            settings=dict(doc.get("settings", {})),
            probe=dict(doc.get("probe", {})),
        )
        for i, step in enumerate(doc["steps"]):
            traj.values[int(step)] = {
                layer: {
                    m: _float(doc["values"][m][layer][i])
                    for m in traj.metrics
                    if layer in doc["values"].get(m, {})
                }
                for layer in traj.layers
            }
        return traj


def read_trajectory(path: str | Path) -> Trajectory:
    """A trajectory written by :meth:`repspace.track.Tracker.finish` (its folder, or the
    ``trajectory.json`` file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "trajectory.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read a trajectory ({exc})") from None
    try:
        return Trajectory.from_dict(doc)
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
