"""Tiny checkpoints and a tiny HF ``Trainer`` run for the tracker tests (offline, seconds)."""

import pytest
import torch

from tests.compare.conftest import SENTENCES, WORDS, word_tokenizer

pytest.importorskip("transformers")


def tiny_config(num_labels=2, dropout=0.1):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(WORDS) + 5,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        num_labels=num_labels,
    )


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A BERT sentence classifier (3 blocks, d = 32, dropout 0.1) with its word tokenizer."""
    from transformers import BertForSequenceClassification

    d = tmp_path_factory.mktemp("track-models") / "tiny-cls"
    torch.manual_seed(0)
    BertForSequenceClassification(tiny_config()).save_pretrained(d)
    word_tokenizer().save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def probe_txt(tmp_path_factory):
    path = tmp_path_factory.mktemp("track-probe") / "probe.txt"
    path.write_text("\n".join(SENTENCES))
    return path


def load_tiny(path):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)


class SentenceLabels(torch.utils.data.Dataset):
    """Does the sentence mention ``word``?  Tokenized once, padded to the longest."""

    def __init__(self, tokenizer, word="red", sentences=SENTENCES):
        self.enc = tokenizer(list(sentences), padding=True, return_tensors="pt")
        self.labels = torch.tensor([int(word in s) for s in sentences])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {
            "input_ids": self.enc["input_ids"][i],
            "attention_mask": self.enc["attention_mask"][i],
            "labels": self.labels[i],
        }


def train(
    model, tokenizer, out, *, steps=6, callbacks=(), save_steps=None, lr=1e-2, batch=8, **extra
):
    """A seeded Trainer run on the sentence task; returns the trainer (trained)."""
    import transformers
    from transformers import Trainer, TrainingArguments

    transformers.logging.set_verbosity_error()
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=batch,
        learning_rate=lr,
        logging_steps=1,
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        **extra,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=SentenceLabels(tokenizer),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    trainer.train()
    return trainer


def losses(trainer):
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def tracked(trainer):
    """``{step: {scalar: value}}`` of the repspace scalars in the trainer's log."""
    out = {}
    for h in trainer.state.log_history:
        scalars = {k: v for k, v in h.items() if k.startswith("repspace/")}
        if scalars:
            out.setdefault(h["step"], {}).update(scalars)
    return out


def by_position(tracked_values, compared_metrics, compared_layers):
    """Pairs (tracked, compared) of every metric, layers matched by position (compare names a
    head model's layers by its backbone's names)."""
    assert len(tracked_values) == len(compared_layers)
    pairs = []
    for (layer, row), other in zip(tracked_values.items(), compared_layers):
        for metric, value in compared_metrics[other].items():
            pairs.append((f"{layer}|{metric}", row[metric], value))
    return pairs
