"""Probe texts turned into what each processor expects.

- **Pad token.** Batches are padded, and many causal-LM tokenizers (GPT-2, Llama, Mistral) have
  no pad token.  :func:`with_pad_token` gives the probe a *copy* whose pad token is the
  tokenizer's eos (else unk, else bos); the padded positions are masked out by the
  attention mask, so which token fills them does not matter.  The copy also pads on the
  right (a left-padding tokenizer would shift a causal model's positions by the padding).
  Nothing is written back.
- **Image placeholders.** A model that splices image features into its text sequence
  (LLaVA, LLaVA-NeXT, Idefics3, Qwen2-VL, PaliGemma, BLIP-2) needs its image token(s) in
  the prompt; its processor expands them.  :func:`image_prompts` uses the processor's chat
  template when it has one (a user turn: the image, then the probe text), else the
  processor's ``image_token`` before the text — unless the processor inserts the
  placeholders itself (PaliGemma, BLIP-2).  :func:`prompt_mode` tries each on the first
  sample and keeps the first whose processor output carries image tokens.  The chat template
  is the processor's, else the tokenizer's (a folder may keep it in ``chat_template.json``
  or in ``tokenizer_config.json``).  Training (:mod:`repspace.training.tasks.vlm`) builds its
  prompts with the same functions (with the generation prompt, the answer following), so
  whatever ``compare`` can feed a model, ``train`` can too.
- **Truncation.** ``max_length`` counts the probe text's own tokens: :func:`truncate_texts`
  cuts the text *before* the processor adds image tokens, template and special tokens, so
  truncation can never cut image placeholders.
"""

from __future__ import annotations

import copy

__all__ = [
    "tokenizer_of",
    "with_pad_token",
    "truncate_texts",
    "image_prompts",
    "count_image_tokens",
    "chat_template_of",
    "prompt_mode",
]


def tokenizer_of(processor):
    """The tokenizer inside a processor (or the processor itself when it is one), or None."""
    if processor is None:
        return None
    if callable(getattr(processor, "convert_tokens_to_ids", None)):
        return processor
    return getattr(processor, "tokenizer", None)


def with_pad_token(processor):
    """``processor``, or a copy of it whose tokenizer has a pad token and pads on the right
    (the original is untouched).

    Right, because a causal model's position ids count from the first position of the row
    whatever the mask says: a left-padded sample (chat tokenizers often save
    ``padding_side="left"``, for generation) would be encoded at positions shifted by its
    padding, so its states would depend on the other samples of its batch.  Padding on the
    right leaves every real token where it is alone, for causal and bidirectional models.
    """
    tok = tokenizer_of(processor)
    if tok is None or (
        tok.pad_token is not None and getattr(tok, "padding_side", "right") == "right"
    ):
        return processor
    pad = tok.pad_token or next(
        (t for t in (tok.eos_token, tok.unk_token, tok.bos_token) if t), None
    )
    if pad is None:
        raise ValueError(
            f"{type(tok).__name__}: the tokenizer has no pad, eos, unk or bos token to "
            "pad probe batches with; add a pad token to the checkpoint's tokenizer"
        )
    is_tokenizer = tok is processor
    tok = copy.deepcopy(tok)
    tok.pad_token = pad
    tok.padding_side = "right"
    if is_tokenizer:
        return tok
    proc = copy.copy(processor)
    proc.tokenizer = tok
    return proc


def _fits(tokenizer, text: str, max_length: int) -> bool:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= max_length


