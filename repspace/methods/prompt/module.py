"""The prompt-tuning module and the hooks that splice its vectors into a text model.

The *text model* ``M`` is the transformer that owns the text embeddings (BLIP's
``text_decoder.bert`` / ``text_encoder``, GPT-2's ``transformer``, BERT's ``bert``, a Llama
``model`` / LLaVA ``language_model``).  Around each call of ``M``:

* the forward pre-hook turns ``input_ids`` into ``inputs_embeds`` (``M``'s own word
  embedding), prepends the ``P`` prompt vectors, and prepends ``P`` ones to
  ``attention_mask`` (and zeros to ``token_type_ids``) -- so every real token attends to the
  prompt, and the model builds its causal/padding masks over ``P + t`` positions itself;
* positions: with absolute position embeddings (GPT-2, BERT, BLIP) the real tokens keep
  positions ``0 .. t-1`` and every prompt vector gets position 0's embedding (a constant
  the learned vector absorbs), so real tokens mean what they meant in the base model; with
  rotary embeddings (Llama) prompts take ``0 .. P-1`` and real tokens ``P .. P+t-1``, which
  leaves every real-real attention score unchanged (RoPE is relative);
* the forward hook drops the prompt positions from ``M``'s ``last_hidden_state`` (and a
  pre-hook does so before a pooler, so BERT still pools its CLS token).

Hence logits, labels and the loss keep the base model's shapes and meaning: nothing else
needs to grow, and the loss is over exactly the base model's targets.  Inside ``M`` (its
layers' outputs, ``output_hidden_states``) sequences are ``P + t`` long with the prompt
first; :func:`repspace.capture.tokens.num_virtual_tokens` reports ``P`` so capture strips it.
A KV cache cannot be extended (the prompt is re-prepended every call), hence
``repspace_generation_kwargs = {"use_cache": False}``.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from repspace.methods.kv_cache import get_cache, has_cached_tokens

__all__ = ["PromptEmbedding"]


def _as_kwargs(module: nn.Module, args: tuple, kwargs: dict) -> dict:
    """``args`` + ``kwargs`` of a call of ``module`` as one keyword dict."""
    if not args:
        return dict(kwargs)
    sig = inspect.signature(module.forward)
    bound = sig.bind_partial(*args, **kwargs)
    out = {}
    for name, value in bound.arguments.items():
        if sig.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif sig.parameters[name].kind is inspect.Parameter.VAR_POSITIONAL:
            raise ValueError(
                f"prompt: cannot place extra positional arguments of "
                f"{type(module).__name__}.forward; pass them by keyword"
            )
        else:
            out[name] = value
    return out


def _prepend_square(mask: torch.Tensor, p: int) -> torch.Tensor:
    """``(b, h, t, t)`` mask -> ``(b, h, p + t, p + t)``: every position sees the ``p`` prompt
    positions, prompt positions see only the prompt, real-real entries are unchanged."""
    b, h, q, k = mask.shape
    if mask.dtype == torch.bool:
        see, hide = True, False
    elif mask.is_floating_point():
        see, hide = 0.0, torch.finfo(mask.dtype).min
    else:
        raise ValueError(f"prompt: cannot extend a 4-D attention mask of dtype {mask.dtype}")
    out = torch.full((b, h, p + q, p + k), hide, dtype=mask.dtype, device=mask.device)
    out[..., :, :p] = see
    out[..., p:, p:] = mask
    return out


class PromptEmbedding(nn.Module):
    """``P`` learned input vectors (``weight``: ``(P, hidden)``) prepended to a text model's
    input; see the module docstring for the hooks that do it."""

    def __init__(self, weight: torch.Tensor, rotary: bool):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.rotary = rotary
        self.repspace_num_virtual_tokens = int(weight.shape[0])
        self.repspace_generation_kwargs = {"use_cache": False}

    @property
    def num_tokens(self) -> int:
        return self.weight.shape[0]

    def extra_repr(self) -> str:
        return f"num_tokens={self.num_tokens}, hidden={self.weight.shape[1]}, rotary={self.rotary}"

    # -- hooks (bound methods, so deepcopy of the model rebinds them to the copy) ----------
    def before_text_model(self, module: nn.Module, args: tuple, kwargs: dict):
        kw = _as_kwargs(module, args, kwargs)
        if has_cached_tokens(get_cache(kw)):
            raise ValueError(
                "prompt tuning re-prepends its virtual tokens on every call and cannot "
                "extend a KV cache; generate with use_cache=False "
                "(**repspace.methods.generation_kwargs(model))"
            )
        ids = kw.pop("input_ids", None)
        emb = kw.get("inputs_embeds")
        if emb is None:
            if ids is None:
                raise ValueError(
                    f"prompt: {type(module).__name__} got neither input_ids nor inputs_embeds"
                )
            emb = module.get_input_embeddings()(ids)
        b, t, p = emb.shape[0], emb.shape[1], self.num_tokens
        dev = emb.device
        kw["inputs_embeds"] = torch.cat([self.weight.to(emb.dtype).expand(b, -1, -1), emb], 1)
        mask = kw.get("attention_mask")
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.long, device=dev)
        if mask.ndim == 4 and mask.shape[-2] == mask.shape[-1] == t:  # PaliGemma's prefix-LM mask
            kw["attention_mask"] = _prepend_square(mask, p)
        elif mask.ndim != 2:
            raise ValueError(
                f"prompt tuning needs a 2-D attention_mask (batch, tokens) or a 4-D one "
                f"(batch, 1, tokens, tokens); got shape {tuple(mask.shape)}"
            )
        else:
            kw["attention_mask"] = torch.cat(
                [torch.ones(b, p, dtype=mask.dtype, device=dev), mask], 1
            )
        if "position_ids" in inspect.signature(module.forward).parameters or "position_ids" in kw:
            pos = kw.get("position_ids")
            if pos is None:
                pos = torch.arange(t, device=dev)[None]
            virt = torch.arange(p, device=dev) * int(self.rotary)  # absolute: all at position 0
            # multimodal RoPE (Qwen2-VL) has one row of positions per axis: (axes, batch, t)
            virt = virt.to(pos.dtype).expand(*pos.shape[:-1], p)
            kw["position_ids"] = torch.cat([virt, pos + p if self.rotary else pos], -1)
        tti = kw.get("token_type_ids")
        if tti is not None:
            zeros = torch.zeros(tti.shape[0], p, dtype=tti.dtype, device=dev)
            kw["token_type_ids"] = torch.cat([zeros, tti], 1)
        return (), kw

    def after_text_model(self, module: nn.Module, args: tuple, kwargs: dict, output):
        n = kwargs["attention_mask"].shape[-1]  # P + t, as set by before_text_model
        if isinstance(output, tuple):
            if torch.is_tensor(output[0]) and output[0].ndim == 3 and output[0].shape[1] == n:
                output = (output[0][:, self.num_tokens :], *output[1:])
            return output
        h = getattr(output, "last_hidden_state", None)
        if torch.is_tensor(h) and h.shape[1] == n:
            output.last_hidden_state = h[:, self.num_tokens :]
        return output

    def before_pooler(self, module: nn.Module, args: tuple):
        return (args[0][:, self.num_tokens :], *args[1:])
