"""Text-to-text glue for encoder-decoder LMs (T5 / FLAN-T5), as in AdaLink's text experiments.

VQA on the scene's caption as a text task: the encoder reads
``question: <question> context: <caption> </s>``, the decoder learns ``answer </s>`` (T5
shifts the labels right itself, starting from ``decoder_start_token_id``).  Sentence
classification (``task="classify"``) is text-to-text too: ``<sentence> </s>`` (the sentence
carries its question, :mod:`repspace.data.sentences`) -> ``<label> </s>`` (the label word is
generated, as T5 does GLUE).  Captioning needs
an image model and is refused.  Evaluation is greedy decoding of equal-length inputs.
"""

from __future__ import annotations

from typing import Sequence

import torch

from repspace.probe.layout import answer_rows
from repspace.training.tasks.base import Encoded, Task, generate_by_length, pad

__all__ = ["TextToTextTask"]


class TextToTextTask(Task):
    kind = "text-to-text"

    def __init__(self, model, processor, task: str) -> None:
        super().__init__(model, processor, task, text_only=True)
        tok = self.tokenizer
        self.eos = tok.eos_token_id
        if self.eos is None or tok.pad_token_id is None:
            raise ValueError(
                f"{type(model).__name__}: its tokenizer needs eos and pad tokens for text-to-text"
            )
        self.pad_id = tok.pad_token_id

    def source(self, r: dict) -> list[int]:
        if self.task == "classify":
            return list(self.tokenizer(r["text"])["input_ids"])
        if not r.get("caption"):
            raise ValueError(
                "text-to-text VQA answers from the scene's caption; these records have none "
                "(use the shapes world, or an image model for real VQA data)"
            )
        return list(
            self.tokenizer(f"question: {r['question']} context: {r['caption']}")["input_ids"]
        )

    def encode(self, records: Sequence[dict], train: bool) -> Encoded:
        src = [self.source(r) for r in records]
        # the encoder reads the source, the labels are the answer (T5 shifts them itself)
        tgt = [
            answer_rows(s, self.text_ids(r["answer"]) + [self.eos], seq2seq=True)[1]
            for s, r in zip(src, records)
        ]
        t = {
            "input_ids": pad(src, self.pad_id),
            "attention_mask": pad([[1] * len(x) for x in src], 0),
            "labels": pad(tgt, -100),
            "label_mask": pad([[1] * len(x) for x in tgt], 0),
        }
        trim = {
            "input_ids": "attention_mask",
            "attention_mask": "attention_mask",
            "labels": "label_mask",
            "label_mask": "label_mask",
        }
        return Encoded(len(records), t, trim, src)

    def predict(
        self, model, enc: Encoded, batch_size: int, max_new_tokens: int, gen_kwargs: dict
    ) -> list[str]:
        def run(ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            self.check(model, {"input_ids": ids}, "generation input")
            out = self.generate_greedy(model, ids, {}, max_new_tokens, gen_kwargs)
            return out[:, 1:].cpu()  # drop the decoder start token

        new = generate_by_length(enc.prompts, batch_size, run)
        return [self.decode(t, self.eos) for t in new]
