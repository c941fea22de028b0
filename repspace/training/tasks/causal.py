"""Decoder-only glue: LLaVA (image tokens + prompt) and text-only causal LMs (GPT-2, Llama).

Sequence layout (``bos``/``eos`` from the tokenizer; ``<image>`` x n from the model config)::

    LLaVA captioning:  <image>*n [bos] caption [eos]
    LLaVA VQA:         <image>*n [bos] question answer [eos]
    text-only VQA:     [bos] caption question answer [eos]      (the scene's caption is the context)

Labels are -100 everywhere except ``answer [eos]`` / ``caption [eos]`` (the model shifts
them).  ``n`` = (image_size / patch_size)^2, +1 with ``vision_feature_select_strategy="full"``
(the count LLaVA's forward checks).  Generation runs on equal-length prompts, so no padding.
"""
from __future__ import annotations

from typing import Sequence

import torch

from repspace.training.tasks.base import Encoded, PixelStore, Task, generate_by_length, pad

__all__ = ["CausalLMTask"]

_TRIM = {"input_ids": "attention_mask", "labels": "attention_mask", "attention_mask": "attention_mask"}


class CausalLMTask(Task):
    def __init__(self, model, processor, task: str, image: bool) -> None:
        if task == "captioning" and not image:
            raise ValueError(f"task captioning needs an image model; {type(model).__name__} takes only text")
        super().__init__(model, processor, task)
        self.image = image
        self.kind = "llava" if image else "causal-lm"
        tok = self.tokenizer
        self.bos = tok.bos_token_id
        self.eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
        if self.eos is None:
            raise ValueError(f"{type(model).__name__}: its tokenizer has no eos/sep token to end answers with")
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos
        self.n_image = 0
        if image:
            cfg = model.config
            self.image_token = getattr(cfg, "image_token_id", None)
            if self.image_token is None:
                self.image_token = getattr(cfg, "image_token_index")
            vc = cfg.vision_config
            self.n_image = (vc.image_size // vc.patch_size) ** 2 + \
                (1 if getattr(cfg, "vision_feature_select_strategy", "default") == "full" else 0)
            self.image_processor = getattr(processor, "image_processor", None)

    def prompt(self, r: dict) -> list[int]:
        p = [self.image_token] * self.n_image if self.image else []
        p += [] if self.bos is None else [self.bos]
        if not self.image:
            if not r.get("caption"):
                raise ValueError("text-only VQA answers from the scene's caption; these records have "
                                 "none (use the shapes world, or an image model for real VQA data)")
            p += self.text_ids(r["caption"], lead_space=self.bos is not None)
        if self.task == "vqa":
            p += self.text_ids(r["question"], lead_space=len(p) > 0)
        return p

    def encode(self, records: Sequence[dict], train: bool) -> Encoded:
        prompts = [self.prompt(r) for r in records]
        rows, labels = [], []
        for r, p in zip(records, prompts):
            target = self.text_ids(r["caption"] if self.task == "captioning" else r["answer"],
                                   lead_space=True) + [self.eos]
            rows.append(p + target)
            labels.append([-100] * len(p) + target)
        t = {"input_ids": pad(rows, self.pad_id), "attention_mask": pad([[1] * len(r) for r in rows], 0),
             "labels": pad(labels, -100)}
        pixels = PixelStore(self.image_processor, records) if self.image else None
        return Encoded(len(records), t, dict(_TRIM), prompts, pixels)

    def predict(self, model, enc: Encoded, batch_size: int, max_new_tokens: int, gen_kwargs: dict) -> list[str]:
        dev = next(model.parameters()).device

        def run(ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            kw = dict(input_ids=ids.to(dev), attention_mask=torch.ones_like(ids).to(dev),
                      max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                      eos_token_id=self.eos, pad_token_id=self.pad_id)
            if self.image:
                kw["pixel_values"] = enc.pixels.get(rows).to(dev)
            out = model.generate(**kw, **gen_kwargs)
            return out[:, ids.shape[1]:].cpu()

        new = generate_by_length(enc.prompts, batch_size, run)
        return [self.decode(t, self.eos) for t in new]
