"""``weight_space`` (``--weight-space``): the ΔW spectrum, ranks and intruder dimensions per
linear map and block (:mod:`repspace.compare.weights`), beside the representation's rank.

It reads the base's linear maps, so the base must be a model of its own
(``separate_base``).  Its report side: :mod:`repspace.report.analyses`.
"""

from __future__ import annotations

from repspace.report.analysis_registry import AnalysisContext, Option, declare_analysis

# compare's intruder-dimension settings: the top 10 singular vectors of W_tuned, intruders
# below |cos| 0.5 to every base vector (`repspace weights` lets the user choose them)
TOP_K = 10
THRESHOLD = 0.5


def run(ctx: AnalysisContext, name: str, ck) -> dict:
    """ΔW per changed linear map and block of ``ck`` against the base."""
    from repspace.compare.weights import weight_space

    ws = weight_space(ctx.base.model, ck.model, TOP_K, THRESHOLD)
    return {
        "blocks": ws.blocks,
        "matrices": ws.matrices,
        "unchanged": len(ws.unchanged),
        "skipped": ws.skipped,
        "intruder_dimensions": int(sum(r["intruder_dimensions"] for r in ws.matrices.values())),
        "top_k": TOP_K,
        "threshold": THRESHOLD,
    }


declare_analysis(
    "weight_space",
    run=run,
    separate_base=True,
    options=(
        Option(
            "--weight-space",
            field="weight_space",
            help="also the ΔW spectrum, effective rank and intruder dimensions per linear map and "
            "block beside the representation's rank (loads the base separately)",
        ),
    ),
)
