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

``placement="parallel"`` (He et al. 2022, "Towards a Unified View of Parameter-Efficient
Transfer Learning", arXiv 2110.04366): one adapter per feed-forward sublayer, *beside* it --
it reads the sublayer's input ``x`` (the input of ``ffn_in``) and its scaled output is added to
the sublayer's output: ``FFN(x) + s * W_up act(W_down x)`` with ``s = parallel_scale`` (4, their
setting).  Same init (so it starts at the base), ``2 d width + width + d`` parameters per layer.
``parallel_sites=("attention", "ffn")`` also puts one beside each attention sublayer (input of
its query projection, output added to its output projection); see :mod:`.parallel`.

Each target is replaced in its parent by :class:`AdapterWrapped`, which keeps the original
under ``base_layer`` and the bottleneck under ``adapter`` (both hidden by
:mod:`repspace.introspection`, so layer names do not shift).  Trainable parameters are named
``<target>.adapter.down.{weight,bias}`` and ``<target>.adapter.up.{weight,bias}``; the
backbone's become ``<target>.base_layer.*``.  Nothing else's ``requires_grad`` is touched.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from repspace.introspection import unwrap_model
from repspace.methods.architectures import ArchSpec, output_width, site_modules
from repspace.methods.base import (MethodConfig, MethodFacts, check_number, check_positive_int, check_towers,
                                   register_method)

__all__ = ["AdapterConfig", "Bottleneck", "AdapterWrapped", "ParallelAdapterWrapped", "apply_adapter",
           "ACTIVATIONS", "PLACEMENTS"]

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}
PLACEMENTS = ("sequential", "parallel")
MAX_INIT_SCALE = 10.0    # standard deviation of W_down's initialisation (default 1e-3)
MAX_SCALE = 1000.0       # multiplier of the parallel adapter's output (He et al.: 4)


@dataclass
class AdapterConfig(MethodConfig):
    """Houlsby adapter of bottleneck ``width`` with ``activation`` in ``towers``;
    ``placement="parallel"``: He et al.'s parallel adapter beside each sublayer of
    ``parallel_sites`` (``"ffn"``, ``"attention"``), its output scaled by ``parallel_scale``."""

    method = "adapter"
    budget_field = "width"
    width: int = 16
    activation: str = "gelu"
    towers: tuple[str, ...] = ("text",)
    init_scale: float = 1e-3
    placement: str = "sequential"
    parallel_scale: float = 4.0
    parallel_sites: tuple[str, ...] = ("ffn",)

    def __post_init__(self):
        from repspace.methods.adapter.parallel import PARALLEL_SITES

        sites = (self.parallel_sites,) if isinstance(self.parallel_sites, str) else tuple(self.parallel_sites)
        if not sites or any(x not in PARALLEL_SITES for x in sites) or len(set(sites)) != len(sites):
            raise ValueError(f"adapter: parallel_sites must be a non-empty subset of "
                             f"{', '.join(PARALLEL_SITES)}; got {self.parallel_sites!r}")
        if self.placement != "parallel" and sites != ("ffn",):
            raise ValueError("adapter: parallel_sites applies to placement='parallel' only; "
                             "set placement='parallel' or drop parallel_sites")
        self.parallel_sites = sites
        if self.placement not in PLACEMENTS:
            raise ValueError(f"adapter: placement must be one of {', '.join(PLACEMENTS)}; "
                             f"got {self.placement!r}")
        check_number("adapter", "parallel_scale", self.parallel_scale, 0, MAX_SCALE)
        check_positive_int("adapter", "width", self.width)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"adapter: activation must be one of {', '.join(ACTIVATIONS)}; "
                             f"got {self.activation!r}")
        self.towers = check_towers("adapter", self.towers)
        # zero would leave W_down = W_up = 0: no gradient ever reaches the weights; a standard
        # deviation above MAX_INIT_SCALE only saturates the bottleneck (1e300: inf weights)
        check_number("adapter", "init_scale", self.init_scale, 0, MAX_INIT_SCALE)


class Bottleneck(nn.Module):
    """``h -> W_up act(W_down h + b_down) + b_up`` (the residual is added by the wrapper)."""

    def __init__(self, d: int, width: int, activation: str = "gelu", init_scale: float = 1e-3,
                 dtype: torch.dtype | None = None, device=None, d_in: int | None = None):
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
            raise ValueError("parallel adapter: the feed-forward input was not seen before its output "
                             "projection ran; this architecture's ffn_in / ffn_out sites do not pair")
        return self.base_layer(*args, **kwargs) + self.scale * self.adapter(x)


def _output_width(name: str, module: nn.Module) -> int:
    """``d`` of a linear-like module (``nn.Linear.out_features``, transformers ``Conv1D.nf``)."""
    d = output_width(module, kinds=("out_features", "nf"))
    if d is None:
        raise ValueError(f"adapter: cannot tell the output width of {name} ({type(module).__name__}); "
                         "expected nn.Linear or transformers Conv1D")
    return d


def apply_adapter(model: nn.Module, config: AdapterConfig, arch: ArchSpec,
                  stage: int = 1) -> nn.Module:
    """Wrap every ``attn_out`` and ``ffn_out`` module of ``config.towers`` in place."""
    root = unwrap_model(model)
    if config.placement == "parallel":
        from repspace.methods.adapter.parallel import apply_parallel

        apply_parallel(root, config, arch)
        return model
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
                      "arXiv:1902.00751",
                facts=MethodFacts(default_lr=1e-3, color="#E69F00", marker="^", hidden_modules=("adapters", "adapter"), order=30))
