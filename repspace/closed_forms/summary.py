"""Every closed-form metric of a :class:`~repspace.statistics.LayerwiseMoments`, per pair.

Keys are the public metric functions' names (debiased variants suffixed ``_debiased``,
per-side spectra suffixed ``_base`` / ``_tuned``), so reports and scripts can rely on them.
"""

from __future__ import annotations

from collections.abc import Collection

from repspace.closed_forms.cca import (
    bases_of_moments,
    cca_from_moments,
    cca_from_rows,
    pwcca_from_moments,
    pwcca_from_rows,
    svcca_from_moments,
    svcca_from_rows,
)
from repspace.closed_forms.centred import CentredRows
from repspace.closed_forms.cka import linear_cka_from_moments
from repspace.closed_forms.drift import (
    frechet_distance_from_moments,
    mmd_linear_from_moments,
    overlap_of_angles,
    principal_angles_from_moments,
    procrustes_distance_from_moments,
)
from repspace.closed_forms.rows import (
    frechet_distance_from_rows,
    linear_cka_from_rows,
    mmd_linear_from_rows,
    principal_angles_from_rows,
    procrustes_distance_from_rows,
    spectrum_of_rows,
)
from repspace.closed_forms.shape import shape_metric_from_moments, shape_metric_from_rows
from repspace.closed_forms.spectrum import (
    effective_rank_of,
    numerical_rank_of,
    participation_ratio_of,
    spectrum_of_centred,
    stable_rank_of,
)

__all__ = ["layerwise_summary", "spectrum_summary", "RANKS"]


RANKS = ("effective_rank", "stable_rank", "numerical_rank", "participation_ratio")


def _rank(name: str, sp) -> float:
    # module names resolved per call (no table of function objects), so patching one in tests works
    if name == "effective_rank":
        return effective_rank_of(sp)
    if name == "stable_rank":
        return stable_rank_of(sp)
    if name == "numerical_rank":
        return float(numerical_rank_of(sp))
    return participation_ratio_of(sp)


def spectrum_summary(sp, ranks: tuple[str, ...] = RANKS) -> dict[str, float]:
    """Ranks (``ranks``, default all four) of one representation's :class:`~repspace.closed_forms.spectrum.Spectrum`."""
    return {name: _rank(name, sp) for name in ranks}


def layerwise_summary(
    acc, top_k: int = 10, metrics: Collection[str] | None = None, progress=None, spectra_cache=None
) -> dict[tuple[str, str], dict[str, float]]:
    """``{(base_layer, tuned_layer): {metric: value}}`` for every pair tracked by ``acc``.

    ``metrics``: keep only the keys starting with one of these names (``"linear_cka"``
    keeps ``linear_cka`` and ``linear_cka_debiased``); ``None``: every key.  Only what the
    kept keys need (centred statistics, cross terms, spectra, drift) is computed.  A pair
    held as rows (:class:`~repspace.closed_forms.centred.CentredRows`) goes through the
    n-dimensional forms of :mod:`repspace.closed_forms.rows`, a pair held as moments through
    the d-dimensional ones: the same numbers.  Each side's centred statistics are dropped
    once its last pair is done, so memory holds one layer's at a time for matched pairs.
    ``progress``: called once per pair (a progress bar's ``update``).  ``spectra_cache``: a
    mapping from a side's accumulator to its :class:`~repspace.closed_forms.spectrum.Spectrum`
    (e.g. a ``weakref.WeakKeyDictionary``), read and filled, so k tuned models against one
    shared base decompose the base once, and callers reuse the spectra for their figures.
    """

    def want(key: str) -> bool:
        if metrics is None:
            return not key.startswith(OPT_IN)
        return any(key.startswith(m) for m in metrics)

    ranks = {side: tuple(r for r in RANKS if want(f"{r}_{side}")) for side in ("base", "tuned")}
    need_cross = any(
        want(k)
        for k in (
            "linear_cka",
            "linear_cka_debiased",
            "procrustes_distance",
            "mmd_linear",
            *CCA_KEYS,
        )
    )
    need_centred = (
        need_cross
        or ranks["base"]
        or ranks["tuned"]
        or want("frechet_distance")
        or want("subspace_overlap")
    )
    cxy = None
    centred: dict[tuple[str, str], object] = {}
    spectra: dict[tuple[str, str], dict[str, float]] = {}
    uses: dict[tuple[str, str], int] = {}
    for b, t in acc.cross:
        uses["base", b] = uses.get(("base", b), 0) + 1
        uses["tuned", t] = uses.get(("tuned", t), 0) + 1

    def centre(side: str, layer: str):
        if (side, layer) not in centred:
            centred[side, layer] = getattr(acc, side)[layer].centred()
        return centred[side, layer]

    def side_ranks(side: str, layer: str) -> dict[str, float]:
        if (side, layer) not in spectra:  # a layer in several pairs: one spectrum
            owner = getattr(acc, side)[layer]
            sp = None if spectra_cache is None else spectra_cache.get(owner)
            if sp is None:
                c = centre(side, layer)
                sp = spectrum_of_rows(c) if isinstance(c, CentredRows) else spectrum_of_centred(c)
                if spectra_cache is not None:
                    spectra_cache[owner] = sp
            spectra[side, layer] = spectrum_summary(sp, ranks[side])
        return spectra[side, layer]

    out = {}
    for (b, t), cross in acc.cross.items():
        row: dict[str, float] = {}
        if need_centred:
            cx, cy = centre("base", b), centre("tuned", t)
            on_rows = isinstance(cx, CentredRows)
            if on_rows:
                row.update(_rows_pair(cx, cy, want, top_k))
            else:
                cxy = cross.centred(acc.base[b], acc.tuned[t]) if need_cross else None
                row.update(_moments_pair(cx, cy, cxy, want, top_k))
            row.update(_cca_family(cx, cy, cxy if not on_rows else None, want))
        for side, layer in (("base", b), ("tuned", t)):
            if ranks[side]:
                row.update({f"{k}_{side}": v for k, v in side_ranks(side, layer).items()})
        drift = acc.drift.get((b, t))
        kept = [
            n
            for n in ("cosine_similarity", "relative_shift")
            if want(f"{n}_mean") or want(f"{n}_q50")
        ]
        if drift is not None and kept:
            d = drift.compute()
            for name in kept:
                for stat in ("mean", "q50"):
                    if want(f"{name}_{stat}"):
                        row[f"{name}_{stat}"] = d[name][stat]
        out[b, t] = dict(sorted(row.items(), key=lambda kv: _ORDER.get(kv[0], len(_ORDER))))
        for key in (("base", b), ("tuned", t)):
            uses[key] -= 1
            if uses[key] == 0:
                centred.pop(key, None)
        if progress is not None:
            progress(1)
    return out


