"""``layer_matching`` (``--match-layers``): each model's own blocks matched by the cross-layer
CKA matrix (:mod:`repspace.compare.layer_matching`), for tuned models of another depth.

It captures the base by itself, so the base must be a model of its own (``separate_base``).
With models of another depth the comparison itself pairs the layers by this matching and
records it (:func:`repspace.compare.api.compare`); it is not run twice.  Its report side:
:mod:`repspace.report.analyses`.
"""

from __future__ import annotations

from repspace.report.analysis_registry import AnalysisContext, Option, declare_analysis


def run(ctx: AnalysisContext, name: str, ck) -> dict:
    """The matching of ``ck``'s blocks to the base's, with the CKA matrix behind it."""
    from repspace.compare.layer_matching import layer_matching, matching_record

    m = layer_matching(
        ctx.base.model,
        ck.model,
        ctx.batches_fn,
        batch_size=ctx.settings.batch_size,
        device=ctx.device,
        progress=ctx.progress,
    )
    return matching_record(m)


declare_analysis(
    "layer_matching",
    run=run,
    separate_base=True,
    options=(
        Option(
            "--match-layers",
            field="match_layers",
            help="also match tuned blocks to base blocks by the cross-layer CKA matrix; when the "
            "depths differ (block expansion, layer replication) the per-layer metrics are those "
            "of the matched pairs; loads the base separately",
        ),
    ),
)
