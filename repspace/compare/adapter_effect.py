"""Where an adapter acts: per adapted module, how large the adapter's contribution is against
the frozen path's, sample by sample.

For a module wrapped by an adapter (a peft tuner layer: LoRA, DoRA, IA³, LoHa, LoKr, VeRA,
... -- anything holding the original under ``base_layer``), with h = base_layer(x) the
frozen path's output and y the wrapper's output on the same input, Δh = y − h and, per probe
sample s over its valid token positions t (the attention mask; every position for streams
the mask does not describe, such as image patches),

    r_s = sqrt(Σ_t ‖Δh_{s,t}‖²) / sqrt(Σ_t ‖h_{s,t}‖²)

-- the relative size of the adapter branch.  One forward of the tuned model gives both h and
y (forward hooks on the wrapper and on its ``base_layer``): no second model, no second pass.
The distribution of r_s over the probe is summarised exactly (mean, min, max, n) with
histogram quantiles (q05..q95, resolution 1 % in log scale) as in ``paired_drift``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from repspace.capture.model_view import model_view
from repspace.statistics.drift_stats import REL_EDGES, StreamingSummary

__all__ = ["adapted_modules", "adapter_effect"]


def adapted_modules(model: nn.Module) -> dict[str, nn.Module]:
    """``{canonical name: wrapper}`` of every module that holds its original as ``base_layer``."""
    return {
        name: m
        for name, m in model_view(model).modules.items()
        if isinstance(getattr(m, "base_layer", None), nn.Module)
    }


def _first_tensor(out):
    if torch.is_tensor(out):
        return out
    if isinstance(out, (tuple, list)) and out and torch.is_tensor(out[0]):
        return out[0]
    return None


def _ratios(h: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> np.ndarray:
    """r_s of one batch: h, y (b, ..., d); mask (b, t) applied when dim 1 is that t."""
    h, y = h.detach().double(), y.detach().double()
    d2, h2 = (y - h).pow(2), h.pow(2)
    if h.ndim >= 3:
        d2, h2 = d2.sum(-1), h2.sum(-1)  # per position
        if mask is not None and h.ndim == 3 and mask.shape == d2.shape:
            m = mask.to(d2.device, d2.dtype)
            d2, h2 = d2 * m, h2 * m
        d2, h2 = d2.flatten(1).sum(1), h2.flatten(1).sum(1)
    elif h.ndim == 2:
        d2, h2 = d2.sum(-1), h2.sum(-1)
    else:
        return np.full(h.shape[:1], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(h2.cpu().numpy() > 0, np.sqrt(d2.cpu().numpy() / h2.cpu().numpy()), np.nan)


def adapter_effect(
    model: nn.Module,
    batches: Iterable[Mapping[str, object]],
    device: str | torch.device | None = None,
    progress: bool = False,
) -> dict[str, dict]:
    """``{module: summary of r_s}`` over every sample of ``batches`` (model inputs).

    ``model``: the tuned model with its adapters active (a ``PeftModel`` or a model with
    injected tuner layers).  Raises ``ValueError`` when it has no adapted module; a module
    the inputs never reach has ``n == 0`` and NaN statistics."""
    wrappers = adapted_modules(model)
    if not wrappers:
        raise ValueError(
            f"{type(model).__name__}: no adapted module (a tuner layer holding its "
            "original as base_layer); the adapter-effect analysis needs a PEFT adapter"
        )
    stats = {name: StreamingSummary(REL_EDGES) for name in wrappers}
    frozen: dict[str, torch.Tensor] = {}
    state: dict[str, torch.Tensor | None] = {"mask": None}
    handles = []

    def on_base(name):
        def hook(module, args, out):
            t = _first_tensor(out)
            if t is not None:
                frozen[name] = t

        return hook

    def on_wrapper(name):
        def hook(module, args, out):
            y, h = _first_tensor(out), frozen.pop(name, None)
            if y is not None and h is not None and h.shape == y.shape:
                stats[name].update(_ratios(h, y, state["mask"]))

        return hook

    for name, m in wrappers.items():
        handles.append(m.base_layer.register_forward_hook(on_base(name)))
        handles.append(m.register_forward_hook(on_wrapper(name)))
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in tqdm(batches, desc="adapter effect", unit="batch", disable=not progress):
                on_dev = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in batch.items()}
                state["mask"] = on_dev.get("attention_mask")
                model(**on_dev)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    # a module the inputs never reach (e.g. a vision adapter under a text-only probe) keeps
    # n = 0 and NaN statistics: "no data", never a number
    return {name: dict(s.summary()) for name, s in stats.items()}
