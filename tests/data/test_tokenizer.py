"""Word-level tokenizer: BLIP special-token layout, no [UNK] on generated text, save/load round trip."""

import pytest
import torch
from transformers import AutoTokenizer, BlipTextConfig, PreTrainedTokenizerFast

from repspace.data import (
    SPECIAL_TOKENS,
    ShapesWorld,
    blip_token_ids,
    build_tokenizer,
    decoder_inputs,
    vocabulary,
)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_layout_matches_blip(tok):
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(
        range(len(SPECIAL_TOKENS))
    )
    assert tok.pad_token_id == 0  # BlipTextConfig default, also the embedding padding_idx
    assert (
        tok.bos_token == "[DEC]" and tok.eos_token_id == tok.sep_token_id
    )  # generate() stops at sep
    assert len(tok) == len(SPECIAL_TOKENS) + len(vocabulary())
    ids = blip_token_ids(tok)
    cfg = BlipTextConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, **ids
    )
    assert (cfg.vocab_size, cfg.bos_token_id, cfg.sep_token_id, cfg.pad_token_id) == (
        len(tok),
        tok.bos_token_id,
        tok.sep_token_id,
        0,
    )


def test_generated_text_round_trips_without_unk(tok):
    w = ShapesWorld(seed=0, domain="shifted")
    for i in range(30):
        s = w.sample("train", i)
        for text in s.captions + [q.question for q in s.qa]:
            ids = tok(text)["input_ids"]
            assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
            assert tok.unk_token_id not in ids
            assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.unk_token_id in tok("a purple elephant")["input_ids"]
    assert tok("A RED Circle")["input_ids"] == tok("a red circle")["input_ids"]


@pytest.mark.parametrize("loader", [AutoTokenizer, PreTrainedTokenizerFast])
def test_save_load_round_trip(tok, tmp_path, loader):
    tok.save_pretrained(tmp_path)
    back = loader.from_pretrained(str(tmp_path))
    texts = ["is the small circle left of the red square?", "a large black cross at the center"]
    assert back(texts)["input_ids"] == tok(texts)["input_ids"]
    assert blip_token_ids(back) == blip_token_ids(tok)
    assert back.get_vocab() == tok.get_vocab()


def test_decoder_inputs(tok):
    out = decoder_inputs(
        tok, ["a red circle at the top", "there is one shape a small blue square at the center"]
    )
    ids, mask, labels = out["input_ids"], out["attention_mask"], out["labels"]
    assert ids.dtype == torch.long and ids.shape == mask.shape == labels.shape
    assert (ids[:, 0] == tok.bos_token_id).all()
    assert (labels[mask == 0] == -100).all() and (labels[mask == 1] == ids[mask == 1]).all()
    assert ids[0, mask[0].sum() - 1] == tok.sep_token_id
    fixed = decoder_inputs(tok, ["a red circle"], max_length=12)
    assert fixed["input_ids"].shape == (1, 12)
    with pytest.raises(ValueError):
        decoder_inputs(tok, "a red circle")


def test_bad_vocabulary():
    with pytest.raises(ValueError, match="special"):
        build_tokenizer(["a", "[PAD]"])
    with pytest.raises(ValueError, match="duplicate"):
        build_tokenizer(["a", "a"])
