"""Sequence classification glue (BERT): VQA as classification over the closed answer set,
or sentence classification (``task="classify"``, :mod:`repspace.data.sentences`).

Input: ``[CLS] caption [SEP] question [SEP]`` (VQA: the scene's caption is the context) or
``[CLS] sentence [SEP]`` (classify); label: the answer's index in the answer vocabulary
(sorted answers of the training set).
The checkpoint's classifier is *replaced* by a fresh ``Linear(hidden, n_answers)`` (seeded)
before the method is applied, and is made trainable after it whatever the method — a new
head has to learn; it is counted in the trainable parameters and saved with them.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from repspace.training.tasks.base import Encoded, Task, pad

__all__ = ["SequenceClassificationTask"]

_HEADS = ("classifier", "score")


def _head_owner(model: nn.Module) -> tuple[nn.Module, str]:
    from repspace.layer_table import unwrap_model

    root = unwrap_model(model)
    for name in _HEADS:
        mod = getattr(root, name, None)
        if isinstance(mod, nn.Module):
            return root, name
    raise ValueError(
        f"{type(root).__name__}: no classification head ({' or '.join(_HEADS)}) to replace"
    )


class SequenceClassificationTask(Task):
    kind = "sequence-classification"

    def __init__(self, model, processor, task: str) -> None:
        super().__init__(model, processor, task, text_only=True)
        self.answers: list[str] = []

    def fit(self, train_records: Sequence[dict]) -> None:
        self.answers = sorted({r["answer"] for r in train_records})

    def state(self) -> dict:
        return {"answers": list(self.answers)}

    def load_state(self, state: dict) -> None:
        answers = state.get("answers")
        if not isinstance(answers, list) or not answers:
            raise ValueError(
                "manifest task_state has no answer vocabulary for the classification head"
            )
        self.answers = [str(a) for a in answers]

    def prepare_model(self, model: nn.Module) -> nn.Module:
        root, name = _head_owner(model)
        old = getattr(root, name)
        linear = old if isinstance(old, nn.Linear) else getattr(old, "out_proj", None)
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"{type(root).__name__}.{name} is not a Linear head; cannot resize it")
        head = nn.Linear(linear.in_features, len(self.answers), bias=True)
        if linear is old:
            setattr(root, name, head)
        else:
            old.out_proj = head
        root.num_labels = len(self.answers)
        root.config.num_labels = len(self.answers)
        root.config.id2label = dict(enumerate(self.answers))
        root.config.label2id = {a: i for i, a in enumerate(self.answers)}
        root.config.problem_type = "single_label_classification"
        return model

    def after_apply(self, model: nn.Module) -> None:
        root, name = _head_owner(model)
        for p in getattr(root, name).parameters():
            p.requires_grad_(True)

    def encode(self, records: Sequence[dict], train: bool) -> Encoded:
        index = {a: i for i, a in enumerate(self.answers)}
        if self.task == "classify":
            enc = self.tokenizer([r["text"] for r in records], truncation=True)
        else:
            if any(not r.get("caption") for r in records):
                raise ValueError(
                    "text-only VQA answers from the scene's caption; these records have none"
                )
            enc = self.tokenizer(
                [r["caption"] for r in records], [r["question"] for r in records], truncation=True
            )
        ids = pad(enc["input_ids"], self.tokenizer.pad_token_id or 0)
        t = {
            "input_ids": ids,
            "attention_mask": pad([[1] * len(x) for x in enc["input_ids"]], 0),
            "labels": torch.tensor(
                [index.get(r["answer"], -100) for r in records], dtype=torch.long
            ),
        }
        if "token_type_ids" in enc:
            t["token_type_ids"] = pad(enc["token_type_ids"], 0)
        trim = {k: "attention_mask" for k in t if k != "labels"}
        return Encoded(len(records), t, trim)

    def predict(
        self, model, enc: Encoded, batch_size: int, max_new_tokens: int, gen_kwargs: dict
    ) -> list[str]:
        dev = next(model.parameters()).device
        out: list[str] = []
        for s in range(0, enc.n, batch_size):
            b = enc.batch(torch.arange(s, min(enc.n, s + batch_size)))
            b.pop("labels")
            logits = model(**{k: v.to(dev) for k, v in b.items()}).logits
            out += [self.answers[i] for i in logits.argmax(-1).tolist()]
        return out
