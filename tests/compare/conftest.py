"""Tiny checkpoints on disk for end-to-end compare tests (built from configs, offline)."""

import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

WORDS = (
    "a the red blue green yellow circle square triangle star is left right of above below "
    "small large and two three one shape picture"
).split()
SENTENCES = [
    f"a {size} {c} {s} is {p} of the {c2} {s2}"
    for size in ("small", "large")
    for c in ("red", "blue", "green")
    for s in ("circle", "square")
    for p in ("left", "right", "above")
    for c2, s2 in (("yellow", "star"), ("blue", "triangle"))
]


def word_tokenizer():
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def tiny_bert(seed=0, hidden=32):
    torch.manual_seed(seed)
    return BertModel(
        BertConfig(
            vocab_size=len(WORDS) + 5,
            hidden_size=hidden,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=32,
        )
    ).eval()


@pytest.fixture(scope="session")
def probe_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "probe.txt"
    path.write_text("\n".join(SENTENCES))
    return path


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models") / "tiny-bert"
    tiny_bert().save_pretrained(d)
    word_tokenizer().save_pretrained(d)
    return d


def train_lora(base_dir, out, steps=30, seed=0, lr=1e-2, label_word="red", tokenizer=None):
    """A LoRA adapter (r = 4 on query/value) trained for a few steps on a toy sentence task.

    The task: does the sentence contain ``label_word``?  Mean-pooled last hidden state
    → linear head.  Saved to ``out`` with ``base_dir`` recorded as its base.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    torch.manual_seed(seed)
    tok = tokenizer or word_tokenizer()
    model = get_peft_model(
        AutoModel.from_pretrained(base_dir, local_files_only=True),
        LoraConfig(r=4, lora_alpha=16, target_modules=["query", "value"]),
    )
    head = torch.nn.Linear(model.config.hidden_size, 1)
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    labels = torch.tensor([float(label_word in s) for s in SENTENCES])
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr)
    losses = []
    for _ in range(steps):
        pooled = model(**enc).last_hidden_state.mean(1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(pooled)[:, 0], labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.save_pretrained(out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(base_dir)
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    return losses


@pytest.fixture(scope="session")
def lora_dir(base_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapters") / "lora-r4"
    losses = train_lora(base_dir, out)
    assert losses[-1] < losses[0]
    return out
