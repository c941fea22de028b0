"""Streaming sufficient statistics (the layer between capture and metrics).

Accumulators follow torchmetrics' shape: ``update()`` adds a batch, ``merge()`` adds
another accumulator (another shard, process or run), ``compute()`` returns metrics, and
``state_dict()`` exposes the states with their reduction rules.

The accumulators are imported on first use (PEP 562): :mod:`repspace.statistics.routes`
(the rows-or-moments rule, pure arithmetic) is read by ``compare --plan`` without torch.
"""

from __future__ import annotations

from repspace._lazy import lazy_attributes

# name -> module that defines it (loaded on first use)
_LAZY = {
    "CentredCross": "repspace.statistics.moments",
    "CentredFeature": "repspace.statistics.moments",
    "CrossMoments": "repspace.statistics.moments",
    "FeatureMoments": "repspace.statistics.moments",
    "CrossRows": "repspace.statistics.rows",
    "FeatureRows": "repspace.statistics.rows",
    "LayerwiseMoments": "repspace.statistics.layerwise",
    "PairedMoments": "repspace.statistics.layerwise",
    "PairedDriftStats": "repspace.statistics.drift_stats",
}

__all__ = [
    "CentredCross",
    "CentredFeature",
    "CrossMoments",
    "CrossRows",
    "FeatureRows",
    "FeatureMoments",
    "LayerwiseMoments",
    "PairedDriftStats",
    "PairedMoments",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
