"""Turn a probe set into model input batches with the checkpoint's own processor."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import numpy as np
import torch

from repspace.probe.sources import ProbeSet


def forward_parameters(model: torch.nn.Module) -> set[str]:
    """Names the (unwrapped) model's forward accepts."""
    from repspace.layer_table import unwrap_model

    root = unwrap_model(model)
    return set(inspect.signature(root.forward).parameters)


def model_modalities(model: torch.nn.Module) -> tuple[str, ...]:
    params = forward_parameters(model)
    mods = tuple(
        m for m, key in (("text", "input_ids"), ("image", "pixel_values")) if key in params
    )
    if not mods:
        raise ValueError(
            f"{type(model).__name__}: its forward takes neither input_ids nor "
            "pixel_values; repspace cannot build inputs for it"
        )
    return mods


def _decoder_start_id(model: torch.nn.Module) -> int | None:
    """BLIP's captioning decoder reads ``[DEC]`` (bos) at position 0, where its tokenizer puts
    ``[CLS]``; BLIP's own code (``blip_decoder.forward``) and ``generate`` overwrite it, so the
    probe must too or the decoder is probed on an input it never saw in training."""
    from repspace.layer_table import unwrap_model

    root = unwrap_model(model)
    if type(root).__name__ != "BlipForConditionalGeneration":
        return None
    return getattr(getattr(root.config, "text_config", None), "bos_token_id", None)


def _load_image(im):
    from PIL import Image

    if isinstance(im, np.ndarray):
        return Image.fromarray(im.astype(np.uint8)).convert("RGB")
    try:
        with Image.open(im) as f:
            return f.convert("RGB")
    except OSError as exc:
        raise ValueError(f"probe image {im}: cannot be read ({exc})") from None


def _decoder_inputs(
    model: torch.nn.Module, batch: dict, accepted: set[str], image_token: int | None = None
) -> None:
    """Models with a decoder fed ``decoder_input_ids`` (encoder-decoder LMs such as T5 and
    BART, and BLIP's VQA model, whose answer decoder is not an encoder-decoder in its config):
    the decoder sees its start token followed by the probe
    text shifted right by one (teacher forcing on the same text; each row's last token, its
    eos, falls off), masked like the encoder's input; without them the ``blocks`` preset's decoder layers would get no input at all.
    Image placeholders (BLIP-2 / InstructBLIP on Flan-T5 put them in the encoder's text) are
    left out: only the encoder replaces them by image features, the decoder would read the
    bare placeholder embedding."""
    from repspace.layer_table import unwrap_model

    root = unwrap_model(model)
    cfg = getattr(root, "config", None)
    if (
        "decoder_input_ids" not in accepted
        or "decoder_input_ids" in batch
        or "input_ids" not in batch
    ):
        return
    # A composite model (BLIP-2 / InstructBLIP on Flan-T5) keeps them in its text config.
    configs = [cfg]
    try:
        text = cfg.get_text_config(decoder=True)
    except (AttributeError, TypeError, ValueError):
        text = None
    if text is not None and text is not cfg:
        configs.append(text)
    # A composite forward may take decoder_input_ids for its encoder-decoder variants only
    # (BLIP-2 on OPT takes them because BLIP-2 on Flan-T5 needs them): decoder inputs go to
    # models that are encoder-decoders in their config or their language model's, or that
    # name their own decoder start token (BLIP VQA's answer decoder).
    if not (
        getattr(cfg, "is_encoder_decoder", False)
        or getattr(text, "is_encoder_decoder", False)
        or isinstance(getattr(root, "decoder_start_token_id", None), int)
    ):
        return
    # The model's own attribute first (BLIP VQA: its text config's bos, "[DEC]").
    start = getattr(root, "decoder_start_token_id", None)
    if not isinstance(start, int):
        start = next(
            (
                getattr(c, "decoder_start_token_id", None)
                for c in configs
                if getattr(c, "decoder_start_token_id", None) is not None
            ),
            None,
        )
    if start is None:
        start = next(
            (
                getattr(c, "pad_token_id", None)
                for c in configs
                if getattr(c, "pad_token_id", None) is not None
            ),
            None,
        )
    if start is None:
        raise ValueError(
            f"{type(model).__name__}: an encoder-decoder model whose config names no "
            "decoder_start_token_id nor pad_token_id; set one in its config.json"
        )
    ids = batch["input_ids"]
    mask = batch.get("attention_mask")
    if image_token is not None and bool((ids == image_token).any()):
        keep = ids != image_token
        rows = [row[k] for row, k in zip(ids, keep)]
        length = max(len(r) for r in rows)
        text = ids.new_full((len(rows), length), start)  # padding: masked out below
        text_mask = ids.new_zeros((len(rows), length))
        for i, (row, k) in enumerate(zip(rows, keep)):
            text[i, : len(row)] = row
            text_mask[i, : len(row)] = 1 if mask is None else mask[i][k]
        ids, mask = text, text_mask
    batch["decoder_input_ids"] = torch.cat([torch.full_like(ids[:, :1], start), ids[:, :-1]], 1)
    if mask is not None and "decoder_attention_mask" in accepted:
        # Row i reads its start token and its first L_i - 1 tokens (L_i of them, its own
        # last token — eos — dropped): the encoder's mask as it is.  Shifting the mask too
        # would give a padded row one more token (its eos) than the same sample alone, so a
        # sample's decoder states would depend on its batch.
        batch["decoder_attention_mask"] = mask.clone()


