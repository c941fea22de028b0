"""Which token positions of a captured layer are real: masks, streams, virtual tokens.

Every captured layer belongs to a *stream* — the token sequence its states index:

* ``"vision"``: image-patch tokens of a vision tower (``(b, 1 + patches, d)`` with a
  CLS first in ViT/BLIP); no attention mask, every token is valid;
* ``"decoder"``: a text decoder fed ``decoder_input_ids`` / ``decoder_attention_mask``
  (BLIP VQA, encoder-decoder LMs);
* ``"query"``: learned query tokens of a Q-Former / resampler (BLIP-2, InstructBLIP):
  their own sequence, not the text's; every query token is valid (InstructBLIP appends
  the instruction tokens, masked by ``qformer_attention_mask``);
* ``"text"``: everything else, masked by ``attention_mask`` when it is given.

A vision tower may run on more images than there are samples: several crops per sample
(LLaVA-NeXT anyres, Idefics3 image splitting) or one flattened patch sequence per image
(Qwen2-VL, ``pixel_values`` of shape ``(patches, features)`` with ``image_grid_thw``).
:func:`align_tokens` regroups such states per sample — all crops (or patches) of sample
``i`` become the tokens of row ``i`` — so a sample stays one row, paired with its text.

Prompt tuning and P-tuning prepend ``num_virtual_tokens`` positions to the input
embeddings of the tuned model; :func:`align_tokens` strips them so the tuned sequence
lines up with the base one (prefix tuning only adds keys/values: nothing to strip).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from repspace.capture.model_view import adapter_disabled, model_view
from repspace.capture.presets import is_vision_layer

__all__ = ["MODALITIES", "align_tokens", "image_token_id", "layer_stream", "num_virtual_tokens"]

MODALITIES = ("auto", "text", "image", "all")

_QUERY_WORDS = ("qformer", "q_former", "resampler", "perceiver")
_STREAM_KEYS = {
    "text": ("attention_mask", "input_ids"),
    "decoder": ("decoder_attention_mask", "decoder_input_ids"),
}


def num_virtual_tokens(model: nn.Module) -> int:
    """Positions a prompt-learning method prepends to the sequence (0 if none): a PEFT
    prompt-learning adapter's ``num_virtual_tokens``, or repspace's own prompt tuning (a
    module with a ``repspace_num_virtual_tokens`` attribute, see
    :mod:`repspace.methods.prompt`); 0 inside ``disable_adapter()``, where the base forward
    runs.  The count is the model view's (resolved once); the switch is read each call."""
    if adapter_disabled(model):
        return 0
    return model_view(model).virtual_tokens


def task_ids_needed(model: nn.Module, task_id: int | None, side: str = "tuned") -> int | None:
    """``task_id`` when ``model`` is a task-conditioned peft adapter (multitask prompt tuning,
    Poly: their forward needs ``task_ids``), else None; ValueError when one is needed and
    ``task_id`` is None."""
    try:
        from peft import PeftModel, PeftType
    except ImportError:
        return None
    if not isinstance(model, PeftModel) or not getattr(model, "has_active_enabled_adapter", True):
        return None
    kind = model.active_peft_config.peft_type
    if kind not in (PeftType.MULTITASK_PROMPT_TUNING, PeftType.POLY):
        return None
    if task_id is None:
        raise ValueError(
            f"the {side} model is a task-conditioned adapter ({kind.value}); pass the "
            "task to probe with --task-id N (task_id=N)"
        )
    if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id < 0:
        raise ValueError(f"--task-id must be a non-negative integer; got {task_id!r}")
    cfg = model.active_peft_config
    tasks = (
        getattr(cfg, "num_tasks", None)
        if kind is PeftType.MULTITASK_PROMPT_TUNING
        else getattr(cfg, "n_tasks", None)
    )
    if isinstance(tasks, int) and not isinstance(tasks, bool) and task_id >= tasks:
        raise ValueError(
            f"--task-id {task_id}: the {side} model's {kind.value} adapter was "
            f"trained on {tasks} task(s), numbered 0 to {tasks - 1}; choose one of "
            "them"
        )
    return task_id


def image_token_id(model: nn.Module) -> int | None:
    """The placeholder id a LLaVA-style model replaces by image features (else ``None``)."""
    return model_view(model).image_token


def layer_stream(model: nn.Module, name: str, batch: Mapping[str, object]) -> str:
    """The stream (``"vision"``, ``"decoder"`` or ``"text"``) a layer's tokens belong to."""
    if is_vision_layer(model, name):
        return "vision"
    if any(w in part.lower() for part in name.split(".") for w in _QUERY_WORDS):
        return "query"
    if "decoder" in name and any(k in batch for k in _STREAM_KEYS["decoder"]):
        return "decoder"
    return "text"


def _to_tokens(states: torch.Tensor, name: str) -> torch.Tensor:
    if states.ndim == 3:
        return states
    if states.ndim == 2:  # already one vector per sample (pooler, classifier input)
        return states[:, None, :]
    if states.ndim == 4:  # conv feature map (b, c, h, w): each position is a token
        return states.flatten(2).transpose(1, 2)
    raise ValueError(
        f"layer {name!r} produced states of shape {tuple(states.shape)}; expected "
        "(batch, tokens, hidden), (batch, hidden) or (batch, channels, h, w)"
    )


