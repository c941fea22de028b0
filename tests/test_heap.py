"""The heap trimmer gives freed heap pages back (glibc), and is a no-op where it cannot."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from repspace import _heap
from repspace._heap import HeapTrimmer, trim_heap


PATTERN = r"""
import json, torch
from repspace._heap import trim_heap

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

# the capture's pattern: large blocks freed (glibc then serves blocks up to their size from
# the heap), then per batch one large temporary and one small tensor that stays
for size in (16 << 20, 30 << 20):
    big = torch.empty(size, dtype=torch.uint8).fill_(1)
    del big
kept, freed = [], []
for _ in range(128):
    freed.append(torch.ones(1 << 20, dtype=torch.uint8))
    kept.append(torch.ones(256, dtype=torch.uint8))
freed.clear()
before = rss()
trimmed = trim_heap()
print(json.dumps({"before": before, "after": rss(), "trimmed": trimmed,
                  "kept": all(int(t.sum()) == 256 for t in kept)}))
"""


def test_trim_returns_the_pages_small_survivors_pin():
    if _heap._MALLOC_TRIM is None:
        pytest.skip("no glibc malloc_trim on this platform")
    # a fresh process: the allocator's state (its mmap threshold) is the capture's, not the
    # test session's
    out = subprocess.run(
        [sys.executable, "-c", PATTERN], capture_output=True, text=True, check=True, timeout=120
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["trimmed"] and got["kept"]
    assert got["before"] - got["after"] > 64 << 20, got  # most of the 128 MiB comes back


def test_trimmer_is_throttled(monkeypatch):
    calls = []
    monkeypatch.setattr(_heap, "trim_heap", lambda: calls.append(1) or True)
    trim = HeapTrimmer(interval=3600)
    for _ in range(100):
        trim()
    assert calls == []
    trim(force=True)
    assert calls == [1]


def test_switched_off_or_unavailable_is_a_no_op(monkeypatch):
    monkeypatch.setattr(_heap, "_MALLOC_TRIM", None)
    assert trim_heap() is False
    HeapTrimmer(interval=0)()  # nothing to call, nothing raised
