"""``merge_fidelity`` (``--merge-dtype DTYPES``): per-layer drift of the adapter merged in each
dtype against the unmerged model (:mod:`repspace.compare.merge_fidelity`).  A checkpoint that
cannot be merged records ``{"note": why}``.  Its report side: :mod:`repspace.report.analyses`.
"""

from __future__ import annotations

from repspace.report.analysis_registry import AnalysisContext, Option, declare_analysis


def _dtypes(text: str) -> list[str]:
    """``"bfloat16, float16"`` -> the names (the settings check them)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def run(ctx: AnalysisContext, name: str, ck) -> dict:
    """``{dtype: drift and matrix errors}`` of ``ck`` merged in each of the settings' dtypes."""
    from repspace.compare.merge_fidelity import can_merge, merge_fidelity

    why = can_merge(ck.model)
    if why:
        return {"note": why}
    fid = merge_fidelity(
        ck.model,
        ctx.batches_fn,
        list(ctx.settings.merge_dtypes),
        batch_size=ctx.settings.batch_size,
        device=ctx.device,
        progress=ctx.progress,
        label=name,
    )
    return {d: f.as_dict() for d, f in fid.items()}


declare_analysis(
    "merge_fidelity",
    run=run,
    options=(
        Option(
            "--merge-dtype",
            field="merge_dtypes",
            metavar="DTYPES",
            parse=_dtypes,
            help="also merge fidelity: per-layer drift of the adapter merged in each of these dtypes "
            "(comma-separated: float32, float16, bfloat16) against the unmerged model",
        ),
    ),
)
