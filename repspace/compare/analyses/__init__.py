"""The analyses `repspace compare` can add to its report (issue 19), run on the checkpoints the
comparison already loaded and the same probe batches, each declared in its own module with
the registry (:mod:`repspace.report.analysis_registry`):

- ``adapter_effect`` (``--adapter-effect``): ‖Δh‖/‖h‖ per adapted module and block
  (:mod:`.adapter_effect`);
- ``weight_space`` (``--weight-space``): the ΔW spectrum, ranks and intruder dimensions per
  linear map and block (:mod:`.weight_space`);
- ``merge_fidelity`` (``--merge-dtype``): per-layer drift of the merged model in each dtype
  against the unmerged one (:mod:`.merge_fidelity`);
- ``layer_matching`` (``--match-layers``): each model's own blocks matched by the cross-layer
  CKA matrix (:mod:`.layer_matching`), for tuned models of another depth;
- ``segments`` (``--segments``): computed in the comparison's own capture pass
  (:mod:`.segments`).

The permutation null is a metric (``--metrics linear_cka_null``) with a report section.
Everything lands in ``result.analyses[name]`` as plain JSON-able dicts, ``{checkpoint:
result}``, rendered by :mod:`repspace.report.analyses` (or the analysis's own ``tables`` and
``figures``).  An analysis that does not apply to a checkpoint (adapter effect of a full
fine-tune, merge of prompt tuning) records ``{"note": why}`` for it instead of failing the
comparison.

Importing this package registers the built-in analyses' run side; it imports neither torch
nor numpy (the CLI parser reads the options from the registry).
"""

from __future__ import annotations

# each module registers its analysis (report order: the report side declares ``order``)
import repspace.compare.analyses.segments
import repspace.compare.analyses.adapter_effect
import repspace.compare.analyses.weight_space
import repspace.compare.analyses.merge_fidelity
import repspace.compare.analyses.layer_matching  # noqa: F401
from repspace.report.analysis_registry import AnalysisContext, analyses, wanted_analyses

__all__ = ["ANALYSES", "AnalysisContext", "needs_separate_base", "run_analyses"]

# the built-in analyses that run after the comparison, in report order
ANALYSES = ("adapter_effect", "weight_space", "merge_fidelity", "layer_matching")


def needs_separate_base(*, settings) -> str | None:
    """Why the analyses ``settings`` (a CompareConfig) ask for need the base as a model of
    its own (None: they do not): those declared ``separate_base`` in the registry (weight
    space reads the base's linear maps, layer matching captures the base by itself; both
    would see the adapter if the base were the adapter's model).  The run and both plans
    (``--plan``, fast and loaded) ask here, so a new analysis declares it once."""
    wanted = [a.flags() for a in analyses() if a.separate_base and a.wanted(settings)]
    if wanted:
        return f"{' and '.join(wanted)} read(s) the base model on its own"
    return None


def run_analyses(ctx: AnalysisContext, done=()) -> dict:
    """``{analysis: {checkpoint name: result or {"note": why not}}}`` of every registered
    analysis ``ctx.settings`` ask for, except those in ``done`` (already computed by the
    comparison: layer matching of models of another depth).  ``ctx.progress`` None: a bar
    over (analysis, checkpoint) and the analyses' own bars when stderr is a terminal."""
    import sys

    from tqdm.auto import tqdm

    todo = [a for a in wanted_analyses(ctx.settings) if a.name not in done]
    if not todo:
        return {}
    separate = [a.flags() for a in todo if a.separate_base]
    if separate and any(ck.model is ctx.base.model for ck in ctx.tuned):
        raise ValueError(
            f"{' and '.join(separate)} read(s) the base model on its own; load "
            "the base separately (two_models=True)"
        )
    if ctx.progress is None:
        ctx.progress = sys.stderr.isatty()
    out: dict[str, dict] = {}
    bar = tqdm(
        total=len(todo) * len(ctx.tuned),
        desc="analyses",
        unit="analysis",
        disable=not ctx.progress,
        leave=False,
    )
    try:
        for a in todo:
            res = out[a.name] = {}
            for name, ck in zip(ctx.names, ctx.tuned):
                res[name] = a.run(ctx, name, ck)
                bar.update(1)
        return out
    finally:
        bar.close()
