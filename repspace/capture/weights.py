"""The weight matrices a tuned model actually applies, beside the base model's.

For every linear map of the base model (``nn.Linear``; transformers' ``Conv1D``, whose
weight is stored transposed) the tuned model's *effective* weight at the same canonical
name (:func:`repspace.layer_table.canonical_modules`) is read:

* a plain module of the same class (full fine-tuning, or an untouched layer): its weight;
* a wrapper (a LoRA/DoRA/IA³/LoHa/LoKr/VeRA layer of peft, or any module that replaced the
  linear map): *probed*.  Its forward is applied, in float64 on a copy, in eval mode, to the
  unit vectors: Wᵀ = f(I) − f(0).  That needs no knowledge of the adapter's internals and
  equals what the model computes.  Before that, the wrapper is checked to be linear
  (f(a x + b y) − f(0) = a (f(x) − f(0)) + b (f(y) − f(0)) to 1e-9); a non-linear wrapper (a
  bottleneck adapter around the layer) has no weight update and is reported as such.

Matrices are compared in the base's layout, (out_features, in_features).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from repspace.capture.model_view import model_view

__all__ = ["MatrixPair", "weight_pairs", "linear_weight"]

PROBE_CHUNK = 1024  # unit vectors per probing forward (memory: chunk x out floats)


def _is_conv1d(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def linear_weight(module: nn.Module) -> torch.Tensor | None:
    """A plain linear map's weight as (out, in), or ``None`` if ``module`` is not one."""
    if type(module) is nn.Linear:
        return module.weight.detach()
    if _is_conv1d(module):
        return module.weight.detach().T
    return None


@dataclass
class MatrixPair:
    """One linear map: ``base`` and ``tuned`` effective weights (out, in), float64 (tuned is
    ``None`` when the tuned model's module is not linear: ``note`` says why)."""

    name: str
    base: torch.Tensor
    tuned: torch.Tensor | None
    route: str  # "weights" (read) or "probed" (wrapper's forward) or "nonlinear"
    note: str = ""
    eps: float = float(torch.finfo(torch.float64).eps)  # unit round-off of the stored weights


def _probe(module: nn.Module, d_in: int, name: str) -> tuple[torch.Tensor | None, str]:
    """``(Wᵀ (in, out) float64, "")``, or ``(None, reason)`` for a non-linear module."""
    twin = copy.deepcopy(module).double().eval()
    try:
        with torch.no_grad():
            zero = twin(torch.zeros(1, d_in, dtype=torch.float64))
            g = torch.Generator().manual_seed(0)
            x, y = torch.randn(2, d_in, generator=g, dtype=torch.float64)
            fx, fy = twin(x[None]) - zero, twin(y[None]) - zero
            mixed = twin((0.7 * x - 1.3 * y)[None]) - zero
            scale = max(float(fx.abs().max()), float(fy.abs().max()), 1e-300)
            if float((mixed - (0.7 * fx - 1.3 * fy)).abs().max()) > 1e-9 * scale:
                return (
                    None,
                    "not a linear map (e.g. a bottleneck adapter): no weight update to compare",
                )
            rows = []
            for start in range(0, d_in, PROBE_CHUNK):
                eye = torch.eye(d_in, dtype=torch.float64)[start : start + PROBE_CHUNK]
                rows.append(twin(eye) - zero)
    except Exception as exc:  # noqa: BLE001 - a wrapper that cannot be called on plain rows
        return None, f"cannot be probed with plain input rows ({type(exc).__name__}: {exc})"
    return torch.cat(rows).reshape(d_in, -1), ""


def weight_pairs(
    base: nn.Module, tuned: nn.Module, names: list[str] | None = None
) -> list[MatrixPair]:
    """Every linear map of ``base`` (or those in ``names``) with ``tuned``'s effective weight.

    Raises ``ValueError`` naming the layer when ``tuned`` lacks a base linear map or its
    effective weight has another shape."""
    base_mods, tuned_mods = model_view(base).modules, model_view(tuned).modules
    wanted = list(base_mods) if names is None else list(names)
    out: list[MatrixPair] = []
    for name in wanted:
        bm = base_mods.get(name)
        w0 = None if bm is None else linear_weight(bm)
        if w0 is None:
            if names is not None:
                raise ValueError(f"layer {name!r} is not a linear map of the base model")
            continue
        tm = tuned_mods.get(name)
        if tm is None:
            raise ValueError(
                f"layer {name!r}: the tuned model has no module there; are base and "
                "tuned the same architecture?"
            )
        eps = float(torch.finfo(w0.dtype).eps)
        w0 = w0.double().cpu()
        w1 = linear_weight(tm)
        if w1 is not None and type(tm) is type(bm):
            if tuple(w1.shape) != tuple(w0.shape):
                raise ValueError(
                    f"layer {name!r}: the tuned model maps {w1.shape[1]} -> "
                    f"{w1.shape[0]} features, the base {w0.shape[1]} -> "
                    f"{w0.shape[0]} (another width)"
                )
            eps = max(eps, float(torch.finfo(w1.dtype).eps))
            out.append(MatrixPair(name, w0, w1.double().cpu(), "weights", eps=eps))
            continue
        wt, note = _probe(tm, w0.shape[1], name)
        if wt is None:
            out.append(MatrixPair(name, w0, None, "nonlinear", note, eps))
            continue
        w1 = wt.T.contiguous()
        if w1.shape != w0.shape:
            raise ValueError(
                f"layer {name!r}: the tuned model maps {w1.shape[1]} -> {w1.shape[0]} "
                f"features, the base {w0.shape[1]} -> {w0.shape[0]}"
            )
        out.append(MatrixPair(name, w0, w1, "probed", eps=eps))
    return out