# Opt-in keys (a plain compare does not compute them: `--metrics all` or by name): the CCA
# family needs one eigendecomposition per side on the moments route.
CCA_KEYS = ("cca_mean", "cca_r2", "svcca", "pwcca", "shape_angular")
OPT_IN = ("cca_", "svcca", "pwcca", "shape_")
SHAPE_ALPHA = 0.5  # shape_angular: halfway between CCA (α = 0) and Procrustes (α = 1)


def _cca_family(cx, cy, cxy, want) -> dict[str, float]:
    """Mean CCA, R²_CCA, SVCCA, PWCCA and the angular shape metric (issue 29), when asked;
    one eigendecomposition per side serves all of them on the moments route."""
    wanted = [k for k in CCA_KEYS if want(k)]
    if not wanted:
        return {}
    row: dict[str, float] = {}
    if isinstance(cx, CentredRows):
        if want("cca_mean") or want("cca_r2"):
            res = cca_from_rows(cx, cy)
            row.update({"cca_mean": res.mean, "cca_r2": res.r2})
        if want("svcca"):
            row["svcca"] = svcca_from_rows(cx, cy).mean
        if want("pwcca"):
            row["pwcca"] = pwcca_from_rows(cx, cy).value
        if want("shape_angular"):
            row["shape_angular"] = shape_metric_from_rows(cx, cy, alpha=SHAPE_ALPHA).angular
    else:
        bases = bases_of_moments(cx, cy)
        if want("cca_mean") or want("cca_r2"):
            res = cca_from_moments(cx, cy, cxy, bases=bases)
            row.update({"cca_mean": res.mean, "cca_r2": res.r2})
        if want("svcca"):
            row["svcca"] = svcca_from_moments(cx, cy, cxy, bases=bases).mean
        if want("pwcca"):
            row["pwcca"] = pwcca_from_moments(cx, cy, cxy, bases=bases).value
        if want("shape_angular"):
            row["shape_angular"] = shape_metric_from_moments(
                cx, cy, cxy, alpha=SHAPE_ALPHA, bases=bases
            ).angular
    return {k: v for k, v in row.items() if want(k)}


_ORDER = {
    k: i
    for i, k in enumerate(
        (
            "linear_cka",
            "linear_cka_debiased",
            "procrustes_distance",
            *(f"{r}_{side}" for side in ("base", "tuned") for r in RANKS),
            "frechet_distance",
            "mmd_linear",
            "subspace_overlap",
            *CCA_KEYS,
        )
    )
}


def _moments_pair(cx, cy, cxy, want, top_k: int) -> dict[str, float]:
    row: dict[str, float] = {}
    if want("linear_cka"):
        row["linear_cka"] = linear_cka_from_moments(cx, cy, cxy)
    if want("linear_cka_debiased"):
        row["linear_cka_debiased"] = linear_cka_from_moments(cx, cy, cxy, debiased=True)
    if want("procrustes_distance"):
        row["procrustes_distance"] = procrustes_distance_from_moments(cx, cy, cxy)
    if cx.dim == cy.dim:
        if want("frechet_distance"):
            row["frechet_distance"] = frechet_distance_from_moments(cx, cy)
        if want("mmd_linear"):
            row["mmd_linear"] = mmd_linear_from_moments(cx, cy, cxy)  # paired: same inputs
        if want("subspace_overlap"):
            k = min(top_k, cx.dim, cx.n - 1)
            row["subspace_overlap"] = overlap_of_angles(principal_angles_from_moments(cx, cy, k))
    return row


def _rows_pair(cx, cy, want, top_k: int) -> dict[str, float]:
    row: dict[str, float] = {}
    if want("linear_cka"):
        row["linear_cka"] = linear_cka_from_rows(cx, cy)
    if want("linear_cka_debiased"):
        row["linear_cka_debiased"] = linear_cka_from_rows(cx, cy, debiased=True)
    if want("procrustes_distance"):
        row["procrustes_distance"] = procrustes_distance_from_rows(cx, cy)
    if cx.dim == cy.dim:
        if want("frechet_distance"):
            row["frechet_distance"] = frechet_distance_from_rows(cx, cy)
        if want("mmd_linear"):
            row["mmd_linear"] = mmd_linear_from_rows(cx, cy)
        if want("subspace_overlap"):
            k = min(top_k, cx.dim, cx.n - 1)
            row["subspace_overlap"] = overlap_of_angles(principal_angles_from_rows(cx, cy, k))
    return row
