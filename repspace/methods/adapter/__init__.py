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
:mod:`repspace.layer_table`, so layer names do not shift).  Trainable parameters are named
``<target>.adapter.down.{weight,bias}`` and ``<target>.adapter.up.{weight,bias}``; the
backbone's become ``<target>.base_layer.*``.  Nothing else's ``requires_grad`` is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from repspace._constraints import Interval, Options, SettingError
from repspace.layer_table import unwrap_model
from repspace.methods.adapter.modules import (
    ACTIVATIONS,
    AdapterWrapped,
    Bottleneck,
    ParallelAdapterWrapped,
    bottleneck_for,
)
from repspace.methods.adapter.parallel import PARALLEL_SITES, apply_parallel
from repspace.methods.architectures import ArchSpec, site_modules
from repspace.methods.base import (
    SIZE,
    TOWERS,
    MethodConfig,
    MethodFacts,
    names,
    register_method,
    subset_of,
)

__all__ = [
    "AdapterConfig",
    "Bottleneck",
    "AdapterWrapped",
    "ParallelAdapterWrapped",
    "apply_adapter",
    "ACTIVATIONS",
    "PLACEMENTS",
]

PLACEMENTS = ("sequential", "parallel")
MAX_INIT_SCALE = 10.0  # standard deviation of W_down's initialisation (default 1e-3)
MAX_SCALE = 1000.0  # multiplier of the parallel adapter's output (He et al.: 4)


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
    _constraints: ClassVar = {
        "width": [SIZE],
        "activation": [Options(*ACTIVATIONS)],
        "towers": [TOWERS],
        # zero would leave W_down = W_up = 0: no gradient ever reaches the weights; a standard
        # deviation above MAX_INIT_SCALE only saturates the bottleneck (1e300: inf weights)
        "init_scale": [Interval(float, 0, MAX_INIT_SCALE, closed="right")],
        "placement": [Options(*PLACEMENTS)],
        "parallel_scale": [Interval(float, 0, MAX_SCALE, closed="right")],
        "parallel_sites": [subset_of(PARALLEL_SITES, unique=True)],
    }

    def __post_init__(self):
        super().__post_init__()
        self.towers, self.parallel_sites = names(self.towers), names(self.parallel_sites)
        if self.placement != "parallel" and self.parallel_sites != ("ffn",):
            raise SettingError(
                "parallel_sites",
                self.parallel_sites,
                "left out unless placement='parallel' (it places parallel adapters only)",
                type(self).__name__,
            )


def apply_adapter(
    model: nn.Module, config: AdapterConfig, arch: ArchSpec, stage: int = 1
) -> nn.Module:
    """Wrap every ``attn_out`` and ``ffn_out`` module of ``config.towers`` in place."""
    root = unwrap_model(model)
    if config.placement == "parallel":
        apply_parallel(root, config, arch)
        return model
    targets = site_modules(root, arch, ("attn_out", "ffn_out"), config.towers, "adapter")
    for name, module in targets:
        adapter = bottleneck_for(name, module, config)
        parent_name, _, child = name.rpartition(".")
        setattr(root.get_submodule(parent_name), child, AdapterWrapped(module, adapter))
    return model


register_method(
    "adapter",
    AdapterConfig,
    apply_adapter,
    "Houlsby adapter: residual bottleneck after attention and feed-forward outputs",
    paper="Houlsby et al. 2019, Parameter-Efficient Transfer Learning for NLP, arXiv:1902.00751",
    facts=MethodFacts(
        default_lr=1e-3,
        color="#E69F00",
        marker="^",
        hidden_modules=("adapters", "adapter"),
        order=30,
    ),
)
