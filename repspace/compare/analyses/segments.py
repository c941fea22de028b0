"""``segments`` (``--segments``): the metrics over image tokens, text tokens and the tuned side's
virtual tokens separately (:mod:`repspace.compare.segments`).

It has no ``run``: the comparison's own capture pass computes it (the engine option
``CompareOptions.segments``, :func:`repspace.compare.engine.compare_models`), which refuses
it under torchrun itself.  Declared here for its command-line option; its report side:
:mod:`repspace.report.analyses`.
"""

from __future__ import annotations

from repspace.report.analysis_registry import Option, declare_analysis

declare_analysis(
    "segments",
    options=(
        Option(
            "--segments",
            field="segments",
            help="also the metrics over image tokens, text tokens and (tuned side) virtual tokens "
            "separately, from the same capture pass (multimodal and prompt-learning models); "
            "shown in the report",
        ),
    ),
)
