"""Checks of `repspace compare`'s settings, run before any model is loaded (or, for layer
names, as soon as the layers are known and before the capture): a typo must cost seconds,
not the minutes of a comparison, and must never silently drop a metric or a plot."""
from __future__ import annotations

from collections.abc import Sequence

from repspace.metrics.registry import PREFIXES, REGISTRY, expand

__all__ = ["METRIC_NAMES", "check_metrics", "check_settings", "check_layer_choices",
           "check_seed", "MAX_SEED"]

_SAMPLE = tuple(m.name for m in REGISTRY.values() if m.kind == "sample")
# Family names select every key they prefix ("effective_rank" -> _base and _tuned,
# "mmd" -> mmd_linear and mmd_rbf: the kernel is always in the key, as in mmd(kernel=...)).
_FAMILIES = PREFIXES
METRIC_NAMES = ("all", "default", *REGISTRY, *_FAMILIES)


def check_metrics(metrics: Sequence[str] | None) -> None:
    """Names, prefixes, ``all`` (every registered metric) and ``default`` (what a plain
    compare computes), in any mix: ``all,linear_cka_null``; see :mod:`repspace.metrics.registry`."""
    if metrics is None:
        return
    if isinstance(metrics, str) or not metrics:
        raise ValueError("--metrics: give comma-separated metric names, 'all' or 'default' (or "
                         f"leave it out for the defaults); known: {', '.join(METRIC_NAMES)}")
    expand(list(metrics))  # unknown names: one line naming them and the known ones


def _positive(name: str, value, minimum: int = 1) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}; got {value!r}")


MAX_SEED = 2**32 - 1  # numpy's RandomState (UMAP's random_state) takes no more


def check_seed(seed, option: str = "--seed") -> None:
    """A seed every generator repspace hands it to accepts (torch, numpy, UMAP)."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{option} must be an integer from 0 to {MAX_SEED}; got {seed!r}")


def check_settings(*, num_samples=None, batch_size=32, max_length=64, sample_rows=1000,
                   metrics=None, layers="blocks", dist_timeout=None, tuned_per_pass=None,
                   spectrum_layers=None, dtype="auto", seed=None, device=None,
                   device_map=None) -> None:
    """Every compare setting that can be checked without a model."""
    from repspace.checkpoints.precision import check_dtype

    check_dtype(dtype)
    check_seed(seed)
    if device_map is not None or device not in (None, "cpu"):  # torch: not for the CPU
        from repspace.devices import check_device_map, resolve_device

        check_device_map(device_map)
        if device_map is None:
            resolve_device(device, "--device")  # not there, or the meta device: before loading
    _positive("--num-samples", num_samples)
    _positive("--batch-size", batch_size)
    _positive("--max-length", max_length)
    _positive("--sample-rows", sample_rows, minimum=0)
    # tuned_per_pass: compare() checks it itself (same message for the API and the CLI)
    check_metrics(metrics)
    if sample_rows == 0 and metrics and any(m in _SAMPLE for m in expand(list(metrics))):
        raise ValueError(f"--sample-rows 0 keeps no rows, but --metrics asks for "
                         f"{', '.join(m for m in expand(list(metrics)) if m in _SAMPLE)}, which "
                         "need them; give --sample-rows ≥ 4")
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