def _special_tokens(tokenizer) -> int:
    try:
        return int(tokenizer.num_special_tokens_to_add())
    except Exception:  # noqa: BLE001 - tokenizers without the helper: pad a little more
        return 4


def _padding_rule(tokenizer):
    """``padding`` keywords for a batch.  A tokenizer that returns no attention mask (SigLIP's
    ``model_input_names == ["input_ids"]``) belongs to a model that attends to its padding, as
    it was trained with fixed-length padding: pad to a fixed length then, so a sample's states
    do not depend on the other samples of its batch.  Otherwise pad to the batch's longest."""
    names = getattr(tokenizer, "model_input_names", None) or ["attention_mask"]
    if "attention_mask" in names:
        return lambda length: {"padding": True}
    return lambda length: {"padding": "max_length", "max_length": length}


def _text_capacity(tokenizer, model: torch.nn.Module) -> int | None:
    """How many tokens the text side takes: the smaller of the tokenizer's
    ``model_max_length`` (when it is a real limit: transformers puts ~1e30 there when the
    checkpoint names none) and the text config's ``max_position_embeddings`` (a tokenizer
    saved without its limit still meets the model's position table); None when neither says."""
    from repspace.layer_table import unwrap_model

    limits = [getattr(tokenizer, "model_max_length", None)]
    cfg = getattr(unwrap_model(model), "config", None)
    try:
        text = cfg.get_text_config() if cfg is not None else None
    except (AttributeError, TypeError, ValueError):
        text = None
    limits.append(getattr(text if text is not None else cfg, "max_position_embeddings", None))
    limits = [
        n for n in limits if isinstance(n, int) and not isinstance(n, bool) and 0 < n < 1_000_000
    ]
    return min(limits) if limits else None


def _warn_capped(
    tokenizer, texts, limit: int, max_length: int, cap: int | None, *, special: bool
) -> bool:
    """Warn (and return True) when a probe text is cut below ``--max-length`` because the
    text encoder takes fewer positions."""
    if cap is None or limit >= max_length or not texts:
        return False
    lengths = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=special)["input_ids"]]
    if max(lengths) <= limit:
        return False
    import warnings

    warnings.warn(
        f"probe texts cut to {limit} tokens, below --max-length {max_length}: the "
        f"text encoder takes at most {cap} positions (its tokenizer's "
        "model_max_length or its config's max_position_embeddings), special tokens "
        "included",
        UserWarning,
        stacklevel=3,
    )
    return True


