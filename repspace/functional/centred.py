"""Centred moments: the sufficient statistics every closed form in this package reads.

A :class:`CentredFeature` describes one representation about its exact sample mean; a
:class:`CentredCross` a pair of them.  :mod:`repspace.statistics` accumulates and centres
them; the functions of :mod:`repspace.functional` turn them into numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["CentredFeature", "CentredCross"]


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
