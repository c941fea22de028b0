"""Streaming per-sample drift between paired representations of equal width.

For each sample, the cosine similarity cos(xᵢ, yᵢ) and the relative ℓ2 shift
‖yᵢ − xᵢ‖ / ‖xᵢ‖ (LDIFS-style, Mukhoti et al. 2023) are computed on the *raw*
(uncentred) features.  Mean, standard deviation, min and max are exact; quantiles come
from fixed histograms (cosine: 2000 bins on [-1, 1], resolution 1e-3; relative shift:
log-spaced bins from 1e-8 to 1e4, 100 per decade, i.e. ±1.2 % relative), so memory is
independent of n.  Use :func:`repspace.metrics.paired_drift` on arrays for exact quantiles.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist

from repspace.statistics.base import Accumulator
from repspace.statistics.collective import collective_device, reduce_states

__all__ = ["PairedDriftStats", "DriftSummary"]

COS_EDGES = np.linspace(-1.0, 1.0, 2001)
REL_EDGES = np.logspace(-8, 4, 1201)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class DriftSummary(dict):
    """Summary of a per-sample quantity: mean, std, min, max, q05..q95, n, n_undefined."""


def per_sample_drift(x: torch.Tensor, y: torch.Tensor):
    """Per-row cosine similarity and relative shift (float64); NaN where a norm is zero."""
    x, y = x.double(), y.double()
    nx, ny = x.norm(dim=1), y.norm(dim=1)
    dot = (x * y).sum(1)
    cos = torch.where((nx > 0) & (ny > 0), dot / (nx * ny), torch.full_like(dot, math.nan))
    rel = torch.where(nx > 0, (y - x).norm(dim=1) / nx, torch.full_like(dot, math.nan))
    return cos, rel


def summarize(values: np.ndarray) -> DriftSummary:
    """Exact summary of an array of per-sample values (NaNs counted as undefined)."""
    v = np.asarray(values, dtype=np.float64)
    ok = v[np.isfinite(v)]
    out = DriftSummary(n=int(ok.size), n_undefined=int(v.size - ok.size))
    if ok.size == 0:
        out.update({k: math.nan for k in ("mean", "std", "min", "max")})
        out.update({f"q{int(q * 100):02d}": math.nan for q in QUANTILES})
        return out
    out.update(
        mean=float(ok.mean()),
        std=float(ok.std(ddof=1)) if ok.size > 1 else math.nan,
        min=float(ok.min()),
        max=float(ok.max()),
    )
    for q, val in zip(QUANTILES, np.quantile(ok, QUANTILES)):
        out[f"q{int(q * 100):02d}"] = float(val)
    return out


class _StreamingSummary(Accumulator):
    """Exact count/mean/M2 (Chan et al. parallel update), min, max and a histogram."""

    # How each state reduces across processes; "chan": (n, mean, m2) merged by the
    # parallel formula (see merge), which also yields the reduced n.
    reductions = {
        "n": "chan",
        "mean": "chan",
        "m2": "chan",
        "n_undefined": "sum",
        "counts": "sum",
        "min": "min",
        "max": "max",
    }
    defaults = {
        "n": 0,
        "n_undefined": 0,
        "mean": 0.0,
        "m2": 0.0,
        "min": math.inf,
        "max": -math.inf,  # counts: + under/overflow bins
        "counts": lambda self: np.zeros(len(self.edges) + 1, dtype=np.int64),
    }

    def __init__(self, edges: np.ndarray):
        self.edges = edges
        self.reset()

    @classmethod
    def from_moments(cls, edges: np.ndarray, n: int, mean: float, m2: float) -> "_StreamingSummary":
        """A summary holding only count, mean and M2 (to merge partial moments by Chan)."""
        out = cls(edges)
        out.n, out.mean, out.m2 = int(n), float(mean), float(m2)
        return out

    def update(self, values: np.ndarray) -> "_StreamingSummary":
        ok = values[np.isfinite(values)]
        self.n_undefined += int(values.size - ok.size)
        if ok.size:
            other = _StreamingSummary(self.edges)
            other.n, other.mean = ok.size, float(ok.mean())
            other.m2 = float(((ok - other.mean) ** 2).sum())
            other.min, other.max = float(ok.min()), float(ok.max())
            other.counts = np.bincount(
                np.searchsorted(self.edges, ok, side="right"), minlength=len(self.edges) + 1
            )
            self.merge(other)
        return self

    def merge(self, o: "_StreamingSummary") -> "_StreamingSummary":
        n = self.n + o.n
        if o.n:
            delta = o.mean - self.mean
            self.mean += delta * o.n / n
            self.m2 += o.m2 + delta * delta * self.n * o.n / n
            self.min, self.max = min(self.min, o.min), max(self.max, o.max)
            self.counts = self.counts + o.counts
        self.n = n
        self.n_undefined += o.n_undefined
        return self

    def compute(self) -> "DriftSummary":
        return self.summary()

    def all_reduce(self, group=None, device=None) -> "_StreamingSummary":
        """Every rank's values, on every rank: (n, mean, M2) by Chan's merge, rank by rank in
        rank order (the same float64 result everywhere), the rest by their rules."""
        device = collective_device(group) if device is None else device
        simple = {k: r for k, r in self.reductions.items() if r != "chan"}
        states = reduce_states({k: getattr(self, k) for k in simple}, simple, group, device)
        triple = torch.tensor([self.n, self.mean, self.m2], dtype=torch.float64, device=device)
        gathered = [torch.empty_like(triple) for _ in range(dist.get_world_size(group))]
        dist.all_gather(gathered, triple, group=group)
        merged = type(self)(self.edges)
        for t in gathered:
            merged.merge(
                type(self).from_moments(
                    self.edges, int(t[0].item()), float(t[1].item()), float(t[2].item())
                )
            )
        n = merged.n
        self.n, self.mean, self.m2 = n, merged.mean, merged.m2
        self.n_undefined = states["n_undefined"]
        self.counts = states["counts"]
        self.min = states["min"] if n else math.inf
        self.max = states["max"] if n else -math.inf
        return self

    def quantile(self, q: float) -> float:
        """Histogram quantile, linear within the bin, clipped to the exact min/max."""
        target = q * self.n
        cum = np.cumsum(self.counts)
        b = int(np.searchsorted(cum, target, side="left"))
        lo = self.edges[b - 1] if b >= 1 else self.min
        hi = self.edges[b] if b < len(self.edges) else self.max
        before = cum[b - 1] if b >= 1 else 0
        frac = (target - before) / self.counts[b] if self.counts[b] else 0.0
        return float(min(max(lo + frac * (hi - lo), self.min), self.max))

    def summary(self) -> DriftSummary:
        out = DriftSummary(n=self.n, n_undefined=self.n_undefined)
        if self.n == 0:
            out.update({k: math.nan for k in ("mean", "std", "min", "max")})
            out.update({f"q{int(q * 100):02d}": math.nan for q in QUANTILES})
            return out
        out.update(
            mean=self.mean,
            std=math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else math.nan,
            min=self.min,
            max=self.max,
        )
        for q in QUANTILES:
            out[f"q{int(q * 100):02d}"] = self.quantile(q)
        return out


StreamingSummary = _StreamingSummary  # public name: exact mean/min/max + histogram quantiles


class PairedDriftStats(Accumulator):
    """Streaming per-sample cosine similarity and relative shift of paired rows."""

    defaults = {
        "cosine": lambda self: _StreamingSummary(COS_EDGES),
        "relative_shift": lambda self: _StreamingSummary(REL_EDGES),
    }

    def __init__(self):
        self.reset()

    def update(self, x: torch.Tensor, y: torch.Tensor) -> "PairedDriftStats":
        cos, rel = per_sample_drift(x, y)
        self.cosine.update(cos.cpu().numpy())
        self.relative_shift.update(rel.cpu().numpy())
        return self

    def merge(self, other: "PairedDriftStats") -> "PairedDriftStats":
        self.cosine.merge(other.cosine)
        self.relative_shift.merge(other.relative_shift)
        return self

    def state_dict(self) -> dict:
        return {
            "cosine": self.cosine.state_dict(),
            "relative_shift": self.relative_shift.state_dict(),
        }

    def load_state_dict(self, states: dict) -> "PairedDriftStats":
        self.cosine.load_state_dict(states["cosine"])
        self.relative_shift.load_state_dict(states["relative_shift"])
        return self

    def all_reduce(self, group=None, device=None) -> "PairedDriftStats":
        self.cosine.all_reduce(group, device)
        self.relative_shift.all_reduce(group, device)
        return self

    def compute(self) -> dict:
        return {
            "cosine_similarity": self.cosine.summary(),
            "relative_shift": self.relative_shift.summary(),
        }
