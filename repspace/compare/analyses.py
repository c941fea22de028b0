"""The PEFT-aware analyses `repspace compare` can add to its report (issue 19), run on the
checkpoints the comparison already loaded and the same probe batches:

- ``adapter_effect`` (``--adapter-effect``): ‖Δh‖/‖h‖ per adapted module and block
  (:mod:`repspace.compare.adapter_effect`);
- ``weight_space`` (``--weight-space``): the ΔW spectrum, ranks and intruder dimensions per
  linear map and block (:mod:`repspace.compare.weights`);
- ``merge_fidelity`` (``--merge-dtype``): per-layer drift of the merged model in each dtype
  against the unmerged one (:mod:`repspace.compare.merge_fidelity`);
- ``layer_matching`` (``--match-layers``): each model's own blocks matched by the cross-layer
  CKA matrix (:mod:`repspace.compare.layer_matching`), for tuned models of another depth.

The per-segment metrics (``--segments``) come from the comparison's own capture pass
(:mod:`repspace.compare.segments`); the permutation null is a metric
(``--metrics linear_cka_null``).  Everything lands in ``result.analyses`` as plain JSON-able
dicts, rendered by :mod:`repspace.report.analyses`.  An analysis that does not apply to a
checkpoint (adapter effect of a full fine-tune, merge of prompt tuning) records
``{"note": why}`` for it instead of failing the comparison.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["ANALYSES", "needs_separate_base", "run_analyses"]

ANALYSES = ("adapter_effect", "weight_space", "merge_fidelity", "layer_matching")


def needs_separate_base(weight_space: bool = False, match_layers: bool = False) -> str | None:
    """Why these analyses need the base as a model of its own (None: they do not).  Weight
    space reads the base's linear maps, layer matching captures the base by itself; both
    would see the adapter if the base were the adapter's model."""
    wanted = [flag for flag, on in (("--weight-space", weight_space),
                                    ("--match-layers", match_layers)) if on]
    if wanted:
        return f"{' and '.join(wanted)} read(s) the base model on its own"
    return None


def _jsonable_effect(effect: dict[str, dict]) -> dict[str, dict]:
    return {m: {k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v)
                for k, v in row.items()} for m, row in effect.items()}


def run_analyses(base, tuned: Sequence, names: Sequence[str], batches_fn: Callable, *,
                 adapter_effect: bool = False, weight_space: bool = False,
                 merge_dtypes: Sequence[str] | None = None, match_layers: bool = False,
                 batch_size: int = 32, device: str | None = None, top_k: int = 10,
                 threshold: float = 0.5, progress: bool | None = None) -> dict:
    """``{analysis: {checkpoint name: result or {"note": why not}}}`` for the analyses asked
    for; ``base`` / ``tuned``: :class:`LoadedCheckpoint` objects, ``batches_fn()`` fresh
    probe batches (the comparison's).  ``progress``: a bar over (analysis, checkpoint) and
    the analyses' own batch bars (None: when stderr is a terminal)."""
    import sys

    from tqdm.auto import tqdm

    from repspace.compare.weights import _block_names

    out: dict[str, dict] = {}
    if not (adapter_effect or weight_space or merge_dtypes or match_layers):
        return out
    show = sys.stderr.isatty() if progress is None else progress
    jobs = sum(map(bool, (adapter_effect, weight_space, merge_dtypes, match_layers))) * len(tuned)
    bar = tqdm(total=jobs, desc="analyses", unit="analysis", disable=not show, leave=False)
    try:
        return _run(out, base, tuned, names, batches_fn, bar, show, _block_names(base.model),
                    adapter_effect=adapter_effect, weight_space=weight_space,
                    merge_dtypes=merge_dtypes, match_layers=match_layers, batch_size=batch_size,
                    device=device, top_k=top_k, threshold=threshold)
    finally:
        bar.close()


def _run(out, base, tuned, names, batches_fn, bar, show, blocks, *, adapter_effect, weight_space,
         merge_dtypes, match_layers, batch_size, device, top_k, threshold) -> dict:
    if (weight_space or match_layers) and any(ck.model is base.model for ck in tuned):
        raise ValueError(needs_separate_base(weight_space, match_layers)
                         + "; load the base separately (two_models=True)")
    if adapter_effect:
        from repspace.compare.adapter_effect import adapted_modules
        from repspace.compare.adapter_effect import adapter_effect as measure
        from repspace.compare.weights import WeightSpace, effect_blocks

        res = out["adapter_effect"] = {}
        for name, ck in zip(names, tuned):
            if not adapted_modules(ck.model):
                res[name] = {"note": "no adapter modules (a full fine-tune, merged weights or "
                                     "prompt learning): the adapter's share of each output is "
                                     "not defined"}
                bar.update(1)
                continue
            effect = _jsonable_effect(measure(ck.model, batches_fn(), device=device,
                                              progress=show))
            ws = WeightSpace({}, [], {}, effect=effect)
            res[name] = {"modules": effect, "blocks": effect_blocks(ws, blocks)}
            bar.update(1)
    if weight_space:
        from repspace.compare.weights import weight_space as measure_ws

        res = out["weight_space"] = {}
        for name, ck in zip(names, tuned):
            ws = measure_ws(base.model, ck.model, top_k, threshold)
            res[name] = {"blocks": ws.blocks, "matrices": ws.matrices,
                         "unchanged": len(ws.unchanged), "skipped": ws.skipped,
                         "intruder_dimensions": int(sum(r["intruder_dimensions"]
                                                        for r in ws.matrices.values())),
                         "top_k": top_k, "threshold": threshold}
            bar.update(1)
    if merge_dtypes:
        from repspace.compare.merge_fidelity import can_merge, merge_fidelity

        res = out["merge_fidelity"] = {}
        for name, ck in zip(names, tuned):
            why = can_merge(ck.model)
            if why:
                res[name] = {"note": why}
                bar.update(1)
                continue
            fid = merge_fidelity(ck.model, batches_fn, list(merge_dtypes), batch_size=batch_size,
                                 device=device, progress=show, label=name)
            res[name] = {d: f.as_dict() for d, f in fid.items()}
            bar.update(1)
    if match_layers:
        from repspace.compare.layer_matching import layer_matching

        res = out["layer_matching"] = {}
        for name, ck in zip(names, tuned):
            m = layer_matching(base.model, ck.model, batches_fn, batch_size=batch_size,
                               device=device, progress=show)
            d = m.as_dict()
            d.update(base_layers=list(m.base_names), tuned_layers=list(m.tuned_names),
                     matrix=np.asarray(m.matrix, dtype=np.float64).tolist(),
                     same_depth=len(m.base_names) == len(m.tuned_names),
                     identity=list(m.mapping) == list(range(len(m.tuned_names))))
            res[name] = d
            bar.update(1)
    return out
