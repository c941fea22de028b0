"""What repspace checks on every batch it builds, before the model sees it.

The probe (``compare``, ``track``) and every training recipe build their batches with
:mod:`repspace.probe.prompts` / :mod:`repspace.probe.layout`; :func:`finish_batch` makes
each tensor contiguous (model code calls ``.view`` on them: T5's loss does
``labels.view(-1)``) and :func:`check_batch` verifies what repspace is responsible for:

- every field is a tensor, contiguous, of the dtype the model classes expect (token ids,
  labels and masks integer; pixels floating and finite);
- per-token fields (``attention_mask``, ``token_type_ids``, ``mm_token_type_ids``) have
  ``input_ids``' shape, ``decoder_attention_mask`` has ``decoder_input_ids``', every
  per-sample field has the batch's rows;
- token ids (and token labels, ``-100`` aside) lie in the model's vocabulary;
- a model that splices image features into its text gets image tokens in every row when
  it gets images, and none without images.

A failure names the field.  Where the fault is repspace's own construction it is
:class:`InputBuildError` (a ``RuntimeError``: the CLI prints it as repspace's error, exit 1,
"please report", ``--debug``); token ids beyond the model's embeddings come from the
checkpoint's tokenizer and model disagreeing, a one-line ``ValueError`` naming both.  Only
after these checks pass does a failure inside the model's forward say "the model's own
code failed" (:mod:`repspace.cli_errors`) with reason.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["InputBuildError", "finish_batch", "check_batch", "vocabulary_size"]

# integer per-token fields and the field whose shape they share
_PER_TOKEN = {
    "attention_mask": "input_ids",
    "token_type_ids": "input_ids",
    "mm_token_type_ids": "input_ids",
    "decoder_attention_mask": "decoder_input_ids",
}
_IDS = ("input_ids", "decoder_input_ids", "qformer_input_ids")
_FLOAT = ("pixel_values",)
_INTEGER = (
    *_IDS,
    *_PER_TOKEN,
    "labels",
    "label_mask",
    "qformer_attention_mask",
    "position_ids",
    "image_sizes",
    "image_grid_thw",
    "pixel_attention_mask",
)


class InputBuildError(RuntimeError):
    """repspace built a batch the model cannot take: a repspace bug, never the model's."""

    def __init__(self, what: str, field: str, problem: str):
        super().__init__(
            f"repspace built a {what} the model cannot take: field {field!r} "
            f"{problem}; this is repspace's error, not the model's or the checkpoint's"
        )
        self.field = field


def finish_batch(batch: Mapping[str, object]) -> dict:
    """``batch`` with every tensor contiguous (views of padded tensors are not)."""
    return {k: v.contiguous() if torch.is_tensor(v) else v for k, v in batch.items()}


def vocabulary_size(model: torch.nn.Module) -> int | None:
    """Rows of the (unwrapped) model's input embeddings, or None when it has none to show."""
    from repspace.layer_table import unwrap_model

    root = unwrap_model(model)
    try:
        emb = root.get_input_embeddings()
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        return None
    n = getattr(emb, "num_embeddings", None)
    if not isinstance(n, int) and getattr(emb, "weight", None) is not None and emb.weight.ndim == 2:
        n = int(emb.weight.shape[0])
    return n if isinstance(n, int) and n > 0 else None


def _check_ids(what: str, name: str, ids: torch.Tensor, vocab: int | None, labels: bool) -> None:
    values = ids[ids != -100] if labels else ids
    if values.numel() == 0:
        return
    low, high = int(values.min()), int(values.max())
    if low < 0:
        raise InputBuildError(
            what,
            name,
            f"holds the negative token id {low}"
            + (" (only -100 marks an ignored label)" if labels else ""),
        )
    if vocab is not None and high >= vocab:
        raise ValueError(
            f"{what} field {name!r}: the tokenizer gives token id {high}, but the "
            f"model's input embeddings hold {vocab} rows; the checkpoint's tokenizer "
            "and model do not belong together (a token added to the tokenizer "
            "without resizing the embeddings?) — save the tokenizer the model was "
            "trained with"
        )


