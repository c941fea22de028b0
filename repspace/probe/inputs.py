"""Turn a probe set into model input batches with the checkpoint's own processor."""
from __future__ import annotations

import inspect
from collections.abc import Iterator

import numpy as np
import torch

from repspace.probe.sources import ProbeSet


def forward_parameters(model: torch.nn.Module) -> set[str]:
    """Names the (unwrapped) model's forward accepts."""
    from repspace.capture.names import unwrap_model

    root = unwrap_model(model)
    return set(inspect.signature(root.forward).parameters)


def model_modalities(model: torch.nn.Module) -> tuple[str, ...]:
    params = forward_parameters(model)
    mods = tuple(m for m, key in (("text", "input_ids"), ("image", "pixel_values")) if key in params)
    if not mods:
        raise ValueError(f"{type(model).__name__}: its forward takes neither input_ids nor "
                         "pixel_values; repspace cannot build inputs for it")
    return mods


def _decoder_start_id(model: torch.nn.Module) -> int | None:
    """BLIP's captioning decoder reads ``[DEC]`` (bos) at position 0, where its tokenizer puts
    ``[CLS]``; BLIP's own code (``blip_decoder.forward``) and ``generate`` overwrite it, so the
    probe must too or the decoder is probed on an input it never saw in training."""
    from repspace.capture.names import unwrap_model

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


def make_batches(probe: ProbeSet, model: torch.nn.Module, processor, batch_size: int = 32,
                 max_length: int = 64) -> Iterator[dict]:
    """Yield ``{input_ids, attention_mask, pixel_values, ...}`` batches in probe order.

    Text is padded per batch (not to the longest sample overall) and truncated to
    ``max_length`` tokens; the capture's pooling honours the attention mask.
    """
    if processor is None:
        raise ValueError(f"{type(model).__name__}: no tokenizer or processor was found with the "
                         "checkpoint; save one next to the weights (save_pretrained)")
    wanted = model_modalities(model)
    if any(m not in probe.modalities for m in wanted):
        raise ValueError(f"{type(model).__name__} needs {' and '.join(wanted)} inputs but the probe "
                         f"data {probe.source} has only {' and '.join(probe.modalities)}")
    accepted = forward_parameters(model)
    start_id = _decoder_start_id(model)
    for start in range(0, len(probe), batch_size):
        kwargs = {"return_tensors": "pt"}
        if "text" in wanted:
            kwargs.update(text=probe.texts[start:start + batch_size], padding=True,
                          truncation=True, max_length=max_length)
        if "image" in wanted:
            kwargs["images"] = [_load_image(im) for im in probe.images[start:start + batch_size]]
        if "images" not in kwargs:
            enc = processor(kwargs.pop("text"), **kwargs)
        elif "text" not in kwargs:
            enc = processor(images=kwargs.pop("images"), return_tensors="pt")
        else:
            enc = processor(**kwargs)
        batch = {k: v for k, v in dict(enc).items() if k in accepted and torch.is_tensor(v)}
        if start_id is not None and "input_ids" in batch:
            batch["input_ids"] = batch["input_ids"].clone()
            batch["input_ids"][:, 0] = start_id
        yield batch
