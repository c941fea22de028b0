"""A classification head on a text encoder checkpoint that has none: ``*ForMaskedLM``
(BERT, RoBERTa, MiniLM ...) or a bare encoder (``BertModel`` as sentence-transformers saves it).

This is what users do with such a checkpoint -- fine-tune it for classification: the task is
VQA as classification over the training set's answers, input ``[CLS] caption [SEP] question
[SEP]`` (the tokenizer's pair layout), as for ``*ForSequenceClassification``.  The head reads
the first token's final hidden state: ``W_out tanh(W_dense h_cls + b) + b_out`` (BERT's pooler +
classifier, RoBERTa's classification head), freshly initialised (seeded) and trained whatever
the method.  It is attached as ``adapter_task_head`` on the checkpoint's own model object, so
the backbone keeps its class and every layer name (``repspace compare`` pairs it with the
base; capture hides ``adapter_*`` modules); the MLM head is kept but unused.
"""

from __future__ import annotations


import torch
from torch import nn

from repspace.training.tasks.seqcls import SequenceClassificationTask

__all__ = ["EncoderClassificationTask", "ClassificationHead", "HEAD_NAME"]

HEAD_NAME = "adapter_task_head"


class ClassificationHead(nn.Module):
    def __init__(self, hidden: int, n_labels: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, n_labels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out_proj(torch.tanh(self.dense(h)))


def _encoder(model: nn.Module) -> nn.Module:
    enc = getattr(model, "base_model", None)
    return enc if isinstance(enc, nn.Module) else model


class EncoderClassificationTask(SequenceClassificationTask):
    kind = "encoder-classification"

    def prepare_model(self, model: nn.Module) -> nn.Module:
        from repspace.layer_table import unwrap_model

        root = unwrap_model(model)
        hidden = getattr(root.config, "hidden_size", None)
        if not isinstance(hidden, int):
            raise ValueError(
                f"{type(root).__name__}: config has no hidden_size for the classification head"
            )
        ref = next(root.parameters())
        setattr(root, HEAD_NAME, self.new_head(hidden, len(self.answers)).to(ref.device, ref.dtype))
        return model

    def new_head(self, hidden: int, n_labels: int) -> nn.Module:
        """The fresh head this task trains on the pooled hidden state."""
        return ClassificationHead(hidden, n_labels)

    def after_apply(self, model: nn.Module) -> None:
        from repspace.layer_table import unwrap_model

        for p in getattr(unwrap_model(model), HEAD_NAME).parameters():
            p.requires_grad_(True)

    def logits(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from repspace.layer_table import unwrap_model

        root = unwrap_model(model)
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        h = _encoder(root)(**inputs).last_hidden_state[:, 0]
        return getattr(root, HEAD_NAME)(h)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(
            self.logits(model, batch), batch["labels"], ignore_index=-100
        )

    def predict(
        self, model, enc, batch_size: int, max_new_tokens: int, gen_kwargs: dict
    ) -> list[str]:
        dev = next(model.parameters()).device
        out: list[str] = []
        for s in range(0, enc.n, batch_size):
            b = enc.batch(torch.arange(s, min(enc.n, s + batch_size)))
            logits = self.logits(model, {k: v.to(dev) for k, v in b.items()})
            out += [self.answers[i] for i in logits.argmax(-1).tolist()]
        return out
