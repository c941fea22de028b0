"""How a prefix gets into an attention module: :func:`attach` picks one of two routes.

1. **Attention-interface modules** (GPT-2, BERT, Llama/Mistral/Qwen2, CLIP, ViT, ...: their
   ``forward`` calls ``ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation,
   ...)``).  We register one attention function, ``"repspace_prefix"``, with
   ``transformers.AttentionInterface`` and give the module a thin config view that reports
   that implementation (every other attribute reads/writes through to the real config, and
   mask creation, which uses the *model's* config, is untouched).  The function prepends the
   module's prefix keys/values -- after RoPE and after the KV-cache update -- pads the mask
   (:func:`~repspace.methods.prefix.modules.prefix_mask`) and calls the real ``eager`` or
   ``sdpa`` implementation.  sdpa's implicit ``is_causal`` (mask ``None``) is replaced by an
   explicit mask: with more keys than queries it would align causality wrongly (and slice
   keys away).
2. **BLIP's hand-written attention** (text ``BlipTextSelfAttention``, vision
   ``BlipAttention``): the instance's class is swapped for a subclass whose ``forward`` is
   the original computation with the prefix concatenated (cross-attention calls fall
   through to the original).  The subclasses are importable, so deepcopy and pickle work.

Other attention classes raise a one-line ``ValueError``.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys

import torch
from torch import nn

from repspace.methods.kv_cache import pop_cache
from repspace.methods.prefix.modules import PrefixKV, prefix_mask

__all__ = [
    "attach",
    "attention_route",
    "ROUTE",
    "PrefixBlipTextSelfAttention",
    "PrefixBlipAttention",
]

ROUTE = "repspace_prefix"
_SUPPORTED_IMPLS = ("eager", "sdpa")


# --- route 1: transformers' attention interface ---------------------------------------------


class RoutedConfig:
    """An attention module's config that reports ``_attn_implementation == "repspace_prefix"``;
    everything else (reads and writes) goes to the real config ``base``."""

    def __init__(self, base):
        self.__dict__["_repspace_base"] = base

    @property
    def _attn_implementation(self) -> str:
        return ROUTE

    @property
    def repspace_base_implementation(self) -> str:
        return self.__dict__["_repspace_base"]._attn_implementation

    def __getattr__(self, name):
        if name.startswith("__") or name == "_repspace_base":  # copy/pickle probes
            raise AttributeError(name)
        return getattr(self.__dict__["_repspace_base"], name)

    def __setattr__(self, name, value):
        setattr(self.__dict__["_repspace_base"], name, value)


def _prefix_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *args,
    **kwargs,
):
    """Attention over ``[prefix; real]`` keys, through the model's real implementation.

    ``query``: ``(b, heads, q, head_dim)``; ``key``/``value``: ``(b, kv_heads, k, head_dim)``
    (real keys, already rotated and cache-extended); the prefix adds ``P`` positions in front.
    """
    prefix: PrefixKV = module.adapter_prefix
    impl = module.config.repspace_base_implementation
    if impl not in _SUPPORTED_IMPLS:
        raise ValueError(
            f"prefix-tuning runs on eager or sdpa attention; {type(module).__name__} uses "
            f"{impl!r}: load the model with attn_implementation='sdpa'"
        )
    if impl == "sdpa":
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        base_fn = ALL_ATTENTION_FUNCTIONS["sdpa"]
    else:
        base_fn = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
        if base_fn is None:
            raise ValueError(
                f"prefix-tuning: {type(module).__module__} has no eager_attention_forward; "
                "load the model with attn_implementation='sdpa'"
            )
    q_len, k_len = query.shape[2], key.shape[2]
    is_causal = kwargs.pop("is_causal", None)
    causal = False
    if attention_mask is None and impl == "sdpa":  # sdpa would apply causality implicitly
        wanted = is_causal if is_causal is not None else getattr(module, "is_causal", True)
        causal = bool(wanted) and q_len > 1
    pk, pv = prefix(key.shape[0], key)
    mask = prefix_mask(
        attention_mask,
        q_len,
        k_len,
        prefix.num_tokens,
        visible=not prefix.masked,
        causal=causal,
        device=query.device,
    )
    bias = kwargs.get("position_bias")
    if torch.is_tensor(bias) and bias.shape[-1] == k_len:  # T5: prefixes are position-free
        kwargs["position_bias"] = nn.functional.pad(bias, (prefix.num_tokens, 0))
    if impl == "eager" and mask is not None and mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=query.dtype, device=query.device).masked_fill(
            ~mask, torch.finfo(query.dtype).min
        )
    if impl == "sdpa":
        kwargs["is_causal"] = False  # causality, if any, is in the explicit mask now
    return base_fn(
        module, query, torch.cat([pk, key], 2), torch.cat([pv, value], 2), mask, *args, **kwargs
    )


@functools.cache
def _register_route() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ROUTE, _prefix_attention)


@functools.cache
def _uses_attention_interface(cls: type) -> bool:
    try:
        src = inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return False
    return "ALL_ATTENTION_FUNCTIONS" in src and "_attn_implementation" in src


# --- route 2: BLIP's hand-written attention -------------------------------------------------


def _blip_text_cls():
    from transformers.models.blip.modeling_blip_text import BlipTextSelfAttention

    return BlipTextSelfAttention


def _blip_vision_cls():
    from transformers.models.blip.modeling_blip import BlipAttention

    return BlipAttention


def _masked_scores(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return scores
    if mask.dtype == torch.bool:
        return scores.masked_fill(~mask.to(scores.device), torch.finfo(scores.dtype).min)
    return scores + mask.to(scores.device)


class PrefixBlipTextSelfAttention(_blip_text_cls()):
    """``BlipTextSelfAttention`` with ``adapter_prefix`` keys/values in its *self*-attention."""

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        *args,
        **kwargs,
    ):
        if encoder_hidden_states is not None:  # cross-attention: untouched
            return super().forward(
                hidden_states,
                attention_mask,
                encoder_hidden_states,
                encoder_attention_mask,
                *args,
                **kwargs,
            )
        from transformers.cache_utils import EncoderDecoderCache

        # the cache is the fifth argument, named past_key_values (<= 5.23) or cache (>= 5.24)
        cache = args[0] if args else pop_cache(kwargs)
        shape = (*hidden_states.shape[:-1], -1, self.attention_head_size)
        q = self.query(hidden_states).view(shape).transpose(1, 2)
        k = self.key(hidden_states).view(shape).transpose(1, 2)
        v = self.value(hidden_states).view(shape).transpose(1, 2)
        if cache is not None:
            if isinstance(cache, EncoderDecoderCache):
                cache = cache.self_attention_cache
            k, v = cache.update(k, v, self.layer_idx)
        prefix: PrefixKV = self.adapter_prefix
        pk, pv = prefix(k.shape[0], k)
        mask = prefix_mask(
            attention_mask,
            q.shape[2],
            k.shape[2],
            prefix.num_tokens,
            visible=not prefix.masked,
            device=q.device,
        )
        k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.attention_head_size)
        probs = nn.Softmax(dim=-1)(_masked_scores(scores, mask))
        context = torch.matmul(self.dropout(probs), v).permute(0, 2, 1, 3).contiguous()
        return context.view(*context.shape[:-2], self.all_head_size), probs


class PrefixBlipAttention(_blip_vision_cls()):
    """BLIP vision ``BlipAttention`` (fused ``qkv``, no mask) with ``adapter_prefix``."""

    def forward(self, hidden_states, **kwargs):
        b, t, d = hidden_states.shape
        qkv = self.qkv(hidden_states).reshape(b, t, 3, self.num_heads, d // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        prefix: PrefixKV = self.adapter_prefix
        pk, pv = prefix(b, k)
        mask = prefix_mask(
            None, t, t, prefix.num_tokens, visible=not prefix.masked, device=q.device
        )
        k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        probs = nn.functional.softmax(_masked_scores(scores, mask), dim=-1)
        context = (
            torch.matmul(self.dropout(probs), v).permute(0, 2, 1, 3).reshape(b, t, self.embed_dim)
        )
        return self.projection(context), probs


# --- dispatch --------------------------------------------------------------------------------


def attention_route(module: nn.Module) -> str:
    """``"blip_text"``, ``"blip_vision"`` or ``"interface"`` (ValueError if unsupported)."""
    cls = type(module)
    if cls is _blip_text_cls() or cls is PrefixBlipTextSelfAttention:
        return "blip_text"
    if cls is _blip_vision_cls() or cls is PrefixBlipAttention:
        return "blip_vision"
    if _uses_attention_interface(cls) and hasattr(module, "config"):
        return "interface"
    raise ValueError(
        f"prefix-tuning is not implemented for {cls.__name__} attention "
        "(neither BLIP's nor transformers' attention interface)"
    )


def kv_layout(module: nn.Module) -> tuple[int, int]:
    """``(kv_heads, head_dim)`` of an attention module's keys."""
    route = attention_route(module)
    if route == "blip_text":
        return module.num_attention_heads, module.attention_head_size
    if route == "blip_vision":
        return module.num_heads, module.head_dim
    cfg = module.config
    head_dim = (
        getattr(module, "head_dim", None)
        or getattr(module, "attention_head_size", None)
        or getattr(module, "key_value_proj_dim", None)
    )  # T5
    heads = (
        getattr(module, "num_heads", None)
        or getattr(module, "num_attention_heads", None)
        or getattr(module, "n_heads", None)
        or cfg.num_attention_heads
    )
    kv_heads = heads // getattr(module, "num_key_value_groups", 1)
    if not isinstance(head_dim, int) or not isinstance(kv_heads, int) or kv_heads < 1:
        raise ValueError(
            f"prefix-tuning: cannot tell the key layout of {type(module).__name__} "
            "(no head_dim/attention_head_size or head count)"
        )
    return kv_heads, head_dim


def attach(module: nn.Module, prefix: PrefixKV) -> None:
    """Make ``module`` attend over ``prefix`` too (``module.adapter_prefix = prefix``)."""
    if hasattr(module, "adapter_prefix"):
        raise ValueError(
            f"prefix-tuning: {type(module).__name__} already has a prefix; apply it once"
        )
    route = attention_route(module)
    module.adapter_prefix = prefix
    if route == "blip_text":
        module.__class__ = PrefixBlipTextSelfAttention
    elif route == "blip_vision":
        module.__class__ = PrefixBlipAttention
    else:
        _register_route()
        impl = module.config._attn_implementation
        if impl not in _SUPPORTED_IMPLS:
            del module.adapter_prefix
            raise ValueError(
                f"prefix-tuning runs on eager or sdpa attention; {type(module).__name__} "
                f"uses {impl!r}: load the model with attn_implementation='sdpa'"
            )
        module.config = RoutedConfig(module.config)
