"""Reduce streaming accumulators across processes: the public collective of each one.

Every accumulator of :mod:`repspace.statistics` declares how each of its states reduces
(its ``reductions`` table) and implements ``all_reduce(group, device)``; this module only
chooses the device and dispatches, through that public interface.  What the reduction
does, exactly, is documented in :mod:`repspace.statistics.collective` and
:mod:`repspace.statistics.reduce`.
"""

from __future__ import annotations

import torch

from repspace.statistics.base import Accumulator
from repspace.statistics.collective import collective_device, reduce_states
from repspace.statistics.layerwise import LayerwiseMoments

__all__ = ["reduce_states", "reduce_accumulator", "accumulator_layout"]


def accumulator_layout(acc: LayerwiseMoments) -> dict | None:
    """What an accumulator tracks: layer widths, pairs, drift pairs; None before any data."""
    return acc.layout()


def reduce_accumulator(acc: Accumulator, group=None, device: torch.device | str | None = None):
    """All-reduce an accumulator in place; afterwards every rank holds the global statistics.

    ``acc``: any :class:`~repspace.statistics.base.Accumulator` (:class:`LayerwiseMoments`,
    ``PairedMoments``, ``FeatureMoments``, ``PairedDriftStats``).  Ranks that saw no rows take
    part with zero states.  A collective — every rank of ``group`` must call it, with
    accumulators of the same layers.  ``device``: where the collective buffers live (CPU for
    gloo, the rank's GPU for NCCL; default: CPU unless the backend is NCCL).
    """
    if not isinstance(acc, Accumulator):
        raise TypeError(
            f"cannot reduce {type(acc).__name__}; expected LayerwiseMoments, "
            "PairedMoments or FeatureMoments"
        )
    return acc.all_reduce(group, collective_device(group) if device is None else device)
