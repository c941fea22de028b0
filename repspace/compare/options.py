"""Checks of `repspace compare` beyond its settings class (:mod:`repspace.compare.settings`
checks every field when made): the machine (devices, placement) before any model loads,
and layer names as soon as the layers are known, before the capture.  A typo must cost
seconds, not the minutes of a comparison, and must never silently drop a metric or a plot."""

from __future__ import annotations

from collections.abc import Sequence

from repspace.compare.settings import MAX_SEED, CompareOptions
from repspace.metrics.registry import PREFIXES, REGISTRY

__all__ = [
    "METRIC_NAMES",
    "check_metrics",
    "check_placement",
    "check_layer_choices",
    "check_seed",
    "MAX_SEED",
]

# Family names select every key they prefix ("effective_rank" -> _base and _tuned,
# "mmd" -> mmd_linear and mmd_rbf: the kernel is always in the key, as in mmd(kernel=...)).
_FAMILIES = PREFIXES
METRIC_NAMES = ("all", "default", *REGISTRY, *_FAMILIES)


def check_metrics(metrics: Sequence[str] | None) -> None:
    """Names, prefixes, ``all`` (every registered metric) and ``default`` (what a plain
    compare computes), in any mix: ``all,linear_cka_null``; see :mod:`repspace.metrics.registry`.
    The settings class's own check (:class:`CompareOptions`), for a caller holding a bare list:
    one rule, one message."""
    if metrics is not None:
        CompareOptions(metrics=metrics)


def check_seed(seed, option: str = "--seed") -> None:
    """A seed every generator repspace hands it to accepts (torch, numpy, UMAP)."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{option} must be an integer from 0 to {MAX_SEED}; got {seed!r}")


def check_placement(device, device_map, *, placed: bool = False) -> None:
    """What the settings cannot know alone, before minutes of loading: a ``device_map``
    accelerate can place, and a ``device`` that is on this machine (not the meta device).
    ``placed``: bitsandbytes puts the layers itself, so ``device`` is not used."""
    if device_map is None and (placed or device in (None, "cpu")):
        return  # the CPU is always there: no torch import for `compare --plan`
    from repspace.devices import check_device_map, resolve_device

    check_device_map(device_map)
    if device_map is None:
        resolve_device(device, "--device")


def check_layer_choices(
    layers: Sequence[str], spectrum_layers=None, embedding_layer=None, embedding: str = "umap"
) -> None:
    """``--spectrum-layers`` / ``--embedding-layer`` must name captured layers."""
    known = set(layers)
    for option, names in (
        ("--spectrum-layers", spectrum_layers or []),
        ("--embedding-layer", [embedding_layer] if embedding_layer and embedding != "none" else []),
    ):
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(
                f"{option}: {', '.join(map(repr, missing))} not among the captured "
                f"layers ({', '.join(layers[:8])}{', …' if len(layers) > 8 else ''}); "
                "choose from these (see --layers)"
            )
