"""Exact multi-process comparisons on ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Launch with ``torchrun --nproc-per-node N -m repspace compare ...``: each rank captures a
contiguous shard of the probe set (cut on batch boundaries), the streaming statistics
are all-reduced in float64 by their reduction rules (:func:`reduce_accumulator`), the
bounded row sample is merged on rank 0 (:func:`gather_row_sample`), and rank 0 writes
the report.  See ``docs/scaling.md``.
"""

from repspace.distributed.context import DistContext, RankFailedError, batch_shard
from repspace.distributed.reduce import accumulator_layout, reduce_accumulator, reduce_states
from repspace.distributed.sink import gather_row_sample, reduce_sink

__all__ = [
    "DistContext",
    "RankFailedError",
    "accumulator_layout",
    "batch_shard",
    "gather_row_sample",
    "reduce_accumulator",
    "reduce_sink",
    "reduce_states",
]
