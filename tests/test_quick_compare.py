"""The quick check's one end-to-end compare (docs/development.md, issue 30 item 8).

Everything else in `-m "not slow"` tests a stage alone; this one runs the whole path --
checkpoints saved to disk, loaded, probed, captured, accumulated, measured -- on the
smallest models that still have a tokenizer and three layers, and asserts real numbers:
a model compared with a second copy of itself has linear CKA 1 and Procrustes distance 0 at
every layer, and a model with other weights does not.  About 1 s of CPU.
"""

import math

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

WORDS = "a the red blue green circle square star is left right of above below small large".split()
SENTENCES = [
    f"a {size} {c} {s} is {p} of the {c2} star"
    for size in ("small", "large")
    for c in ("red", "blue", "green")
    for s in ("circle", "square")
    for p in ("left", "right", "above")
    for c2 in ("red", "green")
]


def _save_tiny_bert(path, seed: int) -> None:
    torch.manual_seed(seed)
    BertModel(
        BertConfig(
            vocab_size=len(WORDS) + 5,
            hidden_size=16,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=32,
        )
    ).eval().save_pretrained(path)
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    ).save_pretrained(path)


@pytest.mark.filterwarnings("ignore::UserWarning")  # the copy is bit-identical: said, expected
def test_compare_end_to_end_self_cka_is_one(tmp_path):
    from repspace.compare import compare

    for name, seed in (("base", 0), ("copy", 0), ("other", 1)):
        _save_tiny_bert(tmp_path / name, seed)
    probe = tmp_path / "probe.txt"
    probe.write_text("\n".join(SENTENCES))
    res = compare(
        str(tmp_path / "base"),
        [str(tmp_path / "copy"), str(tmp_path / "other")],
        probe=str(probe),
        num_samples=32,
        batch_size=16,
        layers="blocks",
    )

    assert res.layers == [f"encoder.layer.{i}" for i in range(3)]
    assert any("bit-identical" in w for w in res.warnings)  # the copy is recognised as such
    same, other = (res.metrics[n] for n in res.tuned_names)
    for layer in res.layers:
        assert same[layer]["linear_cka"] == pytest.approx(1.0, abs=1e-6)
        assert same[layer]["procrustes_distance"] == pytest.approx(0.0, abs=1e-6)
        assert 0.0 < other[layer]["linear_cka"] < 0.999
        d = other[layer]["procrustes_distance"]
        assert math.isfinite(d) and d > 1e-3