def align_tokens(
    name: str,
    states: torch.Tensor,
    batch: Mapping[str, object],
    stream: str,
    n_virtual: int = 0,
    *,
    image_token: int | None = None,
    modality: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(states (b, t, d), valid (b, t) bool or None)`` with virtual tokens stripped.

    ``valid is None`` means every position is a real token.  A length that fits neither
    the mask nor mask + virtual tokens raises ``ValueError`` rather than guessing.

    In a LLaVA-style model image features sit inside the text sequence at the
    ``image_token`` placeholder positions; ``modality`` keeps them apart from the text
    tokens: ``"text"`` (the ``"auto"`` default when placeholders are present) drops
    them, ``"image"`` keeps only them, ``"all"`` keeps both.
    """
    states, valid = _align(name, states, batch, stream, n_virtual)
    ids = batch.get("input_ids")
    if (
        stream != "text"
        or image_token is None
        or modality == "all"
        or not torch.is_tensor(ids)
        or ids.shape[:2] != states.shape[:2]
    ):
        if modality == "image" and stream != "vision":
            raise ValueError(
                f"modality='image' needs image placeholder tokens in input_ids; layer "
                f"{name!r} has none (use a vision-tower layer or modality='auto')"
            )
        return states, valid
    is_image = ids.to(states.device) == image_token
    if modality == "auto" and not bool(is_image.any()):
        return states, valid
    keep = is_image if modality == "image" else ~is_image
    return states, keep if valid is None else valid & keep


def _align(
    name: str, states: torch.Tensor, batch: Mapping[str, object], stream: str, n_virtual: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    states = _to_tokens(states, name)
    if stream == "vision":
        return _per_sample(name, states, batch)
    if stream == "query":
        mask = batch.get("qformer_attention_mask")
        if torch.is_tensor(mask) and states.shape[1] > mask.shape[1]:
            n_query = states.shape[1] - mask.shape[1]
            lead = torch.ones(mask.shape[0], n_query, dtype=torch.bool, device=states.device)
            return states, torch.cat([lead, mask.to(device=states.device, dtype=torch.bool)], 1)
        return states, None
    mask_key, ids_key = _STREAM_KEYS[stream]
    ref = batch.get(mask_key, batch.get(ids_key))
    if not torch.is_tensor(ref) or ref.ndim != 2:
        # No mask nor ids (e.g. inputs_embeds): all positions valid, but prompt-learning
        # tokens are still at the front.
        return (
            states[:, n_virtual:] if n_virtual and states.shape[1] > n_virtual else states
        ), None
    length, seq = ref.shape[1], states.shape[1]
    if seq == length + n_virtual and n_virtual:
        states = states[:, n_virtual:]
    elif seq != length:
        raise ValueError(
            f"layer {name!r} has {seq} tokens per sample but {ref.shape[1]} are in "
            f"{'the ' + mask_key if mask_key in batch else ids_key}"
            f"{f' (+{n_virtual} virtual tokens)' if n_virtual else ''}; "
            "pool it with pooling='none' or pick a layer on the input sequence"
        )
    if mask_key not in batch:
        return states, None
    return states, ref.to(device=states.device, dtype=torch.bool)


def _samples(batch: Mapping[str, object]) -> int | None:
    for key in ("input_ids", "attention_mask", "pixel_values"):
        v = batch.get(key)
        if (
            torch.is_tensor(v)
            and v.ndim >= 2
            and not (key == "pixel_values" and "image_grid_thw" in batch)
        ):
            return v.shape[0]
    grid = batch.get("image_grid_thw")
    return grid.shape[0] if torch.is_tensor(grid) else None


def _images_per_sample(name: str, rows: int, batch: Mapping[str, object], n: int) -> list[int]:
    """How many of a vision layer's ``rows`` images / crops / patches belong to each sample."""
    grid = batch.get("image_grid_thw")
    if torch.is_tensor(grid) and grid.shape[0] == n and int(grid.prod(-1).sum()) == rows:
        return [int(c) for c in grid.prod(-1)]  # Qwen2-VL: t*h*w flattened patches per image
    pixels = batch.get("pixel_values")
    if torch.is_tensor(pixels) and pixels.ndim == 5 and pixels.shape[0] == n:
        if rows == pixels.shape[0] * pixels.shape[1]:
            return [pixels.shape[1]] * n
        # Crops padded to the longest sample are all zeros; the models skip them the same way.
        real = pixels.flatten(2).ne(0).any(-1).sum(1)
        if int(real.sum()) == rows:
            return [int(c) for c in real]
    raise ValueError(
        f"layer {name!r} ran on {rows} images or crops for {n} samples and repspace "
        "cannot tell which belong to which sample; capture a layer that sees one "
        "sequence per sample (e.g. the text layers)"
    )


def _per_sample(
    name: str, states: torch.Tensor, batch: Mapping[str, object]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Vision states with one row per sample (crops / patches of a sample concatenated)."""
    n = _samples(batch)
    if n is None or states.shape[0] == n:
        return states, None
    counts = _images_per_sample(name, states.shape[0], batch, n)
    t, d = states.shape[1], states.shape[2]
    width = max(counts) * t
    out = states.new_zeros(n, width, d)
    valid = torch.zeros(n, width, dtype=torch.bool, device=states.device)
    start = 0
    for i, c in enumerate(counts):
        out[i, : c * t] = states[start : start + c].reshape(c * t, d)
        valid[i, : c * t] = True
        start += c
    return out, valid
