"""Streaming sufficient statistics of one representation and of a pair of representations.

Why these statistics: linear CKA (biased and debiased), the covariance spectrum, the
Fréchet distance, the linear MMD, the Procrustes distance and principal angles are all
closed-form functions of a handful of sums over samples, so they can be computed
exactly on any number of samples in memory O(p² + q² + pq).

Notation: a sample x ∈ Rᵖ is stored shifted, x' = x − c, with c the (rounded) mean of
the first batch.  Shifting keeps the sums small, which is what makes float32 GEMMs on
activations with a large common offset (e.g. +1e3) accurate; all sums are accumulated
in float64.  With kᵢ = ‖x'ᵢ‖² and lᵢ = ‖y'ᵢ‖² the states are

    one side:  n, Σx', Σx'x'ᵀ, Σk, Σk², Σk·x', per-feature min/max
    cross:     Σx'y'ᵀ, Σk·l, Σk·y', Σl·x'

The k-statistics are what the debiased (Song et al. 2012) HSIC₁ needs.  Changing the
shift is a polynomial identity in the shift difference (:meth:`FeatureMoments.reshifted`),
which makes accumulators mergeable whatever their shifts, and lets :meth:`centred`
return the statistics about the exact sample mean.
"""

from __future__ import annotations

import numpy as np
import torch

from repspace._validation import as_matrix, check_finite
from repspace.statistics.base import Accumulator
from repspace.statistics.collective import agree, collective_device, global_means, reduce_states
from repspace.closed_forms.centred import CentredCross, CentredFeature

__all__ = ["FeatureMoments", "CrossMoments", "CentredFeature", "CentredCross", "gemm_dtype"]

PRECISIONS = ("auto", "float64")
SHIFT_ROWS = 4096  # rows of the first batch whose mean becomes the shift


def gemm_dtype(input_dtype: torch.dtype, precision: str) -> torch.dtype:
    """dtype of the per-batch GEMMs: the input's (float32 for half types) unless opted out."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    if precision == "float64" or input_dtype == torch.float64:
        return torch.float64
    return torch.float32


def prepare_batch(batch, name: str, row_offset: int) -> torch.Tensor:
    """Validate one batch (2-D, finite) and return it as a floating tensor."""
    t = as_matrix(batch, name)
    check_finite(t, name, row_offset=row_offset)
    return t


def row_norms2(xs: torch.Tensor) -> torch.Tensor:
    """kᵢ = ‖xᵢ‖² in the rows' dtype (the cross terms' and the debiased estimator's norms)."""
    # vector_norm is one vectorised pass; (xs * xs).sum(1) costs ~50x more
    return torch.linalg.vector_norm(xs, dim=1).square()


