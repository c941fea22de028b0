"""`repspace compare`: per-layer distortion of tuned checkpoints relative to the base.

The names below are imported on first use (PEP 562): ``repspace compare --plan`` from
configs alone (:mod:`repspace.compare.plan_fast`) runs without importing torch.
"""

from __future__ import annotations

from repspace._lazy import lazy_attributes

# name -> module that defines it (loaded on first use)
_LAZY = {
    "CompareConfig": "repspace.compare.settings",
    "compare": "repspace.compare.api",
    "SAMPLE_METRICS": "repspace.compare.engine",
    "CompareOptions": "repspace.compare.settings",
    "compare_models": "repspace.compare.engine",
    "embed_2d": "repspace.compare.engine",
}

__all__ = [
    "SAMPLE_METRICS",
    "CompareConfig",
    "CompareOptions",
    "compare",
    "compare_models",
    "embed_2d",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
