"""Weight space beside representation space: the spectrum of a weight update and its
intruder dimensions.

For one adapted or fine-tuned matrix with base weight W₀ (out × in) and tuned weight
W = W₀ + ΔW:

* the singular values σ of ΔW (float64 SVD), and from them
  - effective rank  exp(−Σ pᵢ log pᵢ), pᵢ = σᵢ / Σσⱼ   (Roy & Vetterli 2007),
  - stable rank     Σσᵢ² / σ₁²                          (Rudelson & Vershynin 2007),
  - numerical rank  #{σᵢ > tol},
  all over the σ above the resolution of ΔW, tol = max(out, in) · ε · max(σ₁(W₀), σ₁(W))
  (:func:`delta_resolution`: ΔW is a difference, so its round-off scales with the weights,
  ε being the stored weights' unit round-off); a LoRA update of rank r has at most r;
* the relative size ‖ΔW‖_F / ‖W₀‖_F;
* **intruder dimensions** (Shuttleworth, Jacob, Yang, Solar-Lezama, Ziegler, "LoRA vs Full
  Fine-tuning: An Illusion of Equivalence", 2024, Definition 1): a singular vector yⱼ among
  the top ``k`` (by singular value) of W is an intruder when
  maxᵢ |cos(yⱼ, xᵢ)| < ε over *all* singular vectors xᵢ of W₀.  Singular vectors are defined
  up to sign, hence the absolute value.  The paper uses the left singular vectors (the
  output space, columns of U); ``side="right"`` uses the input space.  LoRA tends to
  introduce intruder dimensions, full fine-tuning rarely does.

Every function takes float tensors or arrays and computes in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from repspace.metrics.spectrum import Spectrum, effective_rank, numerical_rank, stable_rank

__all__ = [
    "IntruderDimensions",
    "delta_resolution",
    "delta_spectrum",
    "intruder_dimensions",
    "weight_delta_summary",
]

_F64_EPS = float(np.finfo(np.float64).eps)


def _matrix(w, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w.detach())
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(
            f"{name} must be a non-empty 2-D weight matrix; got shape {tuple(t.shape)}"
        )
    if not torch.is_floating_point(t):
        raise ValueError(f"{name} must be floating point; got {t.dtype}")
    t = t.double().cpu()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} holds NaN or Inf; the weights are damaged")
    return t


def _unit_roundoff(*ws) -> float:
    """The coarsest unit round-off among the inputs' own dtypes (before the float64 upcast)."""
    eps = _F64_EPS
    for w in ws:
        dt = w.dtype if isinstance(w, torch.Tensor) else np.asarray(w).dtype
        if isinstance(dt, torch.dtype):
            eps = max(eps, float(torch.finfo(dt).eps)) if dt.is_floating_point else eps
        elif np.issubdtype(dt, np.floating):
            eps = max(eps, float(np.finfo(dt).eps))
    return eps


def delta_spectrum(delta) -> Spectrum:
    """The singular values of ΔW (descending, float64) as a :class:`Spectrum`, so the rank
    functions of :mod:`repspace.metrics.spectrum` apply with ``numpy.linalg.matrix_rank``'s
    tolerance σ₁ · max(out, in) · ε (ΔW is not centred: it is a linear map, not data)."""
    d = _matrix(delta, "delta")
    sv = torch.linalg.svdvals(d).numpy()
    return Spectrum(sv, d.shape[0], d.shape[1], "svd", _F64_EPS, bool(sv.size == 0 or sv[0] == 0))


@dataclass(frozen=True)
class IntruderDimensions:
    """``count`` of the top-``k`` tuned singular vectors whose best |cos| with any base
    singular vector is below ``threshold``; ``max_cos[j]`` is that best |cos| of vector j."""

    count: int
    max_cos: np.ndarray
    k: int
    threshold: float
    side: str


