"""Hand the C heap's freed pages back to the system during a long capture (glibc only).

Why: a capture frees a forward pass's activations after every batch while it keeps a few
small tensors per layer (pooled rows, row-sample keys) for the whole run.  glibc raises its
mmap threshold to the size of the largest block freed so far (up to 32 MiB), so after the
first batches the activations come from the heap too, and the small long-lived tensors
that land between them keep the heap's freed pages resident: the process's memory grows
with n although nothing it holds does.  Measured on a 2048-wide, 2-block Llama with an
all-q/v LoRA, n = 3072, 64 tokens (docs/benchmarks.md): peak RSS 1.67-2.40 GB, 1.08 GB with
``malloc_trim(0)`` every half second (the same CPU time), 1.08 GB with a fixed mmap
threshold (``MALLOC_MMAP_THRESHOLD_``).

:class:`HeapTrimmer` calls ``malloc_trim(0)`` at most every ``interval`` seconds, which
returns every whole free page of every arena (``madvise``) and costs a walk of the free
lists (milliseconds).  Elsewhere (macOS, Windows, musl) it does nothing: those allocators
return memory differently.  ``REPSPACE_HEAP_TRIM=0`` turns it off (to measure without it).
"""

from __future__ import annotations

import ctypes
import os
import sys
import time

__all__ = ["HeapTrimmer", "trim_heap"]

INTERVAL_S = 0.5


def _load_malloc_trim():
    if not sys.platform.startswith("linux") or os.environ.get("REPSPACE_HEAP_TRIM", "1") == "0":
        return None
    try:
        fn = ctypes.CDLL(None).malloc_trim  # the C library this process already runs on
    except (OSError, AttributeError):  # musl and other libcs have no malloc_trim
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


_MALLOC_TRIM = _load_malloc_trim()


def trim_heap() -> bool:
    """Return the heap's free pages to the system now; True when that was possible here."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


class HeapTrimmer:
    """Call :func:`trim_heap` at most once per ``interval`` seconds (once per batch of a
    fast capture would cost more than it returns)."""

    def __init__(self, interval: float = INTERVAL_S):
        self.interval = interval
        self._last = time.monotonic()

    def __call__(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            trim_heap()
            self._last = time.monotonic()