class FeatureMoments(Accumulator):
    """Streaming moments of one representation (n samples × p features).

    ``update(batch)`` adds rows; ``merge(other)`` adds another accumulator's rows;
    ``centred()`` returns :class:`CentredFeature`.  Memory is O(p²), independent of n.

    Parameters
    ----------
    precision : {"auto", "float64"}
        ``"auto"`` runs the per-batch GEMM in the input dtype (float32 for float16/
        bfloat16/float32, float64 for float64) on shifted data and accumulates across
        batches in float64.  ``"float64"`` upcasts every batch before the GEMM
        (about 4x slower on CPUs, for bit-for-bit paranoia).
    shift : optional (p,) array
        Fix the shift instead of taking the first batch's mean (all ranks of a
        distributed run use the same shift so that their states add).
    """

    # How each state reduces across processes (torchmetrics-style); "shift" must agree.
    reductions = {
        "n": "sum",
        "sum": "sum",
        "outer": "sum",
        "k1": "sum",
        "k2": "sum",
        "kx": "sum",
        "min": "min",
        "max": "max",
        "eps": "max",
        "shift": "same",
    }
    # Before the first batch the width is unknown: the p-sized states exist from then on
    # (init_states); the remembered batch of a shared side is forgotten too.
    defaults = {
        "n": 0,
        "eps": 0.0,
        "shift": None,
        "sum": None,
        "outer": None,
        "k1": None,
        "k2": None,
        "kx": None,
        "min": None,
        "max": None,
        "_last": None,
    }

    def __init__(self, precision: str = "auto", shift=None, name: str = "x"):
        gemm_dtype(torch.float32, precision)  # validates the argument
        self.precision = precision
        self.name = name
        # Shared by several pair accumulators (k tuned models against one base): each batch
        # is accumulated once; the last batch, its shifted rows and norms are remembered so
        # the other accumulators reuse them (see LayerwiseMoments(base_from=...)).
        self.shared = False
        self.reset()
        if shift is not None:
            c = torch.as_tensor(
                np.asarray(shift, dtype=np.float64)
                if not isinstance(shift, torch.Tensor)
                else shift
            ).double()
            if c.ndim != 1 or not bool(torch.isfinite(c).all()):
                raise ValueError(
                    f"shift for {name} must be a finite 1-D vector of length "
                    f"n_features; got shape {tuple(c.shape)}"
                )
            self.init_states(c)

    # -- state handling ------------------------------------------------------------
    def init_states(self, shift: torch.Tensor) -> None:
        """Zero statistics about ``shift`` (p,): how an accumulator that saw no rows takes
        part in a reduction across processes, or adopts another's shift before a merge."""
        p, dev = shift.shape[0], shift.device
        f64 = dict(dtype=torch.float64, device=dev)
        self.shift = shift.to(**f64)
        self.sum = torch.zeros(p, **f64)
        self.outer = torch.zeros(p, p, **f64)
        self.k1 = torch.zeros((), **f64)
        self.k2 = torch.zeros((), **f64)
        self.kx = torch.zeros(p, **f64)
        self.min = torch.full((p,), float("inf"), **f64)
        self.max = torch.full((p,), float("-inf"), **f64)

    @property
    def dim(self) -> int | None:
        return None if self.shift is None else int(self.shift.shape[0])

    def load_state_dict(self, states: dict) -> "FeatureMoments":
        """Replace the states (e.g. by their reduction across processes); returns self."""
        if self.shift is None:
            self.init_states(torch.as_tensor(states["shift"]).double())
        super().load_state_dict(states)
        self.n, self.eps = int(self.n), float(self.eps)
        return self

    def compute(self) -> CentredFeature:
        """The statistics about the exact sample mean (:meth:`centred`)."""
        return self.centred()

    def all_reduce(self, group=None, device=None) -> "FeatureMoments":
        """Every rank's rows in this accumulator, on every rank (a collective).

        The states are sums about this rank's own shift: they are first re-shifted to the
        global mean (exact), then reduced by :attr:`reductions` in float64."""
        device = collective_device(group) if device is None else device
        width = agree(self.dim if self.n else None, group, "feature widths")
        if width is None:  # no rank saw a row
            return self
        (mean,) = global_means(
            [self if self.n else None], [width], group, device, self.precision == "auto"
        )
        if self.n:
            super().load_state_dict(self.reshifted(mean.to(self.shift.device)).state_dict())
        else:
            self.init_states(mean)
        return self.load_state_dict(
            reduce_states(self.state_dict(), self.reductions, group, device)
        )

    def shifted(
        self, batch, row_offset: int | None = None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Validate ``batch``, set the shift from it if unset, return x − c in the GEMM dtype.

        ``out``: a scratch tensor to write x − c into when its shape, dtype and device fit
        (a fresh large tensor costs page faults -- a third of the subtraction's time)."""
        t = prepare_batch(batch, self.name, self.n if row_offset is None else row_offset)
        dtype = gemm_dtype(t.dtype, self.precision)
        if self.shift is None:
            # Any shift gives exact statistics; one near the mean keeps the GEMM's values
            # small.  The first SHIFT_ROWS rows estimate it well enough, without a float64
            # copy of a large batch.  Rounded to the GEMM dtype so x − c is consistent.
            head = t[:SHIFT_ROWS]
            self.init_states(head.double().mean(0).to(dtype).double())
        elif t.shape[1] != self.dim:
            raise ValueError(
                f"{self.name} batch has {t.shape[1]} features but this accumulator holds "
                f"{self.dim}; every batch of one layer must have the same width"
            )
        t = t.to(self.shift.device)
        self.eps = max(self.eps, torch.finfo(dtype).eps)
        if (
            out is not None
            and out.shape == t.shape
            and out.dtype == dtype
            and out.device == t.device
        ):
            return torch.sub(t.to(dtype), self.shift.to(dtype), out=out)
        return t.to(dtype) - self.shift.to(dtype)

    def update(self, batch) -> "FeatureMoments":
        """Add a batch (b × p); returns self (pair accumulators use :meth:`update_shifted`,
        which returns the row norms their cross terms need)."""
        self.update_shifted(self.shifted(batch))
        return self

    # -- sharing one side between several pair accumulators --------------------------
    def remembered(self, batch) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(shifted rows, norms)`` if this shared accumulator already added ``batch``
        (the same object) as its last batch, else ``None``."""
        if self._last is not None and self._last[0] is batch:
            return self._last[1], self._last[2]
        return None

    def remember(self, batch, xs: torch.Tensor, k: torch.Tensor) -> None:
        """After adding ``batch``: keep it (shared accumulators only) for :meth:`remembered`."""
        if self.shared:
            self._last = (batch, xs, k)

    def forget(self) -> None:
        """Drop the remembered batch (after the last accumulator sharing this one saw it)."""
        self._last = None

    def update_shifted(self, xs: torch.Tensor) -> torch.Tensor:
        """Add shifted rows.  Returns kᵢ = ‖x'ᵢ‖² in the GEMM dtype (for cross terms).

        Every O(b·p) reduction runs in the GEMM dtype on shifted (small) values and only
        its O(p) result is upcast: float64 copies of the batch would cost as much as the
        GEMMs themselves on a CPU.  Sums across batches are float64.
        """
        k = row_norms2(xs)
        k64 = k.double()
        self.n += xs.shape[0]
        self.sum += xs.sum(0).double()
        self.outer.add_(xs.T @ xs)  # float32 GEMM added into float64 without a float64 copy
        self.k1 += k64.sum()
        self.k2 += (k64 * k64).sum()
        self.kx += (xs.T @ k).double()
        # amin + amax: two vectorised passes; torch.aminmax(dim=0) is ~10x slower on CPU
        self.min = torch.minimum(self.min, xs.amin(0).double())
        self.max = torch.maximum(self.max, xs.amax(0).double())
        return k

    # -- shifting, merging, centring -------------------------------------------------
    def reshifted(self, new_shift: torch.Tensor) -> "FeatureMoments":
        """A copy whose statistics are about ``new_shift`` (exact polynomial identity)."""
        d = self.shift - new_shift  # x'' = x' + d
        n, s, m = self.n, self.sum, self.outer
        delta, sd, md = d @ d, s @ d, m @ d
        out = FeatureMoments(self.precision, name=self.name)
        out.init_states(new_shift.clone())
        out.n, out.eps = n, self.eps
        out.sum = s + n * d
        # m + s dᵀ + d sᵀ + n d dᵀ = m + (s + n d / 2) dᵀ + d (s + n d / 2)ᵀ: two rank-1
        # updates in place instead of three outer products and their sums (p² passes)
        half = s + (0.5 * n) * d
        out.outer = m.clone().addr_(half, d).addr_(d, half)
        out.k1 = self.k1 + 2 * sd + n * delta
        out.k2 = (
            self.k2
            + 4 * (self.kx @ d)
            + 2 * delta * self.k1
            + 4 * (d @ md)
            + 4 * delta * sd
            + n * delta * delta
        )
        out.kx = self.kx + self.k1 * d + 2 * md + 2 * sd * d + delta * s + n * delta * d
        out.min = self.min + d
        out.max = self.max + d
        return out

    def _check_mergeable(self, other: "FeatureMoments") -> None:
        if not isinstance(other, FeatureMoments):
            raise TypeError(f"cannot merge {type(other).__name__} into FeatureMoments")
        if self.dim is not None and other.dim is not None and self.dim != other.dim:
            raise ValueError(
                f"cannot merge {self.name}: {self.dim} features vs {other.dim} features"
            )

    def adopt_shift_of(self, other: "FeatureMoments") -> None:
        """Give an accumulator that has seen no data ``other``'s shift (before a merge)."""
        if self.shift is None and other.shift is not None:
            self.init_states(other.shift.clone())

    def merge(self, other: "FeatureMoments") -> "FeatureMoments":
        """Add ``other``'s samples to this accumulator (in place; returns self)."""
        self._check_mergeable(other)
        if other.n == 0:
            return self
        self.adopt_shift_of(other)
        dev = self.shift.device
        o = other
        if not torch.equal(other.shift.to(dev), self.shift):
            o = other.reshifted(self.shift.to(other.shift.device))
        self.n += o.n
        self.eps = max(self.eps, o.eps)
        for key in ("sum", "outer", "k1", "k2", "kx"):
            setattr(self, key, getattr(self, key) + getattr(o, key).to(dev))
        self.min = torch.minimum(self.min, o.min.to(dev))
        self.max = torch.maximum(self.max, o.max.to(dev))
        return self

    def mean(self) -> torch.Tensor:
        return self.shift + self.sum / self.n

    def centred(self) -> CentredFeature:
        """Statistics about the exact sample mean."""
        if self.n == 0:
            raise ValueError(f"{self.name}: no samples were accumulated; call update() first")
        c = self.reshifted(self.mean())
        return CentredFeature(
            n=self.n,
            mean=c.shift,
            scatter=c.outer,
            k1=c.k1,
            k2=c.k2,
            kx=c.kx,
            constant=self.min == self.max,
            eps=self.eps,
        )


class CrossMoments:
    """The cross part of a pair accumulator (internal to :class:`LayerwiseMoments`).

    Holds Σx'y'ᵀ (p × q), Σk·l, Σk·y' and Σl·x' about the shifts of the two
    :class:`FeatureMoments` it is used with; it never sees raw data on its own, so it is not
    an accumulator: it is updated, merged, re-shifted and reduced by the pair accumulator
    that owns its two sides (``reductions`` says how its states add across processes).
    """

    reductions = {"sum_xy": "sum", "kl": "sum", "ky": "sum", "lx": "sum"}

    def __init__(self):
        self.sum_xy: torch.Tensor | None = None

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.reductions}

    def load_state_dict(self, states: dict) -> "CrossMoments":
        for key in self.reductions:
            value = states[key]
            setattr(self, key, value.clone() if isinstance(value, torch.Tensor) else value)
        return self

    def all_reduce(self, group=None, device=None):
        raise TypeError(
            "cross statistics are sums about both sides' shifts: all-reduce the "
            "LayerwiseMoments (or PairedMoments) that holds them"
        )

    def init_states(self, p: int, q: int, device) -> None:
        """Zero cross statistics for widths ``p`` × ``q`` (see FeatureMoments.init_states)."""
        f64 = dict(dtype=torch.float64, device=device)
        self.sum_xy = torch.zeros(p, q, **f64)
        self.kl = torch.zeros((), **f64)
        self.ky = torch.zeros(q, **f64)
        self.lx = torch.zeros(p, **f64)

    def update_shifted(self, xs, ys, k, l) -> None:
        if self.sum_xy is None:
            self.init_states(xs.shape[1], ys.shape[1], xs.device)
        if xs.dtype != ys.dtype:  # one side float64, the other float32
            xs, ys, k, l = xs.double(), ys.double(), k.double(), l.double()
        self.sum_xy.add_(xs.T @ ys)
        self.kl += k.double() @ l.double()
        self.ky += (ys.T @ k).double()
        self.lx += (xs.T @ l).double()

    def reshifted(self, fx: FeatureMoments, fy: FeatureMoments, new_x, new_y) -> "CrossMoments":
        """Cross statistics about new shifts; ``fx``/``fy`` hold the current shifts and sums."""
        d, e = fx.shift - new_x, fy.shift - new_y
        n, sx, sy, sxy = fx.n, fx.sum, fy.sum, self.sum_xy
        delta, eps = d @ d, e @ e
        sxd, sye = sx @ d, sy @ e
        out = CrossMoments()
        # sxy + sx eᵀ + d syᵀ + n d eᵀ = sxy + (sx + n d) eᵀ + d syᵀ: two in-place rank-1 updates
        out.sum_xy = sxy.clone().addr_(sx + n * d, e).addr_(d, sy)
        out.kl = (
            self.kl
            + 2 * (self.ky @ e)
            + eps * fx.k1
            + 2 * (self.lx @ d)
            + 4 * (d @ sxy @ e)
            + 2 * eps * sxd
            + delta * fy.k1
            + 2 * delta * sye
            + n * delta * eps
        )
        out.ky = self.ky + fx.k1 * e + 2 * (sxy.T @ d) + 2 * sxd * e + delta * sy + n * delta * e
        out.lx = self.lx + fy.k1 * d + 2 * (sxy @ e) + 2 * sye * d + eps * sx + n * eps * d
        return out

    def merge_from(self, other: "CrossMoments", fx_self, fy_self, fx_other, fy_other) -> None:
        """Add ``other`` (whose sides are ``fx_other``/``fy_other``) before the sides merge."""
        if other.sum_xy is None:
            return
        o = other
        dev = fx_other.shift.device
        if not (
            torch.equal(fx_other.shift, fx_self.shift.to(dev))
            and torch.equal(fy_other.shift, fy_self.shift.to(dev))
        ):
            o = other.reshifted(fx_other, fy_other, fx_self.shift.to(dev), fy_self.shift.to(dev))
        if self.sum_xy is None:
            self.init_states(o.sum_xy.shape[0], o.sum_xy.shape[1], fx_self.shift.device)
        for key in self.reductions:
            setattr(self, key, getattr(self, key) + getattr(o, key).to(self.sum_xy.device))

    def centred(self, fx: FeatureMoments, fy: FeatureMoments) -> CentredCross:
        if self.sum_xy is None or fx.n == 0:
            raise ValueError("no paired samples were accumulated; call update() first")
        c = self.reshifted(fx, fy, fx.mean(), fy.mean())
        return CentredCross(n=fx.n, scatter=c.sum_xy, kl=c.kl, ky=c.ky, lx=c.lx)
