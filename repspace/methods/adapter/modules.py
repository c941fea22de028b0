"""The adapter's modules: the bottleneck and the wrappers that put it after (sequential) or
beside (parallel) a linear map.  Both placements build on them, so they sit below the
config (:mod:`repspace.methods.adapter`) and the parallel wiring (:mod:`.parallel`), and
imports between the three run one way.
"""

from __future__ import annotations

import torch
from torch import nn

from repspace.methods.architectures import output_width

__all__ = [
    "ACTIVATIONS",
    "Bottleneck",
    "AdapterWrapped",
    "ParallelAdapterWrapped",
    "linear_output_width",
]

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


class Bottleneck(nn.Module):
    """``h -> W_up act(W_down h + b_down) + b_up`` (the residual is added by the wrapper)."""

    def __init__(
        self,
        d: int,
        width: int,
        activation: str = "gelu",
        init_scale: float = 1e-3,
        dtype: torch.dtype | None = None,
        device=None,
        d_in: int | None = None,
    ):
        super().__init__()
        self.down = nn.Linear(d if d_in is None else d_in, width, dtype=dtype, device=device)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(width, d, dtype=dtype, device=device)
        with torch.no_grad():
            bound = 2 * init_scale
            nn.init.trunc_normal_(self.down.weight, std=init_scale, a=-bound, b=bound)
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(h)))


class AdapterWrapped(nn.Module):
    """``base_layer`` followed by a residual :class:`Bottleneck` on its (tensor) output."""

    def __init__(self, base_layer: nn.Module, adapter: Bottleneck):
        super().__init__()
        self.base_layer = base_layer
        self.adapter = adapter

    @property
    def weight(self):  # code that peeks at e.g. `dense.weight.dtype` keeps working
        return self.base_layer.weight

    @property
    def bias(self):
        return self.base_layer.bias

    def forward(self, *args, **kwargs):
        h = self.base_layer(*args, **kwargs)
        return h + self.adapter(h)


class ParallelAdapterWrapped(AdapterWrapped):
    """``base_layer`` (a feed-forward output projection) plus ``scale * adapter(x)`` where
    ``x`` is the feed-forward sublayer's *input*, stashed by a pre-hook on its first
    projection (He et al. 2022: the adapter runs beside the sublayer, not after it)."""

    def __init__(self, base_layer: nn.Module, adapter: Bottleneck, scale: float):
        super().__init__(base_layer, adapter)
        self.scale = float(scale)
        self.__dict__["_stash"] = None  # a plain attribute: not state, never saved

    def stash(self, module, args, kwargs=None):
        self.__dict__["_stash"] = args[0] if args else next(iter((kwargs or {}).values()))

    def forward(self, *args, **kwargs):
        x = self.__dict__["_stash"]
        self.__dict__["_stash"] = None
        if x is None:
            raise ValueError(
                "parallel adapter: the feed-forward input was not seen before its output "
                "projection ran; this architecture's ffn_in / ffn_out sites do not pair"
            )
        return self.base_layer(*args, **kwargs) + self.scale * self.adapter(x)


def linear_output_width(name: str, module: nn.Module) -> int:
    """``d`` of a linear-like module (``nn.Linear.out_features``, transformers ``Conv1D.nf``)."""
    d = output_width(module, kinds=("out_features", "nf"))
    if d is None:
        raise ValueError(
            f"adapter: cannot tell the output width of {name} ({type(module).__name__}); "
            "expected nn.Linear or transformers Conv1D"
        )
    return d


def bottleneck_for(name: str, module: nn.Module, config, d_in: int | None = None) -> Bottleneck:
    """A fresh :class:`Bottleneck` for the linear-like ``module`` at ``name`` (which must not
    hold an adapter yet): its output width, ``config``'s width, activation and init scale,
    the module's dtype and device; ``d_in``: the width it reads (parallel placement)."""
    if isinstance(module, AdapterWrapped):
        raise ValueError(f"adapter: {name} already has an adapter; apply it once")
    weight = next(module.parameters(), None)
    return Bottleneck(
        linear_output_width(name, module),
        config.width,
        config.activation,
        config.init_scale,
        dtype=None if weight is None else weight.dtype,
        device=None if weight is None else weight.device,
        d_in=d_in,
    )
