"""The trainable parts of prefix-tuning and the attention-mask arithmetic they need.

* :class:`PrefixKV` -- one per targeted self-attention module (attribute ``adapter_prefix``):
  yields that layer's prefix keys and values, each ``(batch, kv_heads, P, head_dim)``.
* :class:`PrefixEncoder` -- Li & Liang's optional MLP reparameterisation, one per tower,
  shared by all its layers: ``E (P x d) -> tanh(E W1 + b1) W2 + b2 -> (P, layers * 2 * d)``.
* :func:`extend_mask` / :func:`prefix_mask` -- pad an attention mask so every query sees the
  ``P`` prefix positions (which come *first* along the key axis) and nothing else changes.

Prefix keys are position-free: they are concatenated after rotary embeddings were applied
to the real keys, and after the KV cache was updated (the cache only ever holds real keys,
so cached generation works unchanged).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PrefixKV", "PrefixEncoder", "extend_mask", "prefix_mask"]

INIT_STD = 0.02  # direct prefixes: N(0, 0.02^2), the usual transformers initializer_range


class PrefixEncoder(nn.Module):
    """MLP reparameterisation of one tower's prefixes (Li & Liang 2021, sec. 4.3).

    ``embedding``: ``(P, d)``; ``down``: ``d -> hidden``; ``up``: ``hidden -> layers * 2 * d``
    where ``d = kv_heads * head_dim``.  Layer ``l``'s keys and values are rows
    ``[2 l d, 2 (l + 1) d)`` of ``up``'s output; :meth:`layer` computes only that slice, which
    equals slicing the full MLP output.
    """

    def __init__(
        self,
        num_tokens: int,
        kv_dim: int,
        hidden: int,
        num_layers: int,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        super().__init__()
        self.kv_dim, self.num_layers = kv_dim, num_layers
        self.embedding = nn.Parameter(torch.randn(num_tokens, kv_dim, dtype=dtype, device=device))
        self.down = nn.Linear(kv_dim, hidden, dtype=dtype, device=device)
        self.up = nn.Linear(hidden, num_layers * 2 * kv_dim, dtype=dtype, device=device)

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(keys, values)`` of layer ``index``, each ``(P, kv_dim)``."""
        h = torch.tanh(self.down(self.embedding))
        rows = slice(2 * index * self.kv_dim, 2 * (index + 1) * self.kv_dim)
        kv = nn.functional.linear(h, self.up.weight[rows], self.up.bias[rows])
        return kv[:, : self.kv_dim], kv[:, self.kv_dim :]


class PrefixKV(nn.Module):
    """Prefix keys/values of one self-attention layer.

    Without reparameterisation it owns ``key`` and ``value``, each ``(P, kv_heads * head_dim)``
    (``2 P kv_heads head_dim`` trainable parameters).  With it, it reads layer ``index`` of a
    :class:`PrefixEncoder` registered elsewhere (on the model root), kept as a plain
    reference so its parameters are counted and saved once.

    ``masked = True`` keeps the prefix in the computation but hides it from every query
    (its mask entries become "blocked"): the layer then computes exactly the base attention.
    Used by tests and ablations.
    """

    def __init__(
        self,
        num_tokens: int,
        kv_heads: int,
        head_dim: int,
        *,
        encoder: PrefixEncoder | None = None,
        index: int = 0,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        super().__init__()
        self.num_tokens, self.kv_heads, self.head_dim = num_tokens, kv_heads, head_dim
        self.index = index
        self.masked = False
        self.__dict__["_encoder"] = encoder  # not a sub-module: registered once, on the root
        if encoder is None:
            shape = (num_tokens, kv_heads * head_dim)
            self.key = nn.Parameter(torch.randn(shape, dtype=dtype, device=device) * INIT_STD)
            self.value = nn.Parameter(torch.randn(shape, dtype=dtype, device=device) * INIT_STD)

    def extra_repr(self) -> str:
        return (
            f"num_tokens={self.num_tokens}, kv_heads={self.kv_heads}, head_dim={self.head_dim}"
            f"{', reparameterized' if self._encoder is not None else ''}"
        )

    def forward(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(keys, values)``, each ``(batch, kv_heads, P, head_dim)`` in ``like``'s dtype/device."""
        if self._encoder is not None:
            k, v = self._encoder.layer(self.index)
        else:
            k, v = self.key, self.value
        shape = (1, self.num_tokens, self.kv_heads, self.head_dim)
        k, v = (
            x.to(dtype=like.dtype, device=like.device)
            .reshape(shape)
            .transpose(1, 2)
            .expand(batch, -1, -1, -1)
            for x in (k, v)
        )
        if k.shape[1] != like.shape[1] or k.shape[-1] != like.shape[-1]:
            raise ValueError(
                f"prefix: keys of this layer have shape {tuple(like.shape)} (batch, heads, "
                f"tokens, head_dim) but the prefix was built for {self.kv_heads} heads of "
                f"{self.head_dim}; the attention class is not laid out as repspace assumed"
            )
        return k, v


def extend_mask(mask: torch.Tensor, num_tokens: int, visible: bool = True) -> torch.Tensor:
    """Prepend ``num_tokens`` key positions to an attention mask ``(..., q, k)`` (bool: True =
    attend; float: additive, 0 = attend).  ``visible`` decides whether queries see them."""
    shape = (*mask.shape[:-1], num_tokens)
    if mask.dtype == torch.bool:
        pad = torch.full(shape, visible, dtype=torch.bool, device=mask.device)
    elif mask.is_floating_point():
        fill = 0.0 if visible else torch.finfo(mask.dtype).min
        pad = torch.full(shape, fill, dtype=mask.dtype, device=mask.device)
    else:
        raise ValueError(
            f"prefix: cannot extend an attention mask of dtype {mask.dtype}; expected a "
            "bool or additive float mask (batch, 1, queries, keys)"
        )
    return torch.cat([pad, mask], dim=-1)


def prefix_mask(
    mask: torch.Tensor | None,
    q_len: int,
    k_len: int,
    num_tokens: int,
    *,
    visible: bool = True,
    causal: bool = False,
    device=None,
) -> torch.Tensor | None:
    """The mask for keys ``[prefix (P), real (k_len)]``.

    ``mask`` is the base model's mask over the real keys (``None``: no masking, or implicit
    causality when ``causal``).  An implicit causal mask is made explicit, aligned to the
    *end* (query ``i`` is real position ``k_len - q_len + i``, as with a KV cache), because
    once prefix keys are prepended a kernel's own ``is_causal`` would align it wrongly.
    Returns ``None`` only when nothing needs masking.
    """
    if mask is not None:
        return extend_mask(mask, num_tokens, visible)
    if not causal and visible:
        return None
    if causal:
        i = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
        real = i >= torch.arange(k_len, device=device)[None, :]
    else:
        real = torch.ones(1, k_len, dtype=torch.bool, device=device)
    return extend_mask(real[None, None], num_tokens, visible)
