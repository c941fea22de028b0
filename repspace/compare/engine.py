"""`repspace compare`: how far each tuned checkpoint moved the base's representations.

One pass over the probe batches: each batch runs through the base once and through
every tuned checkpoint (k + 1 forwards per batch for k checkpoints, not 2k); hidden
states of the chosen layers are pooled and streamed into one pair of exact sufficient
statistics per tuned checkpoint (float64, ``precision="float64"`` GEMMs by default: a
comparison is bound by the forward passes, not by the statistics), plus a bounded
paired row sample for the sample-based metrics.  Memory is constant in the number of
samples: per batch rows, plus k accumulators.  Only the metrics asked for (``metrics``)
are computed.  The result is a :class:`~repspace.report.CompareResult`.
"""

from __future__ import annotations

import contextlib
import math
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from repspace._heap import trim_heap
from repspace._profile import stage
from repspace._validation import RepspaceWarning
from repspace.capture.model_view import resolving_views_once
from repspace.capture.task_heads import shared_layers
from repspace.capture.runner import (
    AdapterDisabled,
    capture_sides,
    check_distinct,
    inactive_adapter_warning,
)
from repspace.checkpoints import LoadedCheckpoint
from repspace.compare.options import check_layer_choices
from repspace.compare.settings import CompareOptions
from repspace.compare.sink import CompareSink, FanOutSink
from repspace.closed_forms.jackknife import (
    DEFAULT_BLOCKS,
    LEVEL,
    default_blocks,
    jackknife_interval,
)
from repspace.metrics import mmd, mutual_knn_overlap, rbf_cka
from repspace.metrics.spectrum import spectrum
from repspace.report.result import CheckpointInfo, CompareResult

__all__ = [
    "compare_models",
    "CompareOptions",
    "SAMPLE_METRICS",
    "embed_2d",
    "checkpoint_info",
    "step",
]

SAMPLE_METRICS = ("rbf_cka", "mmd_rbf", "mutual_knn_overlap")
# --metrics linear_cka_null: permutations of the row sample per layer.  The p-value cannot be
# below 1/(B + 1): 999 resolves p = 0.001, and the resolution is reported beside p.
NULL_PERMUTATIONS = 999


@dataclass
class _Captured:
    """What the metrics pass leaves for the result: layer order, per-checkpoint metrics,
    spectra and the row samples (for the 2-D embedding)."""

    layers: list[str] = field(default_factory=list)
    metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    spectra: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    samples_base: dict[str, torch.Tensor] = field(default_factory=dict)
    samples_tuned: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    statistics: dict[str, dict[str, dict]] = field(default_factory=dict)
    # jackknife: {checkpoint: {layer: {metric: replicates}}} and their intervals
    replicates: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)
    intervals: dict[str, dict[str, dict[str, dict]]] = field(default_factory=dict)
    blocks: int = 0
    # side accumulator -> Spectrum: a shared base is decomposed once for all checkpoints
    spectra_cache: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary)


def checkpoint_info(ck: LoadedCheckpoint, name: str) -> CheckpointInfo:
    return CheckpointInfo(
        name=name,
        spec=ck.spec,
        kind=ck.kind,
        sha256=ck.sha256,
        base=ck.base,
        notes=list(ck.notes),
        manifest=ck.manifest,
    )


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}-{seen[n]}")
    return out


