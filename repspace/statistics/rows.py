"""The rows route: one representation's pooled rows, held exactly as captured.

While n is small against the widths (:mod:`repspace.statistics.routes`), the rows are a
smaller exact statistic than the moments.  :class:`FeatureRows` keeps them batch by batch
in their capture dtype, on the device they arrived on, and :meth:`FeatureRows.to_moments`
replays those batches, in order, into a :class:`~repspace.statistics.FeatureMoments` —
the very states the moments route would hold had it seen the batches itself.
"""

from __future__ import annotations

import numpy as np
import torch

from repspace.closed_forms.centred import CentredRows
from repspace.statistics.base import Accumulator
from repspace.statistics.moments import FeatureMoments, gemm_dtype, prepare_batch

__all__ = ["FeatureRows", "CrossRows"]

HALF = (torch.float16, torch.bfloat16)


class FeatureRows(Accumulator):
    """The rows of one representation (n × p), held as the batches that brought them.

    ``precision`` is the moments route's, kept for :meth:`to_moments` and for the
    resolution of the spectrum (both routes resolve the same singular values).
    """

    reductions = {"n": "sum"}  # rows are gathered, not reduced (LayerwiseMoments.all_reduce)
    defaults = {"n": 0, "batches": lambda self: [], "_last": None}

    def __init__(self, precision: str = "auto", name: str = "x"):
        gemm_dtype(torch.float32, precision)  # validates the argument
        self.precision = precision
        self.name = name
        self.shared = False
        self.batches: list[torch.Tensor] = []
        self.reset()

    @property
    def dim(self) -> int | None:
        return int(self.batches[0].shape[1]) if self.batches else None

    @property
    def itemsize(self) -> int:
        return self.batches[0].element_size() if self.batches else 4

    @property
    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.batches)

    def prepared(self, batch, row_offset: int | None = None) -> torch.Tensor:
        """Validate ``batch`` (2-D, finite, this width) without storing it."""
        t = prepare_batch(batch, self.name, self.n if row_offset is None else row_offset)
        if isinstance(batch, torch.Tensor) and batch.dtype in HALF and batch.ndim == 2:
            t = batch.detach()  # validated; kept in its own 2 bytes per value
        if self.dim is not None and t.shape[1] != self.dim:
            raise ValueError(
                f"{self.name} batch has {t.shape[1]} features but this accumulator "
                f"holds {self.dim}; every batch of one layer must have the same width"
            )
        return t

    def update(self, batch) -> "FeatureRows":
        return self.add(self.prepared(batch))

    def add(self, rows: torch.Tensor) -> "FeatureRows":
        """Keep validated rows (from :meth:`prepared`)."""
        self.batches.append(rows)
        self.n += rows.shape[0]
        return self

    # -- shared by several pair accumulators (the base of k tuned models) ----------------
    def remembered(self, batch):
        if self._last is not None and self._last[0] is batch:
            return self._last[1]
        return None

    def remember(self, batch, rows: torch.Tensor) -> None:
        if self.shared:
            self._last = (batch, rows)

    def forget(self) -> None:
        self._last = None

    # -- the Accumulator contract ------------------------------------------------------
    def merge(self, other: "FeatureRows") -> "FeatureRows":
        if not isinstance(other, FeatureRows):
            raise TypeError(f"cannot merge {type(other).__name__} into FeatureRows")
        if self.dim is not None and other.dim is not None and self.dim != other.dim:
            raise ValueError(f"cannot merge {self.name}: {self.dim} features vs {other.dim}")
        self.batches.extend(other.batches)
        self.n += other.n
        return self

    def state_dict(self) -> dict:
        rows = torch.cat(self.batches) if self.batches else torch.zeros(0, 0)
        return {"n": self.n, "rows": rows}

    def load_state_dict(self, states: dict) -> "FeatureRows":
        rows = states["rows"]
        self.batches = [rows.clone()] if rows.numel() else []
        self.n = int(rows.shape[0]) if rows.numel() else 0
        return self

    def compute(self) -> CentredRows:
        return self.centred()

    def all_reduce(self, group=None, device=None):
        raise TypeError(
            "rows are gathered with their layer pairs: all-reduce the "
            "LayerwiseMoments that holds them"
        )

    # -- results -----------------------------------------------------------------------
    @property
    def eps(self) -> float:
        """The unit round-off the moments route's GEMMs would have had on these rows."""
        dtype = self.batches[0].dtype if self.batches else torch.float32
        return max(
            float(torch.finfo(gemm_dtype(dtype, self.precision)).eps),
            float(np.finfo(np.float64).eps),
        )

    def mean(self) -> torch.Tensor:
        """The exact sample mean (p,), float64."""
        return self.rows().mean(0)

    def rows(self) -> torch.Tensor:
        """All rows, float64 (n × p)."""
        return torch.cat([b.double() for b in self.batches])

    def centred(self) -> CentredRows:
        if self.n == 0:
            raise ValueError(f"{self.name}: no samples were accumulated; call update() first")
        x = self.rows()
        mean = x.mean(0)
        constant = x.amax(0) == x.amin(0)
        return CentredRows(n=self.n, mean=mean, rows=x - mean, constant=constant, eps=self.eps)

    def to_moments(self, fm: FeatureMoments | None = None) -> FeatureMoments:
        """These rows as moments (a fresh accumulator unless ``fm`` is given): each batch
        replayed in order, as the moments route would have added it."""
        fm = FeatureMoments(self.precision, name=self.name) if fm is None else fm
        offset = 0
        for b in self.batches:
            fm.update_shifted(fm.shifted(b, row_offset=offset))
            offset += b.shape[0]
        return fm


class CrossRows:
    """The cross statistics of a rows-route pair: none are kept, both sides' rows say it all."""

    reductions: dict = {}
