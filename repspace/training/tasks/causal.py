"""Decoder-only glue: LLaVA (image tokens + prompt) and text-only causal LMs (GPT-2, Llama).

Sequence layout (``bos``/``eos`` from the tokenizer; ``<image>`` x n from the model config)::

    LLaVA captioning:  <image>*n [bos] caption [eos]
    LLaVA VQA:         <image>*n [bos] question answer [eos]
    text-only VQA:     [bos] caption question answer [eos]      (the scene's caption is the context)

Labels are -100 everywhere except ``answer [eos]`` / ``caption [eos]`` (the model shifts
them).  ``n`` = (image_size / patch_size)^2, +1 with ``vision_feature_select_strategy="full"``
(the count LLaVA's forward checks).  Generation runs on equal-length prompts, so no padding.

Sentence classification (``task="classify"``) on a text-only causal LM is
:class:`CausalClassificationTask`: a fresh head on the last non-pad token's hidden state.
"""

from __future__ import annotations

from typing import Sequence

import torch

from repspace.probe.layout import answer_rows
from repspace.training.tasks.base import (
    TRIM_BY_ATTENTION,
    Encoded,
    PixelStore,
    Task,
    generate_by_length,
    pad,
)
from repspace.training.tasks.encoder_head import EncoderClassificationTask

__all__ = ["CausalLMTask", "CausalClassificationTask"]


class CausalLMTask(Task):
    def __init__(self, model, processor, task: str, image: bool) -> None:
        super().__init__(model, processor, task, text_only=not image)
        self.image = image
        self.kind = "llava" if image else "causal-lm"
        tok = self.tokenizer
        self.bos = tok.bos_token_id
        self.eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
        if self.eos is None:
            raise ValueError(
                f"{type(model).__name__}: its tokenizer has no eos/sep token to end answers with"
            )
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos
        self.n_image = 0
        if image:
            cfg = model.config
            self.image_token = getattr(cfg, "image_token_id", None)
            if self.image_token is None:
                self.image_token = getattr(cfg, "image_token_index")
            vc = cfg.vision_config
            self.n_image = (vc.image_size // vc.patch_size) ** 2 + (
                1 if getattr(cfg, "vision_feature_select_strategy", "default") == "full" else 0
            )
            self.image_processor = getattr(processor, "image_processor", None)

    def prompt(self, r: dict) -> list[int]:
        p = [self.image_token] * self.n_image if self.image else []
        p += [] if self.bos is None else [self.bos]
        if not self.image:
            if not r.get("caption"):
                raise ValueError(
                    "text-only VQA answers from the scene's caption; these records have "
                    "none (use the shapes world, or an image model for real VQA data)"
                )
            p += self.text_ids(r["caption"], lead_space=self.bos is not None)
        if self.task == "vqa":
            p += self.text_ids(r["question"], lead_space=len(p) > 0)
        return p

    def encode(self, records: Sequence[dict], train: bool) -> Encoded:
        prompts = [self.prompt(r) for r in records]
        rows, labels = [], []
        for r, p in zip(records, prompts):
            target = self.text_ids(
                r["caption"] if self.task == "captioning" else r["answer"], lead_space=True
            ) + [self.eos]
            row, label = answer_rows(p, target, seq2seq=False)
            rows.append(row)
            labels.append(label)
        t = {
            "input_ids": pad(rows, self.pad_id),
            "attention_mask": pad([[1] * len(r) for r in rows], 0),
            "labels": pad(labels, -100),
        }
        pixels = PixelStore(self.image_processor, records) if self.image else None
        return Encoded(len(records), t, dict(TRIM_BY_ATTENTION), prompts, pixels)

    def predict(
        self, model, enc: Encoded, batch_size: int, max_new_tokens: int, gen_kwargs: dict
    ) -> list[str]:
        dev = next(model.parameters()).device

        def run(ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            kw = {"pixel_values": enc.pixels.get(rows).to(dev)} if self.image else {}
            self.check(model, {"input_ids": ids.to(dev), **kw}, "generation input")
            out = self.generate_greedy(model, ids, kw, max_new_tokens, gen_kwargs)
            return out[:, ids.shape[1] :].cpu()

        new = generate_by_length(enc.prompts, batch_size, run)
        return [self.decode(t, self.eos) for t in new]


class CausalClassificationTask(EncoderClassificationTask):
    """Sentence classification (``task="classify"``) on a text-only causal LM folder
    (GPT-2, Llama, Mistral, Qwen2, Gemma2, Phi-3 ... ``*ForCausalLM`` / ``*LMHeadModel``).

    What transformers' ``*ForSequenceClassification`` does, on the checkpoint users have: a
    fresh ``Linear(hidden, n_labels, bias=False)`` (seeded; trainable and saved whatever the
    method) reads the final hidden state of the **last non-pad token** -- in a causal LM the
    only position that has seen the whole sentence.  It is attached as ``adapter_task_head``
    on the checkpoint's own model, so every layer name stays the base's (``repspace compare``
    pairs them; capture hides ``adapter_*``); the LM head is kept but unused.

    No pad token is needed (GPT-2 and Llama ship none): padding is marked by the attention
    mask only, and "last non-pad" is the last position whose mask is 1, so right and left
    padding pick the same token (transformers instead looks for ``pad_token_id`` and refuses
    batches without one).  Position ids are counted over real tokens (``cumsum(mask) - 1``),
    so a left-padded sentence also gets the positions it has alone -- GPT-2's absolute
    position embeddings would otherwise shift.  Input: the tokenizer's own layout of the
    sentence (Llama's ``<s>`` first, nothing added for GPT-2), padded right here.
    """

    kind = "causal-lm-classification"

    def new_head(self, hidden: int, n_labels: int) -> torch.nn.Module:
        return torch.nn.Linear(hidden, n_labels, bias=False)  # as transformers' score head

    def encode(self, records: Sequence[dict], train: bool) -> Encoded:
        tok = self.tokenizer
        index = {a: i for i, a in enumerate(self.answers)}
        rows = [list(x) for x in tok([r["text"] for r in records], truncation=True)["input_ids"]]
        if any(not r for r in rows):
            raise ValueError(
                "classify: a sentence tokenized to no tokens; every record needs a non-empty 'text'"
            )
        fill = (
            tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        )  # masked anyway
        t = {
            "input_ids": pad(rows, fill),
            "attention_mask": pad([[1] * len(r) for r in rows], 0),
            "labels": torch.tensor(
                [index.get(r["answer"], -100) for r in records], dtype=torch.long
            ),
        }
        return Encoded(
            len(records), t, {"input_ids": "attention_mask", "attention_mask": "attention_mask"}
        )

    def logits(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from repspace.layer_table import unwrap_model
        from repspace.training.tasks.encoder_head import HEAD_NAME

        root = unwrap_model(model)
        mask = batch["attention_mask"]
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        h = root.base_model(
            input_ids=batch["input_ids"],
            attention_mask=mask,
            position_ids=positions,
            use_cache=False,
        ).last_hidden_state
        width = torch.arange(mask.shape[-1], device=mask.device)
        last = (
            torch.where(mask.bool(), width, -1).max(-1).values
        )  # last real token, either padding side
        if bool((last < 0).any()):
            raise ValueError(
                "classify: a row of the batch has an all-zero attention_mask (no tokens)"
            )
        return getattr(root, HEAD_NAME)(h[torch.arange(h.shape[0], device=h.device), last])
