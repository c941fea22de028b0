"""Houlsby bottleneck adapters (Houlsby et al. 2019, arXiv 1902.00751); own implementation
(peft has none).

After the attention output projection (site ``attn_out``) and the feed-forward output
projection (site ``ffn_out``) -- i.e. before the residual add and LayerNorm -- the output
``h`` (width ``d``) passes through::

    h' = h + W_up act(W_down h + b_down) + b_up,   W_down: width x d,  W_up: d x width

Trainable parameters per site: ``2 * d * width + width + d``.  Init: ``W_down`` truncated
normal (std ``init_scale``, cut at 2 std; Houlsby's code uses 1e-3), ``W_up``, biases zero,
so the adapted model starts *exactly* equal to the base (Houlsby draws ``W_up`` with the
same tiny std; zero keeps step 0 identical, which drift measurements rely on).

Each target is replaced in its parent by :class:`AdapterWrapped`, which keeps the original
under ``base_layer`` and the bottleneck under ``adapter`` (both hidden by
:mod:`repspace.capture.names`, so layer names do not shift).  Trainable parameters are named
``<target>.adapter.down.{weight,bias}`` and ``<target>.adapter.up.{weight,bias}``; the
backbone's become ``<target>.base_layer.*``.  Nothing else's ``requires_grad`` is touched.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from repspace.capture.names import unwrap_model
from repspace.methods.architectures import ArchSpec, site_modules
from repspace.methods.base import MethodConfig, check_positive_int, check_towers, register_method

__all__ = ["AdapterConfig", "Bottleneck", "AdapterWrapped", "apply_adapter", "ACTIVATIONS"]

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


@dataclass
class AdapterConfig(MethodConfig):
    """Houlsby adapter of bottleneck ``width`` with ``activation`` in ``towers``."""

    method = "adapter"
    budget_field = "width"
    width: int = 16
    activation: str = "gelu"
    towers: tuple[str, ...] = ("text",)
    init_scale: float = 1e-3

    def __post_init__(self):
        check_positive_int("adapter", "width", self.width)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"adapter: activation must be one of {', '.join(ACTIVATIONS)}; "
                             f"got {self.activation!r}")
        self.towers = check_towers("adapter", self.towers)
        if isinstance(self.init_scale, bool) or not isinstance(self.init_scale, (int, float)) \
                or not self.init_scale > 0:
            # zero would leave W_down = W_up = 0: no gradient ever reaches the weights
            raise ValueError("adapter: init_scale must be a positive number; "
                             f"got {self.init_scale!r}")


class Bottleneck(nn.Module):
    """``h -> W_up act(W_down h + b_down) + b_up`` (the residual is added by the wrapper)."""

    def __init__(self, d: int, width: int, activation: str = "gelu", init_scale: float = 1e-3,
                 dtype: torch.dtype | None = None, device=None):
        super().__init__()
        self.down = nn.Linear(d, width, dtype=dtype, device=device)
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


def _output_width(name: str, module: nn.Module) -> int:
    """``d`` of a linear-like module (``nn.Linear.out_features``, transformers ``Conv1D.nf``)."""
    for attr in ("out_features", "nf"):
        d = getattr(module, attr, None)
        if isinstance(d, int):
            return d
    raise ValueError(f"adapter: cannot tell the output width of {name} ({type(module).__name__}); "
                     "expected nn.Linear or transformers Conv1D")


def apply_adapter(model: nn.Module, config: AdapterConfig, arch: ArchSpec,
                  stage: int = 1) -> nn.Module:
    """Wrap every ``attn_out`` and ``ffn_out`` module of ``config.towers`` in place."""
    root = unwrap_model(model)
    targets = site_modules(root, arch, ("attn_out", "ffn_out"), config.towers, "adapter")
    for name, module in targets:
        if isinstance(module, AdapterWrapped):
            raise ValueError(f"adapter: {name} already has an adapter; apply it once")
        weight = next(module.parameters(), None)
        adapter = Bottleneck(_output_width(name, module), config.width, config.activation,
                             config.init_scale, dtype=None if weight is None else weight.dtype,
                             device=None if weight is None else weight.device)
        parent_name, _, child = name.rpartition(".")
        setattr(root.get_submodule(parent_name), child, AdapterWrapped(module, adapter))
    return model


register_method("adapter", AdapterConfig, apply_adapter,
                "Houlsby adapter: residual bottleneck after attention and feed-forward outputs",
                paper="Houlsby et al. 2019, Parameter-Efficient Transfer Learning for NLP, "
                      "arXiv:1902.00751")
