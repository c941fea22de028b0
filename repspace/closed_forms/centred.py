"""Centred moments: the sufficient statistics every closed form in this package reads.

A :class:`CentredFeature` describes one representation about its exact sample mean; a
:class:`CentredCross` a pair of them.  :mod:`repspace.statistics` accumulates and centres
them; the functions of :mod:`repspace.closed_forms` turn them into numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["CentredFeature", "CentredCross", "CentredRows", "cross_of_rows"]


@dataclass
class CentredFeature:
    """Statistics of one representation about its exact sample mean (float64).

    ``scatter`` is Xcᵀ Xc (not divided by n); ``k1 = Σkᵢ``, ``k2 = Σkᵢ²`` and
    ``kx = Σ kᵢ xcᵢ`` with ``kᵢ = ‖xcᵢ‖²``; ``constant`` flags zero-variance features;
    ``eps`` is the unit round-off of the GEMMs that produced ``scatter``.
    """

    n: int
    mean: torch.Tensor
    scatter: torch.Tensor
    k1: torch.Tensor
    k2: torch.Tensor
    kx: torch.Tensor
    constant: torch.Tensor
    eps: float

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def covariance(self, ddof: int = 1) -> torch.Tensor:
        return self.scatter / (self.n - ddof)

    @property
    def is_constant(self) -> bool:
        """True when every feature has zero variance (the representation is one point)."""
        return bool(self.constant.all())


@dataclass
class CentredCross:
    """Cross statistics of a pair about both sample means: Xcᵀ Yc, Σkl, Σk·yc, Σl·xc."""

    n: int
    scatter: torch.Tensor
    kl: torch.Tensor
    ky: torch.Tensor
    lx: torch.Tensor


@dataclass
class CentredRows:
    """One representation held as its rows, centred about their exact mean (float64).

    The rows route of :mod:`repspace.statistics.routes`: ``rows`` is Xc (n × p); every
    closed form of the moments has an n-dimensional counterpart
    (:mod:`repspace.closed_forms.rows`), and :meth:`to_feature` gives the moments themselves,
    exactly, when the p-dimensional form is cheaper.  ``eps`` is the resolution the moments
    route would have had (the GEMM dtype's unit round-off), so both routes resolve the same
    singular values (:mod:`repspace.closed_forms.spectrum`).
    """

    n: int
    mean: torch.Tensor
    rows: torch.Tensor
    constant: torch.Tensor
    eps: float

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def is_constant(self) -> bool:
        return bool(self.constant.all())

    @property
    def scatter(self) -> torch.Tensor:
        """XcᵀXc (p × p): forms the d × d matrix the rows route avoids; for callers that
        want it, never used by the metrics of this route."""
        return self.rows.T @ self.rows

    def covariance(self, ddof: int = 1) -> torch.Tensor:
        return self.scatter / (self.n - ddof)

    def norms2(self) -> torch.Tensor:
        """kᵢ = ‖xcᵢ‖² (n,)."""
        return torch.linalg.vector_norm(self.rows, dim=1).square()

    def to_feature(self) -> CentredFeature:
        """The centred moments of these rows (XcᵀXc and the k-statistics), exact in float64."""
        k = self.norms2()
        return CentredFeature(
            n=self.n,
            mean=self.mean,
            scatter=self.rows.T @ self.rows,
            k1=k.sum(),
            k2=(k * k).sum(),
            kx=self.rows.T @ k,
            constant=self.constant,
            eps=self.eps,
        )


def cross_of_rows(cx: CentredRows, cy: CentredRows) -> CentredCross:
    """The centred cross moments of two row sets (XcᵀYc, Σkl, Σk·yc, Σl·xc), exact."""
    k, l = cx.norms2(), cy.norms2()
    return CentredCross(
        n=cx.n, scatter=cx.rows.T @ cy.rows, kl=k @ l, ky=cy.rows.T @ k, lx=cx.rows.T @ l
    )
