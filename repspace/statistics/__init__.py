"""Streaming sufficient statistics (the layer between capture and metrics).

Accumulators follow torchmetrics' shape: ``update()`` adds a batch, ``merge()`` adds
another accumulator (another shard, process or run), ``compute()`` returns metrics, and
``state_dict()`` exposes the states with their reduction rules.
"""
from repspace.statistics.drift_stats import PairedDriftStats
from repspace.statistics.layerwise import LayerwiseMoments, PairedMoments
from repspace.statistics.moments import CentredCross, CentredFeature, CrossMoments, FeatureMoments
from repspace.statistics.rows import CrossRows, FeatureRows

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
