"""Every closed-form metric of a :class:`~repspace.statistics.LayerwiseMoments`, per pair.

Keys are the public metric functions' names (debiased variants suffixed ``_debiased``,
per-side spectra suffixed ``_base`` / ``_tuned``), so reports and scripts can rely on them.
"""
from __future__ import annotations

import warnings

from repspace.metrics.cka import linear_cka_from_moments
from repspace.metrics.drift import (
    frechet_distance_from_moments,
    mmd_linear_from_moments,
    overlap_of_angles,
    principal_angles_from_moments,
    procrustes_distance_from_moments,
)
from repspace.metrics.spectrum import (
    effective_rank,
    numerical_rank,
    participation_ratio,
    spectrum,
    stable_rank,
)

__all__ = ["layerwise_summary", "spectrum_summary"]


def spectrum_summary(sp) -> dict[str, float]:
    """Ranks of one representation's :class:`~repspace.metrics.Spectrum`."""
    return {
        "effective_rank": effective_rank(sp),
        "stable_rank": stable_rank(sp),
        "numerical_rank": float(numerical_rank(sp)),
        "participation_ratio": participation_ratio(sp),
    }


def layerwise_summary(acc, top_k: int = 10) -> dict[tuple[str, str], dict[str, float]]:
    centred_b = {k: v.centred() for k, v in acc.base.items()}
    centred_t = {k: v.centred() for k, v in acc.tuned.items()}
    spec_b = {k: spectrum_summary(spectrum(v)) for k, v in centred_b.items()}
    spec_t = {k: spectrum_summary(spectrum(v)) for k, v in centred_t.items()}
    out = {}
    for (b, t), cross in acc.cross.items():
        cx, cy = centred_b[b], centred_t[t]
        cxy = cross.centred(acc.base[b], acc.tuned[t])
        row = {
            "linear_cka": linear_cka_from_moments(cx, cy, cxy),
            "linear_cka_debiased": linear_cka_from_moments(cx, cy, cxy, debiased=True),
            "procrustes_distance": procrustes_distance_from_moments(cx, cy, cxy),
        }
        row.update({f"{k}_base": v for k, v in spec_b[b].items()})
        row.update({f"{k}_tuned": v for k, v in spec_t[t].items()})
        if cx.dim == cy.dim:
            row["frechet_distance"] = frechet_distance_from_moments(cx, cy)
            row["mmd"] = mmd_linear_from_moments(cx, cy, cxy)  # paired: same inputs
            k = min(top_k, cx.dim, cx.n - 1)
            row["subspace_overlap"] = overlap_of_angles(principal_angles_from_moments(cx, cy, k))
        drift = acc.drift.get((b, t))
        if drift is not None:
            d = drift.compute()
            for name in ("cosine_similarity", "relative_shift"):
                row[f"{name}_mean"] = d[name]["mean"]
                row[f"{name}_q50"] = d[name]["q50"]
        out[b, t] = row
    return out
