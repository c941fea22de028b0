"""Reduce token states ``(b, t, d)`` to metric rows, respecting the attention mask.

Modes
-----
``mean``     masked mean over valid tokens -> ``(b, d)``
``first``    first valid token (left padding aware) -> ``(b, d)``
``cls``      position 0 (CLS / ViT class token) -> ``(b, d)``
``last``     last valid token (causal LMs) -> ``(b, d)``
``tokens``   every valid token -> ``(n_valid, d)``, optionally at most ``max_tokens``
             per sample drawn without replacement with a seed fixed by
             ``(seed, batch index)`` — identical for base and tuned, since their masks
             agree after virtual tokens are stripped, so rows stay paired.
``none``     no pooling: ``(b, t, d)`` as captured (disk sink only).

``modality`` (LLaVA-style models, image features inside the text sequence):
``"auto"``/``"text"`` pool text tokens only, ``"image"`` image-placeholder positions
only, ``"all"`` both (see :func:`repspace.capture.tokens.align_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["POOLING_MODES", "Pooling", "pool_states"]

POOLING_MODES = ("mean", "first", "cls", "last", "tokens", "none")


@dataclass(frozen=True)
class Pooling:
    """How to turn a layer's token states into rows.  See the module docstring."""

    mode: str = "mean"
    max_tokens: int | None = None
    seed: int = 0
    modality: str = "auto"

    def __post_init__(self):
        if self.mode not in POOLING_MODES:
            raise ValueError(
                f"pooling must be one of {', '.join(POOLING_MODES)}; got {self.mode!r}"
            )
        if self.modality not in ("auto", "text", "image", "all"):
            raise ValueError(f"modality must be auto, text, image or all; got {self.modality!r}")
        if self.max_tokens is not None:
            if self.mode != "tokens":
                raise ValueError("max_tokens only applies to pooling='tokens'")
            if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
                raise ValueError(f"max_tokens must be a positive integer; got {self.max_tokens!r}")

    @classmethod
    def of(cls, spec: "str | Pooling") -> "Pooling":
        return spec if isinstance(spec, Pooling) else cls(spec)

    def describe(self) -> dict:
        return {
            "mode": self.mode,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "modality": self.modality,
        }


def _token_choice(valid: torch.Tensor, k: int, seed: int, batch_index: int) -> torch.Tensor:
    """Bool ``(b, t)``: at most ``k`` valid positions per row, uniformly, reproducibly."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + batch_index)
    scores = torch.rand(valid.shape, generator=gen).to(valid.device)
    scores = scores.masked_fill(~valid, -1.0)
    keep = min(k, valid.shape[1])
    top = scores.topk(keep, dim=1).indices
    chosen = torch.zeros_like(valid)
    chosen.scatter_(1, top, True)
    return chosen & valid


def pool_states(
    states: torch.Tensor,
    valid: torch.Tensor | None,
    pooling: Pooling,
    *,
    layer: str,
    batch_index: int = 0,
    sample_offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pool ``states (b, t, d)`` with validity mask ``valid (b, t)`` (``None``: all valid).

    Returns ``(rows, sample_index)``: ``rows`` is ``(b, d)`` (or ``(n_tokens, d)`` for
    ``tokens``, ``(b, t, d)`` for ``none``); ``sample_index`` gives each token row's
    global sample number for ``tokens`` and is ``None`` otherwise.
    """
    b, t, _ = states.shape
    mode = pooling.mode
    if mode == "none":
        return states, None
    if mode == "cls":
        return states[:, 0], None
    if valid is None:
        valid = torch.ones(b, t, dtype=torch.bool, device=states.device)
    counts = valid.sum(1)
    if bool((counts == 0).any()):
        bad = int((counts == 0).nonzero()[0]) + sample_offset
        raise ValueError(
            f"sample {bad} has no valid tokens at layer {layer!r} (all-zero "
            "attention mask); drop empty inputs before capturing"
        )
    if mode == "mean":
        # (b, 1, t) @ (b, t, d): one batched GEMM, no (b, t, d) temporary.
        w = valid.to(states.dtype)[:, None, :]
        return torch.bmm(w, states)[:, 0] / counts[:, None].to(states.dtype), None
    positions = torch.arange(t, device=states.device).expand(b, t)
    if mode == "first":
        idx = positions.masked_fill(~valid, t).amin(1)
        return states[torch.arange(b, device=states.device), idx], None
    if mode == "last":
        idx = positions.masked_fill(~valid, -1).amax(1)
        return states[torch.arange(b, device=states.device), idx], None
    # tokens
    chosen = (
        valid
        if pooling.max_tokens is None
        else _token_choice(valid, pooling.max_tokens, pooling.seed, batch_index)
    )
    rows = states[chosen]  # row-major: sample by sample, positions ascending
    sample = torch.arange(b, device=states.device)[:, None].expand(b, t)[chosen] + sample_offset
    return rows, sample