def check_batch(
    model: torch.nn.Module,
    batch: Mapping[str, object],
    *,
    what: str = "batch",
    image_token: int | None = None,
    token_labels: bool | None = None,
) -> None:
    """Raise unless ``batch`` is what ``model``'s forward expects (see the module docstring).

    ``image_token``: the id the model replaces by image features (None: looked up on the
    model's config).  ``token_labels``: whether ``labels`` are token ids (language-model
    targets) rather than class indices; None: when they are two-dimensional."""
    from repspace.capture.tokens import image_token_id

    if image_token is None:
        image_token = image_token_id(model)
    rows = None
    for name, value in batch.items():
        if not torch.is_tensor(value):
            continue
        if not value.is_contiguous():
            raise InputBuildError(
                what,
                name,
                f"is not contiguous (shape {tuple(value.shape)}, strides {value.stride()})",
            )
        if name in _FLOAT:
            if not value.is_floating_point():
                raise InputBuildError(
                    what, name, f"has dtype {value.dtype}; a floating dtype is expected"
                )
            if not bool(torch.isfinite(value).all()):
                raise InputBuildError(what, name, "holds NaN or infinite values")
        elif name in _INTEGER and (value.is_floating_point() or value.is_complex()):
            raise InputBuildError(
                what, name, f"has dtype {value.dtype}; an integer dtype is expected"
            )
        if name in _IDS and value.dtype != torch.long:
            raise InputBuildError(what, name, f"has dtype {value.dtype}; token ids are int64")
        if name in _IDS or name == "labels":
            if value.ndim != 2 and not (name == "labels" and value.ndim == 1):
                raise InputBuildError(
                    what, name, f"has shape {tuple(value.shape)}; (batch, length) expected"
                )
            if name in ("input_ids", "decoder_input_ids", "labels"):
                if rows is not None and value.shape[0] != rows:
                    raise InputBuildError(
                        what, name, f"has {value.shape[0]} rows, the batch {rows}"
                    )
                rows = value.shape[0]
    for name, ref in _PER_TOKEN.items():
        value, base = batch.get(name), batch.get(ref)
        if torch.is_tensor(value) and torch.is_tensor(base) and value.shape != base.shape:
            raise InputBuildError(
                what,
                name,
                f"has shape {tuple(value.shape)}, {ref} {tuple(base.shape)}; they must match",
            )
    vocab = vocabulary_size(model)
    for name in ("input_ids", "decoder_input_ids"):
        if torch.is_tensor(batch.get(name)):
            _check_ids(what, name, batch[name], vocab, labels=False)
    labels = batch.get("labels")
    if torch.is_tensor(labels):
        if token_labels is None:
            token_labels = labels.ndim == 2
        if token_labels:
            _check_ids(what, "labels", labels, vocab, labels=True)
    _check_image_tokens(what, batch, image_token)


def _check_image_tokens(what: str, batch: Mapping[str, object], image_token: int | None) -> None:
    ids, pixels = batch.get("input_ids"), batch.get("pixel_values")
    if image_token is None or not torch.is_tensor(ids) or ids.ndim != 2:
        return
    per_row = (ids == image_token).sum(-1)
    if torch.is_tensor(pixels):
        empty = (per_row == 0).nonzero().flatten().tolist()
        if empty:
            raise InputBuildError(
                what,
                "input_ids",
                f"has no image token (id {image_token}) in "
                f"row {empty[0]} of {ids.shape[0]} though the batch carries images",
            )
    elif bool((per_row > 0).any()):
        raise InputBuildError(
            what,
            "input_ids",
            f"holds image tokens (id {image_token}) but the batch carries no pixel_values",
        )