def make_batches(
    probe: ProbeSet, model: torch.nn.Module, processor, batch_size: int = 32, max_length: int = 64
) -> Iterator[dict]:
    """Yield ``{input_ids, attention_mask, pixel_values, ...}`` batches in probe order.

    Text is padded per batch (not to the longest sample overall) and truncated to
    ``max_length`` tokens of the probe text itself (image placeholders, chat template and
    special tokens come on top, see :mod:`repspace.probe.prompts`); the capture's pooling
    honours the attention mask.  A tokenizer without a pad token pads with a copy using
    its eos (or unk, bos).  Encoder-decoder models also get decoder inputs
    (:func:`_decoder_inputs`).
    """
    from repspace.capture.tokens import image_token_id
    from repspace.probe.prompts import tokenizer_of, with_pad_token

    if processor is None:
        raise ValueError(
            f"{type(model).__name__}: no tokenizer or processor was found with the "
            "checkpoint; save one next to the weights (save_pretrained)"
        )
    wanted = model_modalities(model)
    if any(m not in probe.modalities for m in wanted):
        raise ValueError(
            f"{type(model).__name__} needs {' and '.join(wanted)} inputs but the probe "
            f"data {probe.source} has only {' and '.join(probe.modalities)}"
        )
    if (
        "image" in wanted
        and not hasattr(processor, "image_processor")
        and tokenizer_of(processor) is processor
    ):
        reason = getattr(processor, "repspace_processor_error", None)
        raise ValueError(
            f"{type(model).__name__} takes images but only a tokenizer was loaded with "
            "the checkpoint, no image processor"
            f"{f' (AutoProcessor failed: {reason})' if reason else ''}; "
            "save the model's processor next to it or install what it needs"
        )
    processor = with_pad_token(processor)
    accepted = forward_parameters(model)
    start_id = _decoder_start_id(model)
    image_token = image_token_id(model)
    tok = tokenizer_of(processor)
    padding = _padding_rule(tok)
    # A text encoder with its own positions (CLIP 77, SigLIP 64: image_token is None) takes
    # no more tokens than it has positions, special tokens included.
    cap = _text_capacity(tok, model) if image_token is None else None
    text_only = max_length if cap is None else min(max_length, cap)
    budget = max_length if cap is None else max(1, min(max_length, cap - _special_tokens(tok)))
    return SizedBatches(
        _batches(
            probe,
            model,
            wanted,
            processor,
            tok,
            padding,
            accepted,
            start_id,
            image_token,
            cap,
            text_only,
            budget,
            max_length,
            batch_size,
        ),
        -(-len(probe) // batch_size),
    )


class SizedBatches:
    """An iterator of batches that knows how many it yields (progress bars show a total)."""

    def __init__(self, batches: Iterator[dict], total: int):
        self._batches, self.total = batches, total

    def __iter__(self) -> "SizedBatches":
        return self

    def __next__(self) -> dict:
        return next(self._batches)

    def __len__(self) -> int:
        return self.total


def _batches(
    probe,
    model,
    wanted,
    processor,
    tok,
    padding,
    accepted,
    start_id,
    image_token,
    cap,
    text_only,
    budget,
    max_length,
    batch_size,
) -> Iterator[dict]:
    from repspace.probe.batch_check import check_batch, finish_batch
    from repspace.probe.prompts import (
        count_image_tokens,
        image_prompts,
        prompt_mode,
        truncate_texts,
    )

    mode = None
    warned = False
    for start in range(0, len(probe), batch_size):
        texts = probe.texts[start : start + batch_size] if "text" in wanted else None
        images = (
            [_load_image(im) for im in probe.images[start : start + batch_size]]
            if "image" in wanted
            else None
        )
        if images is None:
            warned = warned or _warn_capped(tok, texts, text_only, max_length, cap, special=True)
            enc = processor(
                texts,
                return_tensors="pt",
                truncation=True,
                **{"max_length": text_only, **padding(text_only)},
            )
        elif texts is None:
            enc = processor(images=images, return_tensors="pt")
        else:
            warned = warned or _warn_capped(tok, texts, budget, max_length, cap, special=False)
            texts = truncate_texts(tok, texts, budget)
            if mode is None:
                mode = prompt_mode(processor, image_token, texts[0], images[0])
            # Placeholder expansion makes lengths image-dependent: fixed-length padding only
            # for prompts the processor does not expand.
            extra = _special_tokens(tok) if mode == "plain" else None
            fixed = None if extra is None else budget + extra
            fixed = fixed if fixed is None or cap is None else min(fixed, cap)
            enc = processor(
                text=image_prompts(processor, texts, mode),
                images=images,
                return_tensors="pt",
                **(padding(fixed) if fixed is not None else {"padding": True}),
            )
            if image_token is not None and count_image_tokens(enc, image_token) == 0:
                raise ValueError(
                    f"{type(model).__name__}: the probe prompts built with "
                    f"{type(processor).__name__} carry no image token (id "
                    f"{image_token}); save the model's own processor with it"
                )
        batch = {k: v for k, v in dict(enc).items() if k in accepted and torch.is_tensor(v)}
        if start_id is not None and "input_ids" in batch:
            batch["input_ids"] = batch["input_ids"].clone()
            batch["input_ids"][:, 0] = start_id
        _decoder_inputs(model, batch, accepted, image_token)
        # what training checks before its forward too: contiguous, dtypes, shapes, ids in the
        # vocabulary, image tokens with images (a failure names the field)
        batch = finish_batch(batch)
        check_batch(model, batch, what="probe batch", image_token=image_token)
        yield batch
