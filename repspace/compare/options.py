"""Checks of `repspace compare`'s settings, run before any model is loaded (or, for layer
names, as soon as the layers are known and before the capture): a typo must cost seconds,
not the minutes of a comparison, and must never silently drop a metric or a plot."""
from __future__ import annotations

from collections.abc import Sequence

from repspace.functional.summary import RANKS

__all__ = ["METRIC_NAMES", "check_metrics", "check_settings", "check_layer_choices"]

_CLOSED_FORM = ("linear_cka", "linear_cka_debiased", "procrustes_distance", "frechet_distance",
                "mmd_linear", "subspace_overlap", "cosine_similarity_mean", "cosine_similarity_q50",
                "relative_shift_mean", "relative_shift_q50",
                *(f"{r}_{side}" for r in RANKS for side in ("base", "tuned")))
_SAMPLE = ("rbf_cka", "mmd_rbf", "mutual_knn_overlap", "linear_cka_null")
# Family names select every key they prefix ("effective_rank" -> _base and _tuned,
# "mmd" -> mmd_linear and mmd_rbf: the kernel is always in the key, as in mmd(kernel=...)).
_FAMILIES = (*RANKS, "cosine_similarity", "relative_shift", "mmd")
METRIC_NAMES = (*_CLOSED_FORM, *_SAMPLE, *_FAMILIES)


def check_metrics(metrics: Sequence[str] | None) -> None:
    if metrics is None:
        return
    if isinstance(metrics, str) or not metrics:
        raise ValueError("--metrics: give comma-separated metric names (or leave it out for all); "
                         f"known: {', '.join(METRIC_NAMES)}")
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"--metrics: unknown metric name(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(METRIC_NAMES)}")


def _positive(name: str, value, minimum: int = 1) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}; got {value!r}")


def check_settings(*, num_samples=None, batch_size=32, max_length=64, sample_rows=1000,
                   metrics=None, layers="blocks", dist_timeout=None, tuned_per_pass=None,
                   spectrum_layers=None, dtype="auto") -> None:
    """Every compare setting that can be checked without a model."""
    from repspace.checkpoints.precision import check_dtype

    check_dtype(dtype)
    _positive("--num-samples", num_samples)
    _positive("--batch-size", batch_size)
    _positive("--max-length", max_length)
    _positive("--sample-rows", sample_rows, minimum=0)
    # tuned_per_pass: compare() checks it itself (same message for the API and the CLI)
    check_metrics(metrics)
    if sample_rows == 0 and metrics and any(m in _SAMPLE for m in metrics):
        raise ValueError(f"--sample-rows 0 keeps no rows, but --metrics asks for "
                         f"{', '.join(m for m in metrics if m in _SAMPLE)}, which need them; "
                         "give --sample-rows ≥ 4")
    if dist_timeout is not None and not dist_timeout > 0:
        raise ValueError(f"--dist-timeout must be a positive number of seconds; got {dist_timeout!r}")
    if not layers or (not isinstance(layers, str) and not any(layers)):
        raise ValueError("--layers: give layer names, globs, re:REGEX or a preset (see "
                         "`repspace layers MODEL`)")
    if spectrum_layers is not None and not spectrum_layers:
        raise ValueError("--spectrum-layers: give comma-separated layer names (or leave it out)")


def check_layer_choices(layers: Sequence[str], spectrum_layers=None, embedding_layer=None,
                        embedding: str = "umap") -> None:
    """``--spectrum-layers`` / ``--embedding-layer`` must name captured layers."""
    known = set(layers)
    for option, names in (("--spectrum-layers", spectrum_layers or []),
                          ("--embedding-layer", [embedding_layer] if embedding_layer and
                           embedding != "none" else [])):
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(f"{option}: {', '.join(map(repr, missing))} not among the captured "
                             f"layers ({', '.join(layers[:8])}{', …' if len(layers) > 8 else ''}); "
                             "choose from these (see --layers)")
