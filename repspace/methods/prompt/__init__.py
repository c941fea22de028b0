"""Prompt tuning (Lester et al. 2021, arXiv 2104.08691), own implementation.

``P = num_virtual_tokens`` learned vectors in the word-embedding space are prepended to the
*text* input sequence only (the ``embeddings`` site of the ``text`` modality): the sequence
entering the first text block is ``[prompt (P); real tokens (t)]``.  The only trainable
parameter is the ``P x hidden`` prompt, at ``<text model>.adapter_prompt.weight``.

Which text model: BLIP captioning -> ``text_decoder.bert`` (the caption decoder); BLIP VQA ->
``text_encoder`` (the question; the answer decoder is left alone and cross-attends to the
question's real tokens); GPT-2 -> ``transformer``; BERT -> ``bert``; Llama -> ``model``;
LLaVA -> its language model (after the image features were merged into the sequence).
How the prompt is spliced in (masks, positions, outputs) is documented in
:mod:`repspace.methods.prompt.module`; in short the model's logits, labels and loss keep
the base shapes and meaning, and ``generate()`` needs ``use_cache=False``
(``repspace.methods.generation_kwargs(model)`` returns it).

``init="vocab"`` starts the prompt from ``P`` word-embedding rows drawn at random (Lester's
best init for small models, without their class-label refinement); ``"random"`` from
``N(0, s^2)`` with ``s`` the word embedding's standard deviation.  Both use torch's global
RNG (seed it for reproducibility).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from repspace.layer_table import unwrap_model
from repspace.methods.architectures import ArchSpec, find_modules
from repspace._constraints import Options
from repspace.methods.base import SIZE, MethodConfig, MethodFacts, register_method

__all__ = ["PromptConfig", "apply_prompt", "text_model_of", "PROMPT_INITS"]

PROMPT_INITS = ("vocab", "random")


@dataclass
class PromptConfig(MethodConfig):
    """Prompt tuning with ``num_virtual_tokens`` prepended vectors, initialised by ``init``."""

    method = "prompt"
    budget_field = "num_virtual_tokens"
    num_virtual_tokens: int = 10
    init: str = "vocab"
    _constraints: ClassVar = {"num_virtual_tokens": [SIZE], "init": [Options(*PROMPT_INITS)]}


def text_model_of(root: nn.Module, arch: ArchSpec) -> tuple[str, nn.Module]:
    """``(name, module)`` of the transformer owning the text embeddings (the parent of the
    ``embeddings`` site; with several, e.g. BLIP VQA's encoder and decoder, the one whose
    path does not say ``decoder``: the model's text *input*)."""
    if arch.text_input is not None:  # e.g. T5: the embedding is shared, the encoder is the input
        own = [n for n, _ in root.named_modules() if n and re.fullmatch(arch.text_input, n)]
        if own:
            return own[0], root.get_submodule(own[0])
    matches = find_modules(root, arch.pattern("embeddings", ("text",)), "text embeddings")
    if len(matches) > 1:
        matches = [m for m in matches if "decoder" not in m[0]] or matches
    parent = matches[0][0].rpartition(".")[0]
    module = root.get_submodule(parent)
    if not callable(getattr(module, "get_input_embeddings", None)):
        raise ValueError(
            f"prompt tuning is not implemented for {type(module).__name__} "
            f"({parent or 'root'}): it has no get_input_embeddings()"
        )
    return parent, module


def _initial_prompt(words: nn.Embedding, n: int, init: str) -> torch.Tensor:
    w = words.weight.detach()
    if init == "vocab":
        rows = torch.randint(0, w.shape[0], (n,))
        return w[rows.to(w.device)].clone()
    return torch.randn(n, w.shape[1], dtype=w.dtype, device=w.device) * w.float().std().to(w.dtype)


def apply_prompt(
    model: nn.Module, config: PromptConfig, arch: ArchSpec, stage: int = 1
) -> nn.Module:
    """Give the text model a trainable ``adapter_prompt`` and the hooks that prepend it, in place."""
    from repspace.methods.prompt.module import PromptEmbedding

    root = unwrap_model(model)
    _, text = text_model_of(root, arch)
    if any(isinstance(m, PromptEmbedding) for m in root.modules()):
        raise ValueError(
            f"prompt: {type(root).__name__} already has a prompt; apply prompt tuning once"
        )
    rotary = hasattr(text, "rotary_emb")
    prompt = PromptEmbedding(
        _initial_prompt(text.get_input_embeddings(), config.num_virtual_tokens, config.init), rotary
    )
    text.adapter_prompt = prompt
    text.register_forward_pre_hook(prompt.before_text_model, with_kwargs=True)
    text.register_forward_hook(prompt.after_text_model, with_kwargs=True)
    pooler = getattr(text, "pooler", None)
    if isinstance(pooler, nn.Module):
        pooler.register_forward_pre_hook(prompt.before_pooler)
    return model


register_method(
    "prompt",
    PromptConfig,
    apply_prompt,
    "prompt tuning: learned vectors prepended to the text input sequence",
    paper="Lester et al. 2021, The Power of Scale for Parameter-Efficient Prompt Tuning, "
    "arXiv:2104.08691",
    facts=MethodFacts(default_lr=5e-3, color="#56B4E9", marker="*", order=50),
)
