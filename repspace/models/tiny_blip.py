"""The tiny BLIP architecture of the embedded model, its processor and its pixel layout.

The embedded model is a stock ``transformers.BlipForConditionalGeneration`` (ViT image
encoder + BERT-style text decoder with cross-attention to every image token), only small:

* images: 32 x 32 px shapes-world images, ``patch_size`` 4 -> 8 x 8 = 64 patches + [CLS] = 65
  image tokens of width ``vision_hidden``;
* text: the word-level shapes-world tokenizer (:func:`repspace.data.build_tokenizer`, 73 ids),
  token ids wired into the config by :func:`repspace.data.blip_token_ids`, so model and
  tokenizer cannot disagree about ``[PAD]`` / ``[DEC]`` / ``[SEP]``.

Pixels are ``(x / 255 - 0.5) / 0.5`` per channel, i.e. in ``[-1, 1]`` (:data:`IMAGE_MEAN`,
:data:`IMAGE_STD`); :func:`pixel_values` computes exactly what the processor computes for
images that already have the model's size, without PIL, for fast batched training.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "IMAGE_MEAN",
    "IMAGE_STD",
    "MAX_POSITIONS",
    "tiny_blip_config",
    "build_processor",
    "pixel_values",
]

IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)
#: Text positions of the decoder: a caption is <= 17 tokens, a VQA prompt + answer <= ~20.
MAX_POSITIONS = 64


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"tiny_blip_config: {name} must be a positive integer, got {value!r}")
    return int(value)


def tiny_blip_config(
    image_size: int = 32,
    patch_size: int = 4,
    vision_hidden: int = 96,
    vision_layers: int = 3,
    text_hidden: int = 96,
    text_layers: int = 3,
    num_heads: int = 4,
    mlp_ratio: int = 4,
    tokenizer=None,
):
    """``transformers.BlipConfig`` of a small ``BlipForConditionalGeneration``.

    Args:
        image_size: input side in pixels; must be a multiple of ``patch_size``.
        patch_size: ViT patch side; the image encoder sees ``(image_size / patch_size)^2 + 1``
            tokens (the +1 is [CLS]).
        vision_hidden, vision_layers: width and depth of the image encoder.
        text_hidden, text_layers: width and depth of the text decoder (each layer:
            causal self-attention, cross-attention to the image tokens, MLP).
        num_heads: attention heads in both towers; must divide both widths.
        mlp_ratio: MLP width = ``mlp_ratio * hidden``.
        tokenizer: tokenizer whose ids fill the text config (default
            :func:`repspace.data.build_tokenizer`).

    Dropout is 0 everywhere (BLIP's default), so training is deterministic given the seed.
    """
    import transformers

    from repspace.data import blip_token_ids, build_tokenizer

    vals = {
        k: _positive(k, v)
        for k, v in dict(
            image_size=image_size,
            patch_size=patch_size,
            vision_hidden=vision_hidden,
            vision_layers=vision_layers,
            text_hidden=text_hidden,
            text_layers=text_layers,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
        ).items()
    }
    if vals["image_size"] % vals["patch_size"]:
        raise ValueError(
            f"tiny_blip_config: image_size {image_size} is not a multiple of "
            f"patch_size {patch_size}; pick a patch size that divides it"
        )
    for tower in ("vision_hidden", "text_hidden"):
        if vals[tower] % vals["num_heads"]:
            raise ValueError(
                f"tiny_blip_config: {tower}={vals[tower]} is not divisible by num_heads={num_heads}"
            )
    tok = build_tokenizer() if tokenizer is None else tokenizer
    text = dict(
        blip_token_ids(tok),
        hidden_size=vals["text_hidden"],
        num_hidden_layers=vals["text_layers"],
        num_attention_heads=vals["num_heads"],
        intermediate_size=vals["mlp_ratio"] * vals["text_hidden"],
        max_position_embeddings=MAX_POSITIONS,
        projection_dim=vals["text_hidden"],
    )
    vision = dict(
        hidden_size=vals["vision_hidden"],
        num_hidden_layers=vals["vision_layers"],
        num_attention_heads=vals["num_heads"],
        intermediate_size=vals["mlp_ratio"] * vals["vision_hidden"],
        image_size=vals["image_size"],
        patch_size=vals["patch_size"],
        projection_dim=vals["vision_hidden"],
        # BLIP's default (1e-10) starts position embeddings at ~0; 0.02 as for every other weight.
        initializer_range=0.02,
    )
    cfg = transformers.BlipConfig(
        text_config=text,
        vision_config=vision,
        projection_dim=vals["text_hidden"],
        image_text_hidden_size=vals["text_hidden"],
    )
    cfg.architectures = ["BlipForConditionalGeneration"]
    return cfg


def build_processor(image_size: int = 32, tokenizer=None):
    """``transformers.BlipProcessor``: BLIP image processor (resize to ``image_size`` square,
    rescale 1/255, normalise with :data:`IMAGE_MEAN` / :data:`IMAGE_STD`) + the shapes-world
    tokenizer.

    Round-trips through ``save_pretrained(dir)`` / ``AutoProcessor.from_pretrained(dir,
    local_files_only=True)``.  Text comes out as ``[CLS] words [SEP]``; BLIP's decoder wants
    ``[DEC]`` first, which :func:`repspace.data.decoder_inputs` (training) and
    ``BlipForConditionalGeneration.generate`` (inference) write into position 0.
    """
    from transformers import BlipProcessor

    from repspace.data import build_tokenizer

    size = _positive("image_size", image_size)
    try:  # the PIL backend needs no torchvision; with torchvision both compute the same pixels
        from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil as cls
    except ImportError:  # pragma: no cover - older transformers: one class only
        from transformers import BlipImageProcessor as cls
    image_processor = cls(
        size={"height": size, "width": size},
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
        do_resize=True,
        do_rescale=True,
        do_normalize=True,
        do_convert_rgb=True,
    )
    return BlipProcessor(
        image_processor=image_processor,
        tokenizer=build_tokenizer() if tokenizer is None else tokenizer,
    )


def pixel_values(images) -> torch.Tensor:
    """``(n, H, W, 3)`` uint8 (numpy or tensor) -> ``(n, 3, H, W)`` float32 ``(x/255 - mean)/std``.

    Equal to the processor's ``pixel_values`` for images that already have the model's size
    (tested); no resizing happens here.
    """
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(
            f"pixel_values: images must be (n, H, W, 3) uint8, got {tuple(x.shape)} {x.dtype}"
        )
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (x.permute(0, 3, 1, 2).float().div(255.0) - mean) / std
