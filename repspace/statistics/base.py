"""The shape every streaming accumulator has (torchmetrics' ``Metric``, without modules).

An accumulator owns *states* and declares, in :attr:`Accumulator.reductions`, how each one
combines across processes:

    "sum"   added              "min" / "max"   element-wise minimum / maximum
    "same"  must agree on every rank (a shift, a width)
    "chan"  (count, mean, M2) triples merged by the parallel formula (Chan et al. 1979)

declares in :attr:`Accumulator.defaults` the empty value of every state (a constant, or a
callable of the accumulator for a fresh object), and implements ``update`` (add a batch) and
``merge`` (add another accumulator of the same layout, in place) -- both return ``self``, so
calls chain -- and ``compute`` (the metrics).  ``reset`` (forget every sample, keep the
settings) puts every declared state back to its default; a subclass's ``__init__`` sets its
settings and calls it, so a fresh and a reset accumulator are the same.  From the table, this base gives ``state_dict`` / ``load_state_dict`` and the
public collective ``all_reduce(group)``: afterwards every rank holds the statistics of
all ranks' rows, exactly (float64), as if one accumulator had seen them all.  Subclasses
whose states are sums about a per-rank shift override ``all_reduce`` to bring them to a
common shift first (:mod:`repspace.statistics.collective`, :mod:`repspace.statistics.reduce`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from repspace.statistics.collective import collective_device, reduce_states

__all__ = ["Accumulator", "RULES"]

RULES = ("sum", "min", "max", "same", "chan")


class Accumulator:
    """Base class of the streaming accumulators (see the module docstring)."""

    reductions: ClassVar[dict[str, str]] = {}
    # state name -> its empty value, or a callable(self) making one (fresh objects)
    defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        bad = {k: r for k, r in cls.reductions.items() if r not in RULES}
        if bad:
            raise TypeError(f"{cls.__name__}.reductions: unknown rules {bad}; use one of {RULES}")
        undeclared = sorted(set(cls.reductions) - set(cls.defaults))
        if cls.defaults and undeclared:
            raise TypeError(
                f"{cls.__name__}: states {undeclared} reduce across processes but "
                "have no declared default (reset could not restore them)"
            )

    # -- what each accumulator implements ---------------------------------------------
    def update(self, *batch: Any) -> "Accumulator":
        raise NotImplementedError

    def merge(self, other: "Accumulator") -> "Accumulator":
        raise NotImplementedError

    def compute(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def reset(self) -> "Accumulator":
        """Every state of :attr:`defaults` back to its empty value; settings are kept."""
        for name, default in self.defaults.items():
            setattr(self, name, default(self) if callable(default) else default)
        return self

    # -- given by the reductions table ------------------------------------------------
    def state_dict(self) -> dict:
        """The states named in :attr:`reductions` (tensors stay on their device)."""
        return {k: getattr(self, k) for k in self.reductions}

    def load_state_dict(self, states: dict) -> "Accumulator":
        """Replace the states by copies of ``states`` (as ``nn.Module.load_state_dict`` copies:
        the source keeps its own tensors, so the two never update each other); returns self."""
        missing = [k for k in self.reductions if k not in states]
        if missing:
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing states {missing}")
        for key in self.reductions:
            value = states[key]
            setattr(
                self,
                key,
                value.clone()
                if isinstance(value, torch.Tensor)
                else value.copy()
                if isinstance(value, np.ndarray)
                else value,
            )
        return self

    def all_reduce(self, group=None, device=None) -> "Accumulator":
        """Combine this accumulator with its peers on every rank of ``group`` (a collective:
        every rank calls it).  ``device``: where the buffers travel (default: the rank's GPU
        for NCCL, else CPU).  Returns self, now holding the global statistics."""
        device = collective_device(group) if device is None else device
        return self.load_state_dict(
            reduce_states(self.state_dict(), self.reductions, group, device)
        )