def truncate_texts(tokenizer, texts: list[str], max_length: int) -> list[str]:
    """Each text cut to its first ``max_length`` tokens (special tokens not counted).

    The cut text is tokenized again by the processor, and a word cut after its first
    pieces can come out as more pieces than before (byte-level BPE): the cut moves back a
    token until the text re-tokenizes to at most ``max_length`` tokens, so the limit holds
    exactly (a text encoder's position limit depends on it); only a first token that
    re-tokenizes into several pieces is kept as it is, there being no shorter cut."""
    if max_length < 1:
        raise ValueError(f"--max-length must be ≥ 1; got {max_length}")
    out = []
    try:
        enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
        for text, offsets in zip(texts, enc["offset_mapping"]):
            if len(offsets) <= max_length:
                out.append(text)
                continue
            k = max_length
            while k > 1 and not _fits(tokenizer, text[: offsets[k - 1][1]], max_length):
                k -= 1
            out.append(text[: offsets[k - 1][1]])
        return out
    except (NotImplementedError, TypeError, KeyError):  # slow tokenizers have no offsets
        for text in texts:
            tokens = tokenizer.tokenize(text)
            out.append(
                text
                if len(tokens) <= max_length
                else tokenizer.convert_tokens_to_string(tokens[:max_length])
            )
        return out


def count_image_tokens(enc, image_token: int | None) -> int:
    ids = enc.get("input_ids") if hasattr(enc, "get") else None
    if image_token is None or ids is None:
        return 0
    import torch

    return int((torch.as_tensor(ids) == image_token).sum())


def chat_template_of(processor) -> str | dict | None:
    """The chat template a prompt is rendered with: the processor's own, else its tokenizer's
    (folders keep it in ``chat_template.json`` / ``.jinja`` or in ``tokenizer_config.json``)."""
    own = getattr(processor, "chat_template", None)
    if own:
        return own
    tok = tokenizer_of(processor)
    theirs = getattr(tok, "chat_template", None) if tok is not None else None
    return theirs or None


def _chat_prompt(processor, text: str, generation: bool = False) -> str:
    conversation = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}
    ]
    kwargs = {}
    if not getattr(processor, "chat_template", None):  # the tokenizer's template
        kwargs["chat_template"] = chat_template_of(processor)
    return processor.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=generation, **kwargs
    )


def image_prompts(processor, texts: list[str], mode: str, generation: bool = False) -> list[str]:
    """The texts as prompts for ``mode``: ``"chat"``, ``"token"`` (image token first) or ``"plain"``.

    ``generation``: the chat template's generation prompt after the user turn (training: the
    answer follows it); the probe feeds the user turn alone."""
    if mode == "chat":
        return [_chat_prompt(processor, t, generation) for t in texts]
    if mode == "token":
        return [f"{processor.image_token}\n{t}" for t in texts]
    return list(texts)


def _places_images(processor, mode: str, image_token: int, text: str, image) -> bool:
    """Whether prompts of ``mode`` come out of the processor with image placeholders."""
    try:
        enc = processor(
            text=image_prompts(processor, [text], mode), images=[image], return_tensors="pt"
        )
    except (ValueError, TypeError, IndexError, KeyError):  # "found 0 <image> tokens and 1 images"
        return False
    return count_image_tokens(enc, image_token) > 0


def prompt_mode(processor, image_token: int | None, sample_text: str, sample_image) -> str:
    """How to build image+text prompts for this processor (see the module docstring).

    ``"plain"`` when the model has no image placeholder token, or when the processor adds
    the placeholders itself; ``"chat"`` when the processor has a chat template; else
    ``"token"`` (needs the processor's ``image_token``).
    """
    if image_token is None:
        return "plain"
    # A chat template that renders no image placeholder (a text-only template) falls through.
    if chat_template_of(processor) and _places_images(
        processor, "chat", image_token, sample_text, sample_image
    ):
        return "chat"
    if _places_images(processor, "plain", image_token, sample_text, sample_image):
        return "plain"
    if isinstance(getattr(processor, "image_token", None), str):
        return "token"
    raise ValueError(
        f"{type(processor).__name__}: the model takes image token id {image_token} "
        "in its text, but the processor has no chat template and no image_token to "
        "build a prompt with; save the model's processor (with its chat template)"
    )
