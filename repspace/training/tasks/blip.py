"""BLIP glue: ``BlipForConditionalGeneration`` (captioning, generative VQA) and
``BlipForQuestionAnswering`` (VQA).

``BlipForConditionalGeneration`` sequences (ids from the model's text config):

* captioning: ``[DEC] caption [SEP]``; labels = ids (BLIP shifts them itself), padding -100.
* VQA: ``[DEC] question ? answer [SEP]``; labels -100 on the prompt ``[DEC] question ?``
  and on padding, so only ``answer [SEP]`` is learned.

At evaluation ``generate()`` overwrites position 0 with ``bos`` and **drops the last input
token** (it expects ``[DEC] ... [SEP]``-style inputs); we therefore append a throw-away
``[SEP]`` to the prompt and strip the prompt's length from the output.

``BlipForQuestionAnswering``: the question (``[CLS] question [SEP]``, the processor's
layout) goes to the text encoder, the decoder learns ``[DEC] answer [SEP]``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from repspace.training.tasks.base import (
    TRIM_BY_ATTENTION,
    Encoded,
    PixelStore,
    Task,
    generate_by_length,
    pad,
)

__all__ = ["BlipGenerativeTask", "BlipQuestionAnsweringTask"]


class _BlipBase(Task):
    def __init__(self, model, processor, task: str) -> None:
        super().__init__(model, processor, task)
        tc = model.config.text_config
        self.bos, self.sep, self.pad_id = tc.bos_token_id, tc.sep_token_id, tc.pad_token_id
        self.image_processor = getattr(processor, "image_processor", None)

    def pixels(self, records) -> PixelStore:
        return PixelStore(self.image_processor, records)


class BlipGenerativeTask(_BlipBase):
    kind = "blip-generative"

    def prompt(self, r: dict) -> list[int]:
        return [self.bos] + (self.text_ids(r["question"]) if self.task == "vqa" else [])

    def encode(self, records: Sequence[dict], train: bool) -> Encoded:
        prompts = [self.prompt(r) for r in records]
        rows, labels = [], []
        for r, p in zip(records, prompts):
            target = self.text_ids(r["caption"] if self.task == "captioning" else r["answer"]) + [
                self.sep
            ]
            rows.append(p + target)
            # captioning: label position 0 is shifted away by BLIP; VQA: the prompt is not learned
            labels.append(([self.bos] if self.task == "captioning" else [-100] * len(p)) + target)
        ids = pad(rows, self.pad_id)
        mask = pad([[1] * len(r) for r in rows], 0)
        lab = pad(labels, -100)
        return Encoded(
            len(records),
            {"input_ids": ids, "attention_mask": mask, "labels": lab},
            dict(TRIM_BY_ATTENTION),
            prompts,
            self.pixels(records),
        )

    def predict(
        self, model, enc: Encoded, batch_size: int, max_new_tokens: int, gen_kwargs: dict
    ) -> list[str]:
        def run(ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            dummy = torch.full((ids.shape[0], 1), self.sep, dtype=torch.long)
            inp = torch.cat([ids, dummy], 1).to(_device(model))
            out = model.generate(
                pixel_values=enc.pixels.get(rows).to(_device(model)),
                input_ids=inp,
                attention_mask=torch.ones_like(inp),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                **gen_kwargs,
            )
            return out[:, ids.shape[1] :].cpu()

        new = generate_by_length(enc.prompts, batch_size, run)
        return [self.decode(t, self.sep) for t in new]


class BlipQuestionAnsweringTask(_BlipBase):
    kind = "blip-qa"

    def __init__(self, model, processor, task: str) -> None:
        if task != "vqa":
            raise ValueError(
                f"task {task} needs a BlipForConditionalGeneration base; "
                f"{type(model).__name__} only answers questions"
            )
        super().__init__(model, processor, task)

    def encode(self, records: Sequence[dict], train: bool) -> Encoded:
        q = [list(self.tokenizer(r["question"])["input_ids"]) for r in records]
        a = [[self.bos] + self.text_ids(r["answer"]) + [self.sep] for r in records]
        t = {
            "input_ids": pad(q, self.pad_id),
            "attention_mask": pad([[1] * len(x) for x in q], 0),
            "decoder_input_ids": pad(a, self.pad_id),
            "decoder_attention_mask": pad([[1] * len(x) for x in a], 0),
        }
        t["labels"] = t["decoder_input_ids"].masked_fill(t["decoder_attention_mask"] == 0, -100)
        trim = {
            "input_ids": "attention_mask",
            "attention_mask": "attention_mask",
            "decoder_input_ids": "decoder_attention_mask",
            "labels": "decoder_attention_mask",
            "decoder_attention_mask": "decoder_attention_mask",
        }
        return Encoded(len(records), t, trim, q, self.pixels(records))

    def predict(
        self, model, enc: Encoded, batch_size: int, max_new_tokens: int, gen_kwargs: dict
    ) -> list[str]:
        def run(ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            dev = _device(model)
            out = model.generate(
                input_ids=ids.to(dev),
                pixel_values=enc.pixels.get(rows).to(dev),
                attention_mask=torch.ones_like(ids).to(dev),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                **gen_kwargs,
            )
            return out[:, 1:].cpu()  # drop the [DEC] start token

        new = generate_by_length(enc.prompts, batch_size, run)
        return [self.decode(t, self.sep) for t in new]


def _device(model) -> torch.device:
    return next(model.parameters()).device