def intruder_dimensions(
    w_base, w_tuned, k: int = 10, threshold: float = 0.5, side: str = "left"
) -> IntruderDimensions:
    """Intruder dimensions of ``w_tuned`` against ``w_base`` (module docstring).

    ``k``: how many of the tuned matrix's top singular vectors are examined (capped at its
    rank dimension); ``threshold``: ε in (0, 1]; ``side``: ``"left"`` (U, output space, as
    in the paper) or ``"right"`` (V, input space).
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right'; got {side!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in (0, 1]; got {threshold!r}")
    w0, w1 = _matrix(w_base, "w_base"), _matrix(w_tuned, "w_tuned")
    if w0.shape != w1.shape:
        raise ValueError(f"w_base {tuple(w0.shape)} and w_tuned {tuple(w1.shape)} differ in shape")
    if side == "right":
        w0, w1 = w0.T, w1.T
    u0 = torch.linalg.svd(w0, full_matrices=False)[0]
    u1 = torch.linalg.svd(w1, full_matrices=False)[0][:, :k]
    best = (u1.T @ u0).abs().max(1).values.numpy()  # columns are unit vectors: |uᵀv| = |cos|
    return IntruderDimensions(
        int((best < threshold).sum()), best, int(u1.shape[1]), float(threshold), side
    )


def delta_resolution(w_base, w_tuned, eps: float | None = None) -> float:
    """Singular values of ΔW = W − W₀ at or below this are round-off, not update:

        tol = max(out, in) · ε · max(σ₁(W₀), σ₁(W))

    ``matrix_rank``'s tolerance for the matrices ΔW is computed from -- the difference
    cancels their leading digits, so its noise scales with ‖W‖, not with ‖ΔW‖.  ``ε``: the
    coarsest unit round-off of the stored weights (float32: 1.2e-7, bfloat16: 7.8e-3)."""
    w0, w1 = _matrix(w_base, "w_base"), _matrix(w_tuned, "w_tuned")
    eps = _unit_roundoff(w_base, w_tuned) if eps is None else float(eps)
    scale = max(
        float(torch.linalg.matrix_norm(w0, ord=2)), float(torch.linalg.matrix_norm(w1, ord=2))
    )
    return max(w0.shape) * eps * scale


def weight_delta_summary(
    w_base,
    w_tuned,
    k: int = 10,
    threshold: float = 0.5,
    side: str = "left",
    eps: float | None = None,
) -> dict[str, float]:
    """Every weight-space number of one matrix: ``delta_norm`` ‖ΔW‖_F, ``relative_delta``
    ‖ΔW‖_F / ‖W₀‖_F, ``delta_sigma_max``, ``delta_effective_rank``, ``delta_stable_rank``,
    ``delta_numerical_rank`` (over σ above :func:`delta_resolution`; NaN ranks when nothing
    is above it) and ``intruder_dimensions`` (count among the top ``k``) with
    ``min_max_cos`` (the most foreign direction's best |cos|).  ``eps``: the weights' unit
    round-off when they were upcast before (default: read from the inputs' dtypes)."""
    w0, w1 = _matrix(w_base, "w_base"), _matrix(w_tuned, "w_tuned")
    if w0.shape != w1.shape:
        raise ValueError(f"w_base {tuple(w0.shape)} and w_tuned {tuple(w1.shape)} differ in shape")
    tol = delta_resolution(w_base, w_tuned, eps)
    sp = delta_spectrum(w1 - w0)
    norm0 = float(torch.linalg.matrix_norm(w0))
    dnorm = float(np.sqrt((sp.singular_values**2).sum()))
    out = {
        "delta_norm": dnorm,
        "relative_delta": dnorm / norm0 if norm0 else float("nan"),
        "delta_sigma_max": float(sp.singular_values[0]) if sp.singular_values.size else 0.0,
    }
    if not (sp.singular_values > tol).any():
        out.update(
            delta_effective_rank=float("nan"),
            delta_stable_rank=float("nan"),
            delta_numerical_rank=0,
        )
    else:
        out.update(
            delta_effective_rank=effective_rank(sp, tol=tol),
            delta_stable_rank=stable_rank(sp, tol=tol),
            delta_numerical_rank=numerical_rank(sp, tol=tol),
        )
    intr = intruder_dimensions(w0, w1, k=k, threshold=threshold, side=side)
    out.update(intruder_dimensions=intr.count, min_max_cos=float(intr.max_cos.min()))
    return out