def _sample_metrics(
    x: torch.Tensor, y: torch.Tensor, wanted: set[str], seed: int, where: str = ""
) -> dict:
    """The sample-based measures of one layer pair.  A measure undefined on this sample is
    NaN, and the reason its code warned with is recorded once, naming ``where`` (the layer
    and checkpoint): a NaN in the report always comes with its why."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _sample_measures(x, y, wanted, seed)
    seen = set()
    for w in caught:
        if not issubclass(w.category, (RepspaceWarning, RuntimeWarning)):
            continue  # libraries' deprecation chatter: not about these numbers
        text = f"{where}: {w.message}" if where else str(w.message)
        if text not in seen:
            seen.add(text)
            warnings.warn(text, w.category, stacklevel=2)
    return out


def _sample_measures(x: torch.Tensor, y: torch.Tensor, wanted: set[str], seed: int) -> dict:
    out: dict[str, float] = {}
    if x.shape[0] < 4:
        return out
    if "rbf_cka" in wanted:
        out["rbf_cka"] = rbf_cka(x, y, seed=seed)
    if "mmd_rbf" in wanted and x.shape[1] == y.shape[1]:
        try:
            out["mmd_rbf"] = mmd(x, y, kernel="rbf", paired=True, seed=seed).mmd2
        except ValueError as exc:  # all rows identical: no bandwidth
            warnings.warn(
                f"mmd_rbf is undefined on this row sample: {exc}", RepspaceWarning, stacklevel=2
            )
            out["mmd_rbf"] = math.nan
    if "linear_cka_null" in wanted:  # opt-in only: not in SAMPLE_METRICS (B products)
        from repspace.metrics.permutation import cka_permutation_test

        null = cka_permutation_test(x, y, n_permutations=NULL_PERMUTATIONS, seed=seed)
        out["linear_cka_null_p"], out["linear_cka_null_z"] = null.p_value, null.z_score
        out["linear_cka_null_resolution"] = 1.0 / (NULL_PERMUTATIONS + 1)
    if "mutual_knn_overlap" in wanted and x.shape[0] > 10:
        try:
            out["mutual_knn_overlap"] = mutual_knn_overlap(x, y, k=10)
        except ValueError as exc:  # zero rows under the cosine metric
            warnings.warn(
                f"mutual_knn_overlap is undefined on this row sample: {exc}",
                RepspaceWarning,
                stacklevel=2,
            )
            out["mutual_knn_overlap"] = math.nan
    out.update(_extra_sample_metrics(x, y, wanted, seed))
    return out


def _extra_sample_metrics(x: torch.Tensor, y: torch.Tensor, wanted: set[str], seed: int) -> dict:
    """The opt-in sample-based measures of issue 29 (``--metrics all`` or by name), on the
    same seeded row sample; a measure the sample cannot support is NaN (its warning says why)."""
    from repspace.metrics import energy, intrinsic, neighbors, rsa

    jobs = {
        "rsa_spearman": lambda: rsa.rsa(x, y, distance="correlation", method="spearman").value,
        "cknna": lambda: neighbors.cknna(x, y, k=10),
        "jaccard_knn": lambda: neighbors.jaccard_knn(x, y, k=10),
        **intrinsic.report_jobs(x, y),  # TwoNN and MLE: base, tuned, ratio tuned / base
        "energy_distance": lambda: energy.energy_distance(x, y, paired=True, seed=seed).energy,
    }
    out = {}
    for key, job in jobs.items():
        if key not in wanted or (key == "energy_distance" and x.shape[1] != y.shape[1]):
            continue
        try:
            out[key] = float(job())
        except ValueError as exc:  # too few rows, duplicates, zero rows: undefined here
            warnings.warn(
                f"{key} is undefined on this row sample: {exc}", RepspaceWarning, stacklevel=2
            )
            out[key] = math.nan
    return out


def embed_2d(points: dict[str, np.ndarray], method: str = "umap", seed: int = 0):
    """Joint 2-D embedding of several point sets; returns ``(method_used, {name: (m, 2)})``."""
    names = list(points)
    stacked = np.vstack([points[n] for n in names]).astype(np.float64)
    used = method
    coords = None
    if method == "umap" and stacked.shape[0] >= 20:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import umap

                coords = umap.UMAP(
                    n_components=2, random_state=seed, n_neighbors=15, init="random"
                ).fit_transform(stacked)
        except Exception:  # noqa: BLE001 - UMAP is optional polish; PCA is the fallback
            coords = None
    if coords is None:
        if method == "umap":  # never silently: the figure and report say PCA, and why
            why = (
                "UMAP needs at least 20 points"
                if stacked.shape[0] < 20
                else "umap-learn is not installed or failed"
            )
            warnings.warn(
                f"--embedding umap: {why}; the 2-D embedding uses PCA instead",
                RepspaceWarning,
                stacklevel=2,
            )
        used = "pca"
        centred = stacked - stacked.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        coords = centred @ vt[:2].T
        if coords.shape[1] < 2:
            coords = np.hstack([coords, np.zeros((coords.shape[0], 2 - coords.shape[1]))])
    out, start = {}, 0
    for n in names:
        out[n] = coords[start : start + points[n].shape[0]]
        start += points[n].shape[0]
    return used, out


def _default_spectrum_layers(layers: list[str]) -> list[str]:
    picks = sorted({0, len(layers) // 2, len(layers) - 1})
    return [layers[i] for i in picks]


def step(ctx, phase: str):
    """``ctx.step(phase)`` in a distributed run (failures agreed on by all ranks), else a no-op."""
    return ctx.step(phase) if ctx is not None else contextlib.nullcontext()


def _side_groups(models: Sequence[torch.nn.Module], max_size: int | None = None) -> list[list[int]]:
    """Indices of ``models`` split into groups captured in one pass each (≤ ``max_size``).

    Two models sharing a module (the same checkpoint passed twice, adapters wrapping one
    module tree) cannot be captured in one pass: each one's hooks would fire in the other's
    forward.  Such models go to separate groups; each group costs one more base forward
    per batch, so the usual case (separately loaded checkpoints) is a single group.
    """
    groups: list[list[int]] = []
    owned: list[set[int]] = []
    for i, model in enumerate(models):
        mods = {id(m) for m in model.modules()}
        for group, seen in zip(groups, owned):
            if (max_size is None or len(group) < max_size) and seen.isdisjoint(mods):
                group.append(i)
                seen |= mods
                break
        else:
            groups.append([i])
            owned.append(mods)
    return groups


def _capture_all(
    base,
    pairs,
    batches_fn,
    sinks,
    settings: CompareOptions,
    *,
    progress: bool,
    layer_check=None,
    segments=None,
) -> None:
    """Feed ``sinks[name]`` with (base, tuned) rows for every ``(name, ck)`` of ``pairs``.

    The base runs once per batch for each group of :func:`_side_groups` (once in total
    unless tuned models share modules or ``tuned_per_pass`` splits them), every tuned
    model once per batch.  ``segments`` (a :class:`~repspace.compare.segments.SegmentCollector`)
    also receives every layer's states, the base's from the first pass only.
    """
    layers = settings.layers
    shared = [name for name, ck in pairs if ck.model is base.model]
    if shared:  # the base is the tuned PEFT model with its adapter disabled (shared_base)
        from repspace.compare.shared_base import disabled_base_reason

        why = disabled_base_reason(base.model)
        if why is not None:
            check_distinct(
                base.model,
                base.model,
                f"base and tuned checkpoint {shared[0]!r} ({why}, so disabling the "
                "adapter does not give the base)",
            )
    for name, ck in pairs:
        if ck.model is not base.model:
            check_distinct(base.model, ck.model, f"base and tuned checkpoint {name!r}")
        try:
            shared_layers(base.model, [ck.model], layers, warn=False)
        except ValueError as exc:  # with several checkpoints, say which one lacks the layer
            raise ValueError(f"tuned checkpoint {name!r} ({ck.spec}): {exc}") from None
    # A bare backbone and its task-head variants are compared on the backbone they share.
    base_model, tuned_models, names = shared_layers(
        base.model, [ck.model for _, ck in pairs], layers
    )
    if layer_check is not None and names:
        layer_check(names)  # --spectrum-layers / --embedding-layer: before the capture
    for g, group in enumerate(_side_groups(tuned_models, settings.tuned_per_pass)):
        # The runner compares sides "base" and "tuned" itself when there are just two.
        sides = {"tuned" if j == 0 else f"tuned:{j}": (i, pairs[i]) for j, i in enumerate(group)}
        fan = FanOutSink(
            {side: sinks[name] for side, (_, (name, _)) in sides.items()},
            labels={side: f"tuned checkpoint {name!r}" for side, (_, (name, _)) in sides.items()},
        )
        side_base = AdapterDisabled(base_model, base.model) if shared else base_model
        models = {"base": side_base, **{side: tuned_models[i] for side, (i, _) in sides.items()}}
        tap = (
            None
            if segments is None
            else _segment_tap(
                segments,
                {"base": "base", **{side: name for side, (_, (name, _)) in sides.items()}},
                first=g == 0,
            )
        )
        capture_sides(
            models,
            batches_fn(),
            names,
            pooling=settings.pooling,
            sink=fan,
            batch_size=settings.batch_size,
            device=settings.device,
            progress=progress,
            early_stop=True,
            task_id=settings.task_id,
            tap=tap,
        )
        for side, (_, (name, ck)) in sides.items():
            same = fan.identical[side]
            if same and all(same.values()):
                warnings.warn(
                    inactive_adapter_warning(
                        f"tuned checkpoint {name!r} ({type(ck.model).__name__})", len(same)
                    ),
                    stacklevel=3,
                )


def _segment_tap(segments, owner: dict[str, str], first: bool):
    """``capture_sides``'s tap feeding ``segments`` under checkpoint names (``owner``: side ->
    name); the base only in the first pass (later passes repeat the same base states)."""

    def tap(side, *args):
        if side != "base" or first:
            segments(owner[side], *args)

    return tap


def _capture(
    base, pairs, batches_fn, sinks, ctx, settings: CompareOptions, **capture_kwargs
) -> None:
    """Capture this rank's shard for every tuned checkpoint; distributed: combine the ranks'."""
    label = ", ".join(name for name, _ in pairs)
    with step(ctx, f"capture of {label}"):
        _capture_all(base, pairs, batches_fn, sinks, settings, **capture_kwargs)
    if ctx is not None:
        from repspace.distributed import gather_row_sample, reduce_sink

        with ctx.collective(f"reduction of {label}"):
            for name, _ in pairs:
                reduce_sink(sinks[name], ctx.group, ctx.device)
                gather_row_sample(sinks[name], ctx.group)


def _checkpoint_metrics(
    sink, name, base_name, settings: CompareOptions, captured: _Captured
) -> tuple[dict, list[str]]:
    """Per-layer metrics of one tuned checkpoint from its (reduced) sink; its spectra and row
    samples go into ``captured``."""
    wanted, seed, spectrum_layers = settings.wanted, settings.seed, settings.spectrum_layers
    spectra, samples_base, samples_tuned = (
        captured.spectra,
        captured.samples_base,
        captured.samples_tuned,
    )
    accs = list(sink.accumulators.values()) or [sink.acc]
    rows: dict[str, dict[str, float]] = {}
    layer_order = [layer for acc in accs for layer in acc.layers]
    has_sample = set(sink.sampled_layers)
    sampled = [layer for layer in layer_order if layer in has_sample]
    # the rows the 2-D embedding draws are kept for the result; every other layer's sample
    # is read, used and dropped one layer at a time
    embedded = (
        settings.embedding_layer or (layer_order[-1] if layer_order else None)
        if settings.embedding != "none"
        else None
    )
    chosen = list(spectrum_layers) if spectrum_layers else _default_spectrum_layers(layer_order)
    # intervals (jackknife replicates) are a pass of their own over the layers: the bar counts
    # them, since at n in the thousands they cost more than the point estimates
    total = (
        sum(len(acc.cross) for acc in accs)
        + len(sampled)
        + sum(acc.replicated_pairs(b) for acc in accs if (b := default_blocks(acc.n)) >= 2)
    )
    with tqdm(
        total=total,
        unit="layer",
        desc=f"metrics {name}",
        disable=not settings.progress,
        leave=False,
    ) as bar:
        for acc in accs:
            captured.statistics.setdefault(name, {}).update(_statistics_record(acc))
            rows.update(
                {
                    b: r
                    for (b, _), r in acc.compute(
                        metrics=wanted or None,
                        progress=bar.update,
                        spectra_cache=captured.spectra_cache,
                    ).items()
                }
            )
            blocks = default_blocks(acc.n)
            if blocks >= 2:
                for (b, _), reps in acc.replicates(
                    blocks, metrics=wanted or None, progress=bar.update
                ).items():
                    captured.replicates.setdefault(name, {})[b] = reps
                    captured.intervals.setdefault(name, {})[b] = {
                        k: jackknife_interval(rows[b][k], r).to_dict()
                        for k, r in reps.items()
                        if k in rows[b]
                    }
                captured.blocks = blocks
        for layer in sampled:
            _, x, y = sink.sample(layer)
            rows[layer].update(
                _sample_metrics(
                    x, y, wanted or set(SAMPLE_METRICS), seed, where=f"{name}, layer {layer}"
                )
            )
            if layer == embedded:
                samples_base.setdefault(layer, x)
                samples_tuned.setdefault(name, {})[layer] = y
            del x, y
            bar.update(1)
    for acc in accs:
        for layer in acc.layers:
            if layer in chosen:  # decomposed once: the ranks' spectra, or now
                for who, side in ((base_name, acc.base[layer]), (name, acc.tuned[layer])):
                    sp = captured.spectra_cache.get(side)
                    if sp is None:
                        sp = captured.spectra_cache[side] = spectrum(side)
                    spectra.setdefault(who, {})[layer] = sp.singular_values
    # No filtering left to do: acc.compute(metrics=...) keeps only the wanted closed-form keys
    # and _sample_metrics computes only the wanted sample metrics.
    return rows, layer_order


def _statistics_record(acc) -> dict[str, dict]:
    """Per layer: the route its statistics took (rows or moments) and the bytes they held."""
    held = acc.statistics_bytes()
    return {
        unit.name: {"route": acc.unit_route(unit), "bytes": held[unit.name]} for unit in acc.units
    }


def statistics_summary(per_checkpoint: dict[str, dict[str, dict]]) -> dict:
    """What a report records about the statistics: the route of every layer (the same for
    every checkpoint unless their widths differ: then per checkpoint) and the bytes held."""
    routes = {
        name: {layer: r["route"] for layer, r in layers.items()}
        for name, layers in per_checkpoint.items()
    }
    distinct = {tuple(sorted(r.items())) for r in routes.values()}
    return {
        "routes": next(iter(routes.values())) if len(distinct) == 1 else routes,
        "bytes": int(
            sum(r["bytes"] for layers in per_checkpoint.values() for r in layers.values())
        ),
    }


def _needs_sample(settings: CompareOptions) -> bool:
    """Whether anything reads the row sample: a sample-based metric or the 2-D embedding
    (a big model's 1000 sampled rows per layer cost as much as a small probe's rows)."""
    wanted = settings.wanted
    from repspace.metrics.registry import REGISTRY

    return (
        settings.embedding != "none"
        or wanted is None
        or any(REGISTRY[m].kind == "sample" for m in wanted if m in REGISTRY)
    )


def _check_task_id_used(task_id, checkpoints) -> None:
    """``--task-id`` feeds task-conditioned adapters only; given where none is, it would be
    recorded in the report as if it had chosen a task: refused before the capture."""
    from repspace.capture.tokens import task_ids_needed

    if any(task_ids_needed(ck.model, task_id) is not None for ck in checkpoints):
        return
    raise ValueError(
        f"--task-id {task_id}: none of the compared models is a task-conditioned "
        "adapter (peft multitask prompt tuning or Poly), so no task is chosen; drop "
        "--task-id"
    )


@resolving_views_once  # one model view per model for the whole comparison
def compare_models(
    base: LoadedCheckpoint,
    tuned: Sequence[LoadedCheckpoint],
    batches_fn,
    settings: CompareOptions | None = None,
    *,
    probe_info: dict | None = None,
    names: Sequence[str] | None = None,
    dist=None,
    row_offset: int = 0,
    **options,
) -> CompareResult:
    """Compare loaded checkpoints; ``batches_fn()`` yields fresh input batches each call.

    ``settings`` (:class:`CompareOptions`), or its fields as keyword ``options`` (both:
    the options override the settings).  ``names``: report names of the tuned checkpoints;
    ``probe_info``: what the report says about the probe.

    All tuned checkpoints are captured in one pass over the batches: each batch runs
    through the base once and through every tuned model (k + 1 forwards, not 2k).  That
    holds k checkpoints' statistics at once (24·L·d² bytes each, docs/scaling.md);
    ``tuned_per_pass=N`` caps it at N per pass, at the cost of one base forward per batch
    and pass (⌈k / N⌉ passes).  Results are the same either way, bit for bit.

    Distributed (``dist``: a :class:`~repspace.distributed.DistContext`): ``batches_fn``
    yields this rank's shard and ``row_offset`` is the global number of its first sample;
    the statistics are all-reduced, the row sample is merged on rank 0, rank 0 computes
    the metrics and every rank returns the same result.  A failure on any rank raises
    ``ValueError("rank K failed during <phase>: …")`` on every rank.

    ``segments``: also the metrics over image, text and virtual tokens separately, from the
    same forward passes (:mod:`repspace.compare.segments`), in ``result.analyses["segments"]``.
    """
    if settings is None:
        settings = CompareOptions.from_options(**options)
    elif options:
        CompareOptions.from_options(**options)  # the names are checked: one-line error
        settings = replace(settings, **options)
    if settings.task_id is not None:
        _check_task_id_used(settings.task_id, [base, *tuned])
    if settings.segments and dist is not None:
        raise ValueError("--segments runs in one process; launch it without torchrun")
    collector = None
    if settings.segments:
        from repspace.compare.segments import SegmentCollector

        collector = SegmentCollector()
    tuned_names = _unique_names(list(names) if names else [t.name for t in tuned])
    main = dist is None or dist.is_main
    if settings.pooling == "tokens" and dist is not None:
        row_offset = dist.rank << 40  # token rows: disjoint key domains per rank (docs/scaling.md)
    captured = _Captured()
    sinks = {
        name: CompareSink(
            max_rows=settings.sample_rows if _needs_sample(settings) else 0,
            seed=settings.seed,
            blocks=DEFAULT_BLOCKS,
            precision=settings.precision,
            row_offset=row_offset,
        )
        for name in tuned_names
    }

    def layer_check(names):
        check_layer_choices(
            names, settings.spectrum_layers, settings.embedding_layer, settings.embedding
        )

    _capture(
        base,
        list(zip(tuned_names, tuned)),
        batches_fn,
        sinks,
        dist,
        settings,
        progress=settings.progress and main,
        layer_check=layer_check,
        segments=collector,
    )
    for name in tqdm(
        tuned_names,
        desc="metrics",
        unit="checkpoint",
        disable=not settings.progress or len(tuned) < 2 or not main,
    ):
        sink = sinks.pop(name)  # freed once its metrics are out
        with step(dist, f"metrics of {name}"), stage("metrics"):
            if main:
                captured.metrics[name], order = _checkpoint_metrics(
                    sink, name, base.name, settings, captured
                )
                captured.layers = captured.layers or order
        del sink
        trim_heap()  # the checkpoint's statistics are gone: return their pages before the next
    result = None
    with step(dist, "the report"), stage("metrics"):  # the 2-D embedding and the result
        if main:
            result = _result(base, tuned, tuned_names, captured, settings, probe_info, dist)
    if result is not None and settings.task_id is not None:
        result.settings["task_id"] = settings.task_id
    if result is not None and collector is not None:
        from repspace.compare.segments import segment_metrics

        with stage("metrics"):
            result.analyses["segments"] = {
                name: segment_metrics(collector, "base", name, result.layers)
                for name in tuned_names
            }
        result.settings["segments"] = True
    return result if dist is None else dist.broadcast_object(result, "sending the result")


def _result(
    base,
    tuned,
    tuned_names,
    captured: _Captured,
    settings: CompareOptions,
    probe_info: dict | None,
    dist,
) -> CompareResult:
    emb = None
    layers_out, samples_base, samples_tuned = (
        captured.layers,
        captured.samples_base,
        captured.samples_tuned,
    )
    embedding, embedding_layer = settings.embedding, settings.embedding_layer
    if embedding != "none" and layers_out:
        layer = embedding_layer or layers_out[-1]
        if layer not in samples_base:
            raise ValueError(
                f"--embedding-layer {layer!r} was not captured; choose one of "
                f"{', '.join(layers_out)}"
            )
        pts = {base.name: samples_base[layer].numpy()}
        pts.update(
            {
                n: samples_tuned[n][layer].numpy()
                for n in tuned_names
                if samples_tuned.get(n, {}).get(layer) is not None
                and samples_tuned[n][layer].shape[1] == pts[base.name].shape[1]
            }
        )
        method, coords = embed_2d(pts, embedding, seed=settings.seed)
        emb = {"layer": layer, "method": method, "points": coords}
    report_settings = settings.report_dict()
    if captured.statistics:
        report_settings["statistics"] = statistics_summary(captured.statistics)
    if captured.intervals:
        report_settings["intervals"] = {
            "method": "jackknife",
            "blocks": captured.blocks,
            "level": LEVEL,
            "blocking": "row i in block i mod B (rows route: the "
            "last n mod B rows in every replicate; "
            "moments route: per-block moments)",
        }
    _warn_missing_intervals(captured)
    if dist is not None:
        report_settings["distributed"] = {"world_size": dist.world_size, "backend": dist.backend}
    return CompareResult(
        base=checkpoint_info(base, base.name),
        tuned=[checkpoint_info(t, n) for n, t in zip(tuned_names, tuned)],
        layers=layers_out,
        metrics=captured.metrics,
        settings=report_settings,
        probe=probe_info or {},
        spectra=captured.spectra,
        embedding=emb,
        intervals=captured.intervals,
        replicates=captured.replicates,
        differences=paired_differences(captured.metrics, captured.replicates, tuned_names),
    )


def _warn_missing_intervals(captured: _Captured) -> None:
    """Layers held as moments have no per-block statistics: say which, once."""
    missing = sorted(
        {
            layer
            for name, per in captured.statistics.items()
            for layer, rec in per.items()
            if layer not in captured.intervals.get(name, {})
        }
    )
    if missing:
        warnings.warn(
            f"no intervals for {len(missing)} layer(s) ({', '.join(missing[:3])}"
            f"{', …' if len(missing) > 3 else ''}): they are too wide for per-block moments "
            "(repspace.statistics.blocks) and either held as moments (n past their rows' "
            "break-even) or held as rows too many for the n × n jackknife (n above both the "
            "width and 1448: repspace.closed_forms.jackknife.grams_affordable), or the run was "
            "distributed; their numbers are point estimates",
            RepspaceWarning,
            stacklevel=3,
        )


def paired_differences(metrics: dict, replicates: dict, names: Sequence[str]) -> dict:
    """``{"A − B": {layer: {metric: {estimate, se, low, high}}}}`` for every pair of tuned
    checkpoints: the jackknife over the same blocks of the same rows, so the interval of a
    difference is paired (it is narrower than the two intervals side by side)."""
    out: dict = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            per = {}
            for layer, reps_a in replicates.get(a, {}).items():
                reps_b = replicates.get(b, {}).get(layer, {})
                cells = {}
                for k, ra in reps_a.items():
                    if k in reps_b and k in metrics[a][layer] and k in metrics[b][layer]:
                        est = metrics[a][layer][k] - metrics[b][layer][k]
                        iv = jackknife_interval(est, ra - reps_b[k])
                        cells[k] = {"estimate": est, **iv.to_dict()}
                if cells:
                    per[layer] = cells
            if per:
                out[f"{a} − {b}"] = per
    return out
