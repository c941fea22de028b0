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

import functools
import warnings
from collections.abc import Sequence

import torch

from repspace._profile import stage
from repspace.capture.backbone import shared_layers
from repspace.checkpoints import load_checkpoint, preflight_checkpoints
from repspace.compare.analyses import needs_separate_base, run_analyses
from repspace.compare.engine import check_tuned_per_pass, checkpoint_info, compare_models, step
from repspace.compare.options import check_settings
from repspace.probe import ProbeSet, load_probe, make_batches, model_modalities
from repspace.probe.processors import choose_processor
from repspace.report.result import CompareResult
from repspace.training import runs as _runs  # noqa: F401 - registers the run-folder loaders

__all__ = ["compare"]


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
    return CompareResult(base=checkpoint_info(base, base.name), tuned=[checkpoint_info(tuned[0], name)],
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
    if merge_dtypes is not None:
        from repspace.compare.merge_fidelity import parse_merge_dtypes

        merge_dtypes = parse_merge_dtypes(",".join(merge_dtypes))  # before loading anything
    if not tuned:
        raise ValueError("give at least one tuned checkpoint to compare with the base")
    check_tuned_per_pass(kwargs.get("tuned_per_pass"))  # before minutes of loading
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
        with step(ctx, "loading"), stage("load"):
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
