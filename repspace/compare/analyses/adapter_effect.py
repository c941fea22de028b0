"""``adapter_effect`` (``--adapter-effect``): where a PEFT adapter acts, ‖Δh‖/‖h‖ per adapted
module and block (:mod:`repspace.compare.adapter_effect`).  A checkpoint without adapter
modules (a full fine-tune, merged weights, prompt learning) records ``{"note": why}``.
Its report side: :mod:`repspace.report.analyses`.
"""

from __future__ import annotations

from repspace.report.analysis_registry import AnalysisContext, Option, declare_analysis

NO_ADAPTER = (
    "no adapter modules (a full fine-tune, merged weights or prompt learning): the "
    "adapter's share of each output is not defined"
)


def _jsonable(effect: dict[str, dict]) -> dict[str, dict]:
    import numpy as np

    return {
        m: {
            k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v)
            for k, v in row.items()
        }
        for m, row in effect.items()
    }


def run(ctx: AnalysisContext, name: str, ck) -> dict:
    """‖Δh‖/‖h‖ per adapted module of ``ck`` and per block of the base."""
    from repspace.compare.adapter_effect import adapted_modules, adapter_effect
    from repspace.compare.weights import WeightSpace, _block_names, effect_blocks

    if not adapted_modules(ck.model):
        return {"note": NO_ADAPTER}
    effect = _jsonable(
        adapter_effect(ck.model, ctx.batches_fn(), device=ctx.device, progress=ctx.progress)
    )
    ws = WeightSpace({}, [], {}, effect=effect)
    return {"modules": effect, "blocks": effect_blocks(ws, _block_names(ctx.base.model))}


declare_analysis(
    "adapter_effect",
    run=run,
    options=(
        Option(
            "--adapter-effect",
            field="adapter_effect",
            help="also where the adapter acts: ‖Δh‖/‖h‖ per adapted module and block (PEFT "
            "adapters), in the report",
        ),
    ),
)
