"""A plain-language paragraph that says what moved, where, and by how much."""
from __future__ import annotations

import numpy as np

from repspace.report.layer_names import tower_short_names
from repspace.report.result import CompareResult


def summarize(result: CompareResult) -> str:
    if not result.tuned_names or not result.layers:
        return "No tuned checkpoint was compared."
    short = dict(zip(result.layers, tower_short_names(result.layers)))
    last = result.layers[-1]
    sentences = []
    for name in result.tuned_names:
        cka = result.series(name, "linear_cka")
        er_b = result.metrics[name].get(last, {}).get("effective_rank_base", np.nan)
        er_t = result.metrics[name].get(last, {}).get("effective_rank_tuned", np.nan)
        parts = []
        if not np.isnan(er_b) and not np.isnan(er_t):
            change = (er_t - er_b) / er_b if er_b else np.nan
            if abs(change) < 0.02:
                parts.append(f"kept the effective rank of the last layer ({short[last]}) at "
                             f"{er_t:.1f} (base {er_b:.1f})")
            else:
                verb = "lowered" if er_t < er_b else "raised"
                parts.append(f"{verb} the effective rank of the last layer ({short[last]}) from "
                             f"{er_b:.1f} to {er_t:.1f} ({100 * change:+.0f} %)")
        if not np.isnan(cka).all():
            i = int(np.nanargmin(cka))
            if cka[i] >= 0.99:
                parts.append(f"kept linear CKA ≥ {np.floor(cka[i] * 1000) / 1000:.3f} at every layer")
            else:
                parts.append(f"moved most at {short[result.layers[i]]} (linear CKA {cka[i]:.3f}, "
                             f"mean over layers {np.nanmean(cka):.3f})")
        if parts:
            sentences.append(f"{name} " + "; ".join(parts) + ".")
    n = result.probe.get("num_samples")
    tail = f" Measured on {n} probe samples" if n else " Measured"
    tail += f" at {len(result.layers)} layer(s) against {result.base.name}."
    return " ".join(sentences) + tail
