"""A plain-language paragraph that says what moved, where, and by how much (with the
jackknife intervals where the comparison has them: a change is only called a change when
its interval excludes no change)."""

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
            ratio = result.derived_interval(
                name,
                lambda v: v[1] / v[0],
                ("effective_rank_base", last),
                ("effective_rank_tuned", last),
            )
            known = ratio is not None and np.isfinite(ratio["low"]) and np.isfinite(ratio["high"])
            text_t = _pm(er_t, result.interval(name, last, "effective_rank_tuned"), 1)
            text_b = _pm(er_b, result.interval(name, last, "effective_rank_base"), 1)
            if (known and ratio["low"] <= 1 <= ratio["high"]) or (not known and abs(change) < 0.02):
                parts.append(
                    f"kept the effective rank of the last layer ({short[last]}) at "
                    f"{text_t} (base {text_b}"
                    + (
                        f"; ratio 95 % interval {ratio['low']:.3f}–{ratio['high']:.3f} includes 1)"
                        if known
                        else ")"
                    )
                )
            else:
                verb = "lowered" if er_t < er_b else "raised"
                parts.append(
                    f"{verb} the effective rank of the last layer ({short[last]}) from "
                    f"{text_b} to {text_t} ({100 * change:+.0f} %"
                    + (
                        f", 95 % interval {100 * (ratio['low'] - 1):+.0f} to "
                        f"{100 * (ratio['high'] - 1):+.0f} %)"
                        if known
                        else ")"
                    )
                )
        if not np.isnan(cka).all():
            i = int(np.nanargmin(cka))
            if cka[i] >= 0.99:
                parts.append(
                    f"kept linear CKA ≥ {np.floor(cka[i] * 1000) / 1000:.3f} at every layer"
                )
            else:
                mean = result.derived_interval(
                    name, np.mean, *(("linear_cka", layer) for layer in result.layers)
                )
                parts.append(
                    f"moved most at {short[result.layers[i]]} (linear CKA "
                    f"{_pm(cka[i], result.interval(name, result.layers[i], 'linear_cka'), 3)}, "
                    f"mean over layers {_pm(float(np.nanmean(cka)), mean, 3)})"
                )
        if parts:
            sentences.append(f"{name} " + "; ".join(parts) + ".")
    n = result.probe.get("num_samples")
    tail = f" Measured on {n} probe samples" if n else " Measured"
    tail += f" at {len(result.layers)} layer(s) against {result.base.name}."
    bound = rank_bound(result)
    return " ".join(sentences) + tail + (f" {bound}" if bound else "")


def rank_bound(result: CompareResult) -> str:
    """The ceiling every rank in the report lives under, as a sentence ("" when no rank was
    measured): a rank of n centred rows of d features is at most min(n − 1, d), so 256 probe
    samples of a 384-wide layer cannot show an effective rank above 255 -- a rank near the
    ceiling says the probe is too small to tell, not that the layer uses every direction."""
    ranked = any(
        m.startswith(("effective_rank", "numerical_rank", "participation_ratio", "stable_rank"))
        for m in result.metric_names()
    )
    if not ranked:
        return ""
    n = result.probe.get("num_samples")
    tokens = (result.settings or {}).get("pooling") == "tokens"
    if isinstance(n, int) and n > 1 and not tokens:
        return (
            f"Ranks are bounded by min(n − 1, d): with n = {n} probe samples no layer can "
            f"exceed {n - 1}, whatever its width d."
        )
    return "Ranks are bounded by min(n − 1, d) (n rows, d features per layer)."


def _pm(value: float, iv: dict | None, digits: int) -> str:
    """``24.1 ± 2.1`` (half the interval), or the value alone without one (never ``-0.0``)."""
    text = f"{value:.{digits}f}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    if iv and np.isfinite(iv.get("low", np.nan)) and np.isfinite(iv.get("high", np.nan)):
        text += f" ± {(iv['high'] - iv['low']) / 2:.{digits}f}"
    return text
