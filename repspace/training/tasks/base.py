"""What every task glue shares: the :class:`Task` interface, encoded data, image tensors,
padding and length-bucketed greedy generation.

A task turns records (see :mod:`repspace.training.data`) into model batches once
(:meth:`Task.encode`: token ids padded to the longest sequence of the *dataset*, images
pre-processed to ``pixel_values`` once), slices batches by index (trimming padding to the
batch's longest row), computes the loss and predicts strings for scoring.

Generation is batched by *prompt length*: each batch holds prompts of equal length, so no
padding ever enters a prompt.  That sidesteps left/right-padding differences between
architectures (BLIP drops the last prompt token and ignores padding in its cross-attention
mask at generation time) and makes evaluation identical to unbatched greedy decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["Task", "Encoded", "pad", "PixelStore", "generate_by_length", "tokenizer_of"]

# Above this many bytes of float32 pixels the images are processed per batch instead of once.
_PRECOMPUTE_LIMIT = 2 << 30


def tokenizer_of(processor) -> Any:
    """The tokenizer inside a (multimodal) processor, or the processor itself."""
    return getattr(processor, "tokenizer", None) or processor


def pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """``(len(rows), max_len)`` int64, right-padded with ``value`` (the probe's
    :func:`repspace.probe.layout.pad_rows`: one layout for compare and train)."""
    from repspace.probe.layout import pad_rows

    return pad_rows(rows, value)


# A batch trimmed to its longest row, the labels following the attention mask (causal LMs and
# BLIP's text decoder)
TRIM_BY_ATTENTION = {
    "input_ids": "attention_mask",
    "labels": "attention_mask",
    "attention_mask": "attention_mask",
}


class PixelStore:
    """``pixel_values`` of the distinct images of some records, computed once.

    ``index[k]`` is record ``k``'s image (records of one VQA image share it).  Images go
    through the checkpoint's own image processor (resize, rescale, normalise) in chunks;
    when all of them would exceed 2 GiB of float32 they are processed per batch instead.
    """

    def __init__(self, image_processor, records: Sequence[dict], desc: str = "images") -> None:
        if image_processor is None:
            raise ValueError(
                "this checkpoint has no image processor (preprocessor_config.json); "
                "save one next to the model (e.g. BlipProcessor.save_pretrained)"
            )
        self.image_processor = image_processor
        ids: dict[int, int] = {}
        self.images: list[np.ndarray] = []
        index = []
        for r in records:
            img = r.get("image")
            if img is None:
                raise ValueError("an image task got a record without an image")
            key = id(img)
            if key not in ids:
                ids[key] = len(self.images)
                self.images.append(img)
            index.append(ids[key])
        self.index = torch.tensor(index, dtype=torch.long)
        self.values: torch.Tensor | None = None
        first = self._process(self.images[:1])
        if first.numel() * 4 * len(self.images) <= _PRECOMPUTE_LIMIT:
            chunks = [
                self._process(self.images[i : i + 256]) for i in range(0, len(self.images), 256)
            ]
            self.values = torch.cat(chunks)

    def _process(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        out = self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        return torch.as_tensor(out, dtype=torch.float32)

    def get(self, records: torch.Tensor) -> torch.Tensor:
        """``(len(records), 3, S, S)`` pixel values of the given record indices."""
        img = self.index[records]
        if self.values is not None:
            return self.values[img]
        return self._process([self.images[int(i)] for i in img])


@dataclass
class Encoded:
    """Pre-materialised tensors of a record list.

    ``tensors``: name -> ``(n, ...)`` tensor, sliced per batch; ``lengths`` name -> the
    attention-mask name used to trim that tensor's padding; ``prompts``: per record, the
    token ids generation starts from (generative tasks); ``pixels``: images or None.
    """

    n: int
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    trim: dict[str, str] = field(default_factory=dict)
    prompts: list[list[int]] | None = None
    pixels: PixelStore | None = None

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """The records ``idx`` as model inputs, padding trimmed to the batch's longest row;
        every tensor contiguous (a trimmed ``[:, :width]`` view is not, and model code calls
        ``.view`` on its inputs: T5's loss does ``labels.view(-1)``)."""
        from repspace.probe.batch_check import finish_batch

        out = {k: v[idx] for k, v in self.tensors.items()}
        for name, mask in self.trim.items():
            width = int(out[mask].sum(1).max())
            out[name] = out[name][:, :width]
        if self.pixels is not None:
            out["pixel_values"] = self.pixels.get(idx)
        return finish_batch(out)


class Task:
    """Glue between one model class and one task (``"captioning"`` / ``"vqa"``)."""

    kind = "task"

    def __init__(self, model: nn.Module, processor, task: str, *, text_only: bool = False) -> None:
        # text_only: the model takes no images, so captioning (an image task) is refused here,
        # once for every text task
        if task == "captioning" and text_only:
            raise ValueError(
                f"task captioning needs an image model; {type(model).__name__} takes only text"
            )
        self.task = task
        self.processor = processor
        self.tokenizer = tokenizer_of(processor)
        if self.tokenizer is None:
            raise ValueError(
                f"{type(model).__name__}: the checkpoint ships no tokenizer/processor; "
                "save one next to the model"
            )

    # Model surgery (heads) -------------------------------------------------------------
    def fit(self, train_records: Sequence[dict]) -> None:
        """Learn task state from the training records (e.g. an answer vocabulary)."""

    def state(self) -> dict:
        """JSON-ready state needed to rebuild the model (stored in the manifest)."""
        return {}

    def load_state(self, state: dict) -> None:
        """Inverse of :meth:`state`."""

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Before the method is applied: add task heads."""
        return model

    def after_apply(self, model: nn.Module) -> None:
        """After every ``apply_method`` stage: make new task heads trainable."""

    # Data, loss, prediction --------------------------------------------------------------
    def encode(self, records: Sequence[dict], train: bool) -> Encoded:
        raise NotImplementedError

    def check(
        self, model: nn.Module, batch: dict[str, torch.Tensor], what: str = "training batch"
    ) -> None:
        """Verify ``batch`` before the forward (:func:`repspace.probe.batch_check.check_batch`):
        a failure names the field and is repspace's error, not the model's."""
        from repspace.probe.batch_check import check_batch

        check_batch(model, batch, what=f"{self.kind} {what}")

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # "label_mask" only trims a batch to its longest target; no model takes it
        return model(**{k: v for k, v in batch.items() if k != "label_mask"}).loss

    def predict(
        self, model: nn.Module, enc: Encoded, batch_size: int, max_new_tokens: int, gen_kwargs: dict
    ) -> list[str]:
        raise NotImplementedError

    def generate_greedy(
        self, model: nn.Module, ids: torch.Tensor, extra: dict, max_new_tokens: int, gen_kwargs
    ) -> torch.Tensor:
        """``model.generate`` greedy (no sampling, one beam) on unpadded prompts ``ids`` of one
        length, with ``extra`` model inputs already on the model's device; the task's own
        ``eos`` / ``pad_id`` end and pad the answers."""
        dev = next(model.parameters()).device
        return model.generate(
            input_ids=ids.to(dev),
            attention_mask=torch.ones_like(ids).to(dev),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=self.eos,
            pad_token_id=self.pad_id,
            **extra,
            **gen_kwargs,
        )

    def decode(self, ids: Sequence[int], eos: int | None) -> str:
        ids = list(ids)
        if eos is not None and eos in ids:
            ids = ids[: ids.index(eos)]
        return " ".join(self.tokenizer.decode(ids, skip_special_tokens=True).split())

    def text_ids(self, text: str, lead_space: bool = False) -> list[int]:
        """Token ids of ``text`` without special tokens (BPE tokenizers get a leading space
        for non-initial segments)."""
        return list(
            self.tokenizer((" " + text) if lead_space else text, add_special_tokens=False)[
                "input_ids"
            ]
        )


def generate_by_length(
    prompts: Sequence[Sequence[int]],
    batch_size: int,
    run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    desc: str = "",
) -> list[list[int]]:
    """New tokens for every prompt, generated in batches of equal-length prompts.

    ``run(input_ids (b, L), record_index (b,)) -> new token ids (b, T)``; rows are returned
    in prompt order.
    """
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p), []).append(i)
    out: list[list[int]] = [[] for _ in prompts]
    for length in sorted(groups):
        rows = groups[length]
        for s in range(0, len(rows), batch_size):
            chunk = rows[s : s + batch_size]
            ids = torch.tensor([list(prompts[i]) for i in chunk], dtype=torch.long)
            new = run(ids, torch.tensor(chunk, dtype=torch.long))
            for i, r in zip(chunk, new.tolist()):
                out[i] = r
    return out
