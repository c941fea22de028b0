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
import functools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from repspace._profile import stage
from repspace.capture.backbone import shared_layers
from repspace.capture.runner import (AdapterDisabled, capture_sides, check_distinct,
                                     inactive_adapter_warning)
from repspace.checkpoints import LoadedCheckpoint, load_checkpoint, preflight_checkpoints
from repspace.training import runs as _runs  # noqa: F401 - registers the run-folder loaders
from repspace.compare.options import check_layer_choices, check_settings
from repspace.compare.sink import CompareSink, FanOutSink
from repspace.metrics import mmd, mutual_knn_overlap, rbf_cka
from repspace.metrics.spectrum import spectrum
from repspace.probe import ProbeSet, load_probe, make_batches, model_modalities
from repspace.probe.processors import choose_processor
from repspace.report.result import CheckpointInfo, CompareResult

__all__ = ["compare", "compare_models", "SAMPLE_METRICS", "embed_2d"]

SAMPLE_METRICS = ("rbf_cka", "mmd_rbf", "mutual_knn_overlap")
NULL_PERMUTATIONS = 200  # --metrics linear_cka_null: permutations of the row sample per layer


def _info(ck: LoadedCheckpoint, name: str) -> CheckpointInfo:
    return CheckpointInfo(name=name, spec=ck.spec, kind=ck.kind, sha256=ck.sha256, base=ck.base,
                          notes=list(ck.notes), manifest=ck.manifest)


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}-{seen[n]}")
    return out


def _sample_metrics(x: torch.Tensor, y: torch.Tensor, wanted: set[str], seed: int) -> dict:
    out: dict[str, float] = {}
    if x.shape[0] < 4:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined values are NaN; the report shows them
        if "rbf_cka" in wanted:
            out["rbf_cka"] = rbf_cka(x, y, seed=seed)
        if "mmd_rbf" in wanted and x.shape[1] == y.shape[1]:
            try:
                out["mmd_rbf"] = mmd(x, y, kernel="rbf", paired=True, seed=seed).mmd2
            except ValueError:  # all rows identical: no bandwidth
                out["mmd_rbf"] = math.nan
        if "linear_cka_null" in wanted:  # opt-in only: not in SAMPLE_METRICS (B products)
            from repspace.metrics.permutation import cka_permutation_test

            null = cka_permutation_test(x, y, n_permutations=NULL_PERMUTATIONS, seed=seed)
            out["linear_cka_null_p"], out["linear_cka_null_z"] = null.p_value, null.z_score
        if "mutual_knn_overlap" in wanted and x.shape[0] > 10:
            try:
                out["mutual_knn_overlap"] = mutual_knn_overlap(x, y, k=10)
            except ValueError:  # zero rows under the cosine metric
                out["mutual_knn_overlap"] = math.nan
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

                coords = umap.UMAP(n_components=2, random_state=seed, n_neighbors=15,
                                   init="random").fit_transform(stacked)
        except Exception:  # noqa: BLE001 - UMAP is optional polish; PCA is the fallback
            coords = None
    if coords is None:
        used = "pca"
        centred = stacked - stacked.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        coords = centred @ vt[:2].T
        if coords.shape[1] < 2:
            coords = np.hstack([coords, np.zeros((coords.shape[0], 2 - coords.shape[1]))])
    out, start = {}, 0
    for n in names:
        out[n] = coords[start:start + points[n].shape[0]]
        start += points[n].shape[0]
    return used, out


