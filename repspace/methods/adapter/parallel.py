"""The parallel adapter (He et al. 2022, "Towards a Unified View of Parameter-Efficient Transfer
Learning", arXiv 2110.04366): a bottleneck *beside* a sublayer instead of after it.

It reads the sublayer's input ``x`` and its scaled output is added to the sublayer's output,
``sublayer(x) + s * W_up act(W_down x)`` (``s = parallel_scale``).  Sublayers
(``AdapterConfig.parallel_sites``):

- ``"ffn"``: beside each feed-forward sublayer -- input of its first projection (``ffn_in``),
  output added to its last (``ffn_out``); He et al.'s best placement;
- ``"attention"``: beside each attention sublayer -- input of its *query* projection (the
  hidden states the sublayer attends from; a cross-attention's keys and values read another
  sequence, so they are never the source), output added to its output projection
  (``attn_out``).

The input is stashed by a forward pre-hook on the source module and consumed by the wrapped
output module (:class:`~repspace.methods.adapter.modules.ParallelAdapterWrapped`), so both run in the
sublayer's own forward and nothing about the block's code changes.
"""

from __future__ import annotations

from torch import nn

from repspace.methods.adapter.modules import (
    ParallelAdapterWrapped,
    bottleneck_for,
)
from repspace.methods.architectures import ArchSpec, site_modules

__all__ = ["PARALLEL_SITES", "apply_parallel"]

# sublayer -> (site whose input feeds the adapter, site whose output it is added to)
PARALLEL_SITES = {"ffn": ("ffn_in", "ffn_out"), "attention": ("query_value", "attn_out")}
# last path component of a query projection (or of a fused q/k/v projection)
_QUERY_NAMES = ("q", "query", "q_proj", "qkv", "c_attn", "Wqkv", "qkv_proj", "in_proj")


def _input_width(name: str, module: nn.Module) -> int:
    for attr in ("in_features", "nx"):
        d = getattr(module, attr, None)
        if isinstance(d, int):
            return d
    base = getattr(module, "base_layer", None)  # peft-wrapped (PT-PEFT, LoRA on the source)
    if base is not None:
        return _input_width(name, base)
    raise ValueError(
        f"adapter: cannot tell the input width of {name} ({type(module).__name__}); "
        "expected nn.Linear or transformers Conv1D"
    )


def _common_depth(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.split("."), b.split(".")):
        if x != y:
            break
        n += 1
    return n


def _source(name: str, ins: list[tuple[str, nn.Module]], sublayer: str) -> tuple[str, nn.Module]:
    """The input module of the sublayer whose output module is ``name``: the candidate sharing
    the longest path with it (Llama's gate_proj and up_proj read the same input; either will
    do), among query projections only for attention."""
    cands = (
        ins if sublayer == "ffn" else [t for t in ins if t[0].rsplit(".", 1)[-1] in _QUERY_NAMES]
    )
    parts = name.split(".")
    layer = max((i for i, p in enumerate(parts) if p.isdigit()), default=len(parts))
    best = max(cands, key=lambda t: _common_depth(t[0], name), default=None)
    if best is None or _common_depth(best[0], name) <= layer:  # not even the same block
        what = "feed-forward input" if sublayer == "ffn" else "attention query"
        raise ValueError(
            f"adapter: no {what} projection beside {name}; parallel placement "
            f"({sublayer}) needs its input and output modules in the same sublayer"
        )
    return best


def apply_parallel(root: nn.Module, config, arch: ArchSpec) -> None:
    """One parallel adapter per sublayer of ``config.parallel_sites`` in ``config.towers``."""
    for sublayer in config.parallel_sites:
        in_site, out_site = PARALLEL_SITES[sublayer]
        outs = site_modules(root, arch, (out_site,), config.towers, "adapter")
        ins = site_modules(root, arch, (in_site,), config.towers, "adapter")
        for name, module in outs:
            src_name, src = _source(name, ins, sublayer)
            adapter = bottleneck_for(name, module, config, d_in=_input_width(src_name, src))
            wrapped = ParallelAdapterWrapped(module, adapter, config.parallel_scale)
            src.register_forward_pre_hook(wrapped.stash, with_kwargs=True)
            parent_name, _, child = name.rpartition(".")
            setattr(root.get_submodule(parent_name), child, wrapped)