def _default_spectrum_layers(layers: list[str]) -> list[str]:
    picks = sorted({0, len(layers) // 2, len(layers) - 1})
    return [layers[i] for i in picks]


def _step(ctx, phase: str):
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


def _capture_all(base, pairs, batches_fn, sinks, *, layers, pooling, batch_size, device,
                 progress, tuned_per_pass=None, layer_check=None, task_id=None,
                 segments=None) -> None:
    """Feed ``sinks[name]`` with (base, tuned) rows for every ``(name, ck)`` of ``pairs``.

    The base runs once per batch for each group of :func:`_side_groups` (once in total
    unless tuned models share modules or ``tuned_per_pass`` splits them), every tuned
    model once per batch.  ``segments`` (a :class:`~repspace.compare.segments.SegmentCollector`)
    also receives every layer's states, the base's from the first pass only.
    """
    shared = [name for name, ck in pairs if ck.model is base.model]
    if shared:  # the base is the tuned PEFT model with its adapter disabled (shared_base)
        from repspace.compare.shared_base import disabled_base_reason

        why = disabled_base_reason(base.model)
        if why is not None:
            check_distinct(base.model, base.model,
                           f"base and tuned checkpoint {shared[0]!r} ({why}, so disabling the "
                           "adapter does not give the base)")
    for name, ck in pairs:
        if ck.model is not base.model:
            check_distinct(base.model, ck.model, f"base and tuned checkpoint {name!r}")
        try:
            shared_layers(base.model, [ck.model], layers, warn=False)
        except ValueError as exc:  # with several checkpoints, say which one lacks the layer
            raise ValueError(f"tuned checkpoint {name!r} ({ck.spec}): {exc}") from None
    # A bare backbone and its task-head variants are compared on the backbone they share.
    base_model, tuned_models, names = shared_layers(base.model, [ck.model for _, ck in pairs],
                                                    layers)
    if layer_check is not None and names:
        layer_check(names)  # --spectrum-layers / --embedding-layer: before the capture
    for g, group in enumerate(_side_groups(tuned_models, tuned_per_pass)):
        # The runner compares sides "base" and "tuned" itself when there are just two.
        sides = {"tuned" if j == 0 else f"tuned:{j}": (i, pairs[i]) for j, i in enumerate(group)}
        fan = FanOutSink({side: sinks[name] for side, (_, (name, _)) in sides.items()},
                         labels={side: f"tuned checkpoint {name!r}"
                                 for side, (_, (name, _)) in sides.items()})
        side_base = AdapterDisabled(base_model, base.model) if shared else base_model
        models = {"base": side_base, **{side: tuned_models[i] for side, (i, _) in sides.items()}}
        tap = None if segments is None else _segment_tap(
            segments, {"base": "base", **{side: name for side, (_, (name, _)) in sides.items()}},
            first=g == 0)
        capture_sides(models, batches_fn(), names, pooling=pooling, sink=fan,
                      batch_size=batch_size, device=device, progress=progress, early_stop=True,
                      task_id=task_id, tap=tap)
        for side, (_, (name, ck)) in sides.items():
            same = fan.identical[side]
            if same and all(same.values()):
                warnings.warn(inactive_adapter_warning(
                    f"tuned checkpoint {name!r} ({type(ck.model).__name__})", len(same)), stacklevel=3)


def _segment_tap(segments, owner: dict[str, str], first: bool):
    """``capture_sides``'s tap feeding ``segments`` under checkpoint names (``owner``: side ->
    name); the base only in the first pass (later passes repeat the same base states)."""
    def tap(side, *args):
        if side != "base" or first:
            segments(owner[side], *args)
    return tap


def _capture(base, pairs, batches_fn, sinks, ctx, **capture_kwargs) -> None:
    """Capture this rank's shard for every tuned checkpoint; distributed: combine the ranks'."""
    label = ", ".join(name for name, _ in pairs)
    with _step(ctx, f"capture of {label}"):
        _capture_all(base, pairs, batches_fn, sinks, **capture_kwargs)
    if ctx is not None:
        from repspace.distributed import gather_row_sample, reduce_sink

        with ctx.collective(f"reduction of {label}"):
            for name, _ in pairs:
                reduce_sink(sinks[name], ctx.group, ctx.device)
                gather_row_sample(sinks[name], ctx.group)


def _checkpoint_metrics(sink, name, base_name, wanted, seed, spectrum_layers, spectra,
                        samples_base, samples_tuned) -> tuple[dict, list[str]]:
    """Per-layer metrics of one tuned checkpoint from its (reduced) sink."""
    accs = list(sink.accumulators.values()) or [sink.acc]
    rows: dict[str, dict[str, float]] = {}
    for acc in accs:
        rows.update({b: r for (b, _), r in acc.compute(metrics=wanted or None).items()})
    layer_order = [layer for acc in accs for layer in acc.layers]
    chosen = list(spectrum_layers) if spectrum_layers else _default_spectrum_layers(layer_order)
    for layer in layer_order:
        x, y = sink.samples["base"].get(layer), sink.samples["tuned"].get(layer)
        if x is not None:
            rows[layer].update(_sample_metrics(x, y, wanted or set(SAMPLE_METRICS), seed))
            samples_base.setdefault(layer, x)
            samples_tuned.setdefault(name, {})[layer] = y
    for acc in accs:
        for layer in acc.layers:
            if layer in chosen:
                spectra.setdefault(base_name, {})[layer] = spectrum(acc.base[layer]).singular_values
                spectra.setdefault(name, {})[layer] = spectrum(acc.tuned[layer]).singular_values
    # No filtering left to do: acc.compute(metrics=...) keeps only the wanted closed-form keys
    # and _sample_metrics computes only the wanted sample metrics.
    return rows, layer_order


def _check_tuned_per_pass(value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"tuned_per_pass must be a positive integer or None (all tuned "
                         f"checkpoints in one pass); got {value!r}")


def compare_models(base: LoadedCheckpoint, tuned: Sequence[LoadedCheckpoint], batches_fn, *,
                   layers="blocks", pooling: str = "mean", metrics: Sequence[str] | None = None,
                   batch_size: int = 32, device: str | None = None, seed: int = 0,
                   precision: str = "float64", sample_rows: int = 1000,
                   spectrum_layers: Sequence[str] | None = None, embedding: str = "umap",
                   embedding_layer: str | None = None, progress: bool = True,
                   probe_info: dict | None = None, names: Sequence[str] | None = None,
                   dist=None, row_offset: int = 0,
                   tuned_per_pass: int | None = None, task_id: int | None = None,
                   segments: bool = False) -> CompareResult:
    """Compare loaded checkpoints; ``batches_fn()`` yields fresh input batches each call.

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
    _check_tuned_per_pass(tuned_per_pass)
    if segments and dist is not None:
        raise ValueError("--segments runs in one process; launch it without torchrun")
    collector = None
    if segments:
        from repspace.compare.segments import SegmentCollector

        collector = SegmentCollector()
    wanted = set(metrics) if metrics else None
    tuned_names = _unique_names(list(names) if names else [t.name for t in tuned])
    main = dist is None or dist.is_main
    if pooling == "tokens" and dist is not None:
        row_offset = dist.rank << 40  # token rows: disjoint key domains per rank (docs/scaling.md)
    all_layers: list[str] | None = None
    per_tuned: dict[str, dict[str, dict[str, float]]] = {}
    spectra: dict[str, dict[str, np.ndarray]] = {}
    samples_base: dict[str, torch.Tensor] = {}
    samples_tuned: dict[str, dict[str, torch.Tensor]] = {}
    sinks = {name: CompareSink(max_rows=sample_rows, seed=seed, precision=precision,
                               row_offset=row_offset) for name in tuned_names}

    def layer_check(names):
        check_layer_choices(names, spectrum_layers, embedding_layer, embedding)

    _capture(base, list(zip(tuned_names, tuned)), batches_fn, sinks, dist, layers=layers,
             pooling=pooling, batch_size=batch_size, device=device, progress=progress and main,
             tuned_per_pass=tuned_per_pass, layer_check=layer_check, task_id=task_id,
             segments=collector)
    for name in tqdm(tuned_names, desc="metrics", unit="checkpoint",
                     disable=not progress or len(tuned) < 2 or not main):
        sink = sinks.pop(name)  # freed once its metrics are out
        with _step(dist, f"metrics of {name}"), stage("metrics"):
            if main:
                per_tuned[name], order = _checkpoint_metrics(
                    sink, name, base.name, wanted, seed, spectrum_layers, spectra,
                    samples_base, samples_tuned)
                all_layers = all_layers or order
        del sink
    result = None
    with _step(dist, "the report"), stage("metrics"):  # the 2-D embedding and the result
        if main:
            result = _result(base, tuned, tuned_names, all_layers or [], per_tuned, spectra,
                             samples_base, samples_tuned, layers=layers, pooling=pooling,
                             wanted=wanted, batch_size=batch_size, device=device, seed=seed,
                             precision=precision, sample_rows=sample_rows, embedding=embedding,
                             embedding_layer=embedding_layer, probe_info=probe_info, dist=dist)
    if result is not None and task_id is not None:
        result.settings["task_id"] = task_id
    if result is not None and collector is not None:
        from repspace.compare.segments import segment_metrics

        with stage("metrics"):
            result.analyses["segments"] = {name: segment_metrics(collector, "base", name,
                                                                 result.layers)
                                           for name in tuned_names}
        result.settings["segments"] = True
    return result if dist is None else dist.broadcast_object(result, "sending the result")


def _result(base, tuned, tuned_names, layers_out, per_tuned, spectra, samples_base,
            samples_tuned, *, layers, pooling, wanted, batch_size, device, seed, precision,
            sample_rows, embedding, embedding_layer, probe_info, dist) -> CompareResult:
    emb = None
    if embedding != "none" and layers_out:
        layer = embedding_layer or layers_out[-1]
        if layer not in samples_base:
            raise ValueError(f"--embedding-layer {layer!r} was not captured; choose one of "
                             f"{', '.join(layers_out)}")
        pts = {base.name: samples_base[layer].numpy()}
        pts.update({n: samples_tuned[n][layer].numpy() for n in tuned_names
                    if samples_tuned.get(n, {}).get(layer) is not None
                    and samples_tuned[n][layer].shape[1] == pts[base.name].shape[1]})
        method, coords = embed_2d(pts, embedding, seed=seed)
        emb = {"layer": layer, "method": method, "points": coords}
    settings = {"layers": layers if isinstance(layers, str) else list(layers), "pooling": pooling,
                "metrics": sorted(wanted) if wanted else "all", "batch_size": batch_size,
                "device": device or "cpu", "seed": seed, "precision": precision,
                "sample_rows": sample_rows, "embedding": embedding}
    if dist is not None:
        settings["distributed"] = {"world_size": dist.world_size, "backend": dist.backend}
    return CompareResult(base=_info(base, base.name), tuned=[_info(t, n) for n, t in
                                                            zip(tuned_names, tuned)],
                         layers=layers_out, metrics=per_tuned, settings=settings,
                         probe=probe_info or {}, spectra=spectra, embedding=emb)


def _depth_differs(base, tuned, layers) -> bool:
    """True when ``layers`` does not name the same layers in the base and every tuned model
    (e.g. a block-expanded model): ``--match-layers`` then pairs layers by matching."""
    try:
        shared_layers(base.model, [t.model for t in tuned], layers, warn=False)
    except ValueError:
        return True
    return False


def _compare_matched(base, tuned, batches_fn, probe_info, *, batch_size, seed, layers="blocks",
                     pooling="mean", metrics=None, device=None, progress=True, names=None,
                     precision="float64", **_ignored) -> CompareResult:
    """The comparison of one tuned checkpoint of another depth, layer pairs matched by
    cross-layer CKA (:mod:`repspace.compare.matched`)."""
    from repspace.compare.matched import compare_matched

    if len(tuned) != 1:
        raise ValueError(f"--match-layers with models of different depth compares one tuned "
                         f"checkpoint at a time; got {len(tuned)}")
    name = (list(names) if names else [tuned[0].name])[0]
    wanted = set(metrics) if metrics else None
    per_layer, order, info = compare_matched(base, tuned[0], name, batches_fn, layers=layers,
                                             pooling=pooling, batch_size=batch_size,
                                             device=device, metrics=wanted, progress=progress)
    settings = {"layers": layers if isinstance(layers, str) else list(layers), "pooling": pooling,
                "metrics": sorted(wanted) if wanted else "all", "batch_size": batch_size,
                "device": device or "cpu", "seed": seed, "precision": "float64",
                "layer_pairing": "matched by cross-layer CKA (--match-layers: the models differ "
                                 "in depth); each tuned layer against its matched base layer"}
    return CompareResult(base=_info(base, base.name), tuned=[_info(tuned[0], name)],
                         layers=order, metrics={name: per_layer}, settings=settings,
                         probe=probe_info or {}, analyses={"layer_matching": {name: info}})


def _shard(probe_set: ProbeSet, rows: range) -> ProbeSet | None:
    """The samples ``rows`` of a probe set (None when empty)."""
    return probe_set.select(rows) if len(rows) else None


# Library housekeeping (deprecations) says nothing about the numbers: not put in reports.
_UNREPORTED = (DeprecationWarning, PendingDeprecationWarning, FutureWarning, ImportWarning,
               ResourceWarning)


def _recording_warnings(fn):
    """Run ``fn`` recording its warnings into ``result.warnings`` (each once); they are
    re-issued afterwards, so they still reach the terminal and warning filters."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        caught: list = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = fn(*args, **kwargs)
        finally:
            unique = {(w.category, str(w.message)): w for w in caught}
            for w in unique.values():
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        texts = [f"{cat.__name__}: {' '.join(msg.split())}" for cat, msg in unique
                 if not issubclass(cat, _UNREPORTED)]
        if result is not None:
            result.warnings = list(dict.fromkeys([*result.warnings, *texts]))
        return result
    return wrapper


@_recording_warnings
def compare(base: str, tuned: Sequence[str], *, probe: str = "builtin",
            num_samples: int | None = 512, base_override: str | None = None,
            config: str | None = None, strict: bool = True, max_length: int = 64,
            batch_size: int = 32, seed: int = 0, device_map: str | dict | None = None,
            dtype: str | None = None,
            distributed: bool | None = None, dist_timeout: float | None = None,
            two_models: bool = False, adapter_effect: bool = False, weight_space: bool = False,
            merge_dtypes: Sequence[str] | None = None, match_layers: bool = False,
            **kwargs) -> CompareResult:
    """Load ``base`` and every ``tuned`` checkpoint, then :func:`compare_models`.

    ``tuned`` checkpoints that are adapters or bare weights are applied onto ``base``
    (or onto ``base_override`` when given).  See :func:`compare_models` for the rest.

    ``device_map`` (e.g. ``"auto"``): load the models with accelerate's big-model
    dispatch (layers spread over the available GPUs, then CPU); the models then stay
    where accelerate put them (``device`` is ignored).  ``dtype``: weights dtype
    (``"bfloat16"``, ``"float16"``; default float32).  ``distributed``: ``None`` (auto:
    a running ``torch.distributed`` group or torchrun's ``WORLD_SIZE > 1``), ``True`` or
    ``False``; each rank captures a contiguous shard of the probe set, cut on batch
    boundaries, so the statistics equal one process's to float64 rounding and the row
    sample is the same rows.  ``dist_timeout``: seconds a collective waits for a peer.

    One PEFT adapter on its own base: the base is captured from the adapter's model with
    the adapter disabled (one model in memory, identical numbers;
    :mod:`repspace.compare.shared_base`); ``two_models=True``, or anything that makes
    disabling differ from the base, loads the base separately.  ``settings["base_capture"]``
    records which, and why.

    ``adapter_effect``, ``weight_space``, ``merge_dtypes`` (e.g. ``["bfloat16"]``),
    ``match_layers``: the PEFT-aware analyses of :mod:`repspace.compare.analyses`, on the
    same checkpoints and probe batches, in ``result.analyses`` (one process only).
    """
    from repspace.compare.analyses import needs_separate_base, run_analyses

    if merge_dtypes is not None:
        from repspace.compare.merge_fidelity import parse_merge_dtypes

        merge_dtypes = parse_merge_dtypes(",".join(merge_dtypes))  # before loading anything
    if not tuned:
        raise ValueError("give at least one tuned checkpoint to compare with the base")
    _check_tuned_per_pass(kwargs.get("tuned_per_pass"))  # before minutes of loading
    check_settings(num_samples=num_samples, batch_size=batch_size, max_length=max_length,
                   sample_rows=kwargs.get("sample_rows", 1000), metrics=kwargs.get("metrics"),
                   layers=kwargs.get("layers", "blocks"), dist_timeout=dist_timeout,
                   spectrum_layers=kwargs.get("spectrum_layers"))
    preflight_checkpoints([base, *tuned, base_override, config])
    ctx = None
    if distributed is not False:
        from repspace.distributed import DistContext

        ctx = DistContext.from_env(kwargs.get("device"), dist_timeout)
        if ctx is None and distributed:
            raise ValueError("distributed=True but no process group is running and WORLD_SIZE "
                             "is not set; launch with torchrun --nproc-per-node N")
        if ctx is not None and (adapter_effect or weight_space or merge_dtypes or match_layers):
            ctx.close(barrier=False)
            raise ValueError("--adapter-effect, --weight-space, --merge-dtype and --match-layers "
                             "run in one process; launch them without torchrun")
    finished = False
    try:
        if ctx is not None:
            kwargs["device"] = ctx.compute_device(kwargs.get("device"))
        if device_map is not None:
            kwargs["device"] = None  # accelerate placed the layers; moving would break its hooks
        torch.manual_seed(seed)
        with _step(ctx, "loading"), stage("load"):
            load = dict(config=config, device_map=device_map,
                        dtype=getattr(torch, dtype) if dtype else None)
            probe_set = load_probe(probe, num_samples=num_samples, seed=seed)  # cheap: first
            if len(probe_set) < 4 and kwargs.get("pooling", "mean") != "tokens":
                raise ValueError(f"probe data {probe_set.source}: {len(probe_set)} sample(s); the "
                                 "metrics need at least 4 — use more probe samples")
            from repspace.compare.shared_base import (disabled_base_reason, plan_reason,
                                                      shared_base_checkpoint)

            why = plan_reason(base, tuned, base_override=base_override, config=config,
                              two_models=two_models) or needs_separate_base(weight_space,
                                                                            match_layers)
            if why is None:  # one model: the tuned adapter's, base read with it disabled
                tuned_cks = [load_checkpoint(tuned[0], base=base, strict=strict, **load)]
                why = disabled_base_reason(tuned_cks[0].model)
                base_ck = (shared_base_checkpoint(base, tuned_cks[0]) if why is None
                           else load_checkpoint(base, strict=strict, **load))
            else:
                base_ck = load_checkpoint(base, strict=strict, **load)
                tuned_cks = [load_checkpoint(t, base=base_override or base, strict=strict, **load)
                             for t in tuned]
            base_capture = ({"mode": "adapter_disabled"} if why is None else
                            {"mode": "separate", "reason": why})
            rows = ctx.shard(len(probe_set), batch_size) if ctx else range(len(probe_set))
            local = _shard(probe_set, rows)
            # The base's tokenizer/processor unless it is unusable (e.g. an empty vocabulary).
            processor = choose_processor(
                [(base_ck.spec, base_ck.processor), *((t.spec, t.processor) for t in tuned_cks)],
                model_modalities(base_ck.model), probe_set.texts)

            def batches():
                if local is None:
                    return iter(())
                return make_batches(local, base_ck.model, processor, batch_size=batch_size,
                                    max_length=max_length)

            if local is not None:
                next(iter(batches()))  # fail early on unusable probe data, before any capture
        matched = match_layers and _depth_differs(base_ck, tuned_cks,
                                                  kwargs.get("layers", "blocks"))
        if matched:  # another depth: compare the layer pairs matched by cross-layer CKA
            result = _compare_matched(base_ck, tuned_cks, batches, probe_set.describe(),
                                      batch_size=batch_size, seed=seed, **kwargs)
        else:
            result = compare_models(base_ck, tuned_cks, batches, batch_size=batch_size, seed=seed,
                                    probe_info=probe_set.describe(), dist=ctx,
                                    row_offset=rows.start, **kwargs)
        result.settings["base_capture"] = base_capture
        with stage("metrics"):
            result.analyses.update(run_analyses(
                base_ck, tuned_cks, result.tuned_names, batches, adapter_effect=adapter_effect,
                weight_space=weight_space, merge_dtypes=merge_dtypes,
                match_layers=match_layers and not matched,
                batch_size=batch_size, device=kwargs.get("device")))
        if device_map is not None:
            result.settings["device_map"] = device_map
        if dtype is not None:
            result.settings["dtype"] = dtype
        result.settings["max_length"] = max_length  # it changes text features, so the numbers
        # What else decides the numbers, by content: the architecture file of bare weights and
        # the model adapters were applied onto instead of BASE.
        for key, spec in (("config", config), ("base_override", base_override)):
            if spec is not None:
                from repspace.checkpoints import checkpoint_sha256, resolve_spec

                result.settings[key] = {"spec": spec, "sha256": checkpoint_sha256(resolve_spec(spec))}
        finished = True
        return result
    finally:
        if ctx is not None:
            # after a success every rank is here: wait for all before tearing the group down
            # (a rank that destroys it while a peer still talks to it aborts inside gloo)
            ctx.close(barrier=finished)
