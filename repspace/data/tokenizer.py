"""Word-level tokenizer over the closed shapes-world vocabulary, laid out the way BLIP expects.

What transformers' BLIP text decoder needs (``models/blip/modeling_blip.py``):

* ``BlipTextConfig.pad_token_id`` — padding (also the embedding's ``padding_idx``); default 0.
* ``bos_token_id`` — the decoder start token: ``BlipForConditionalGeneration.generate`` writes
  it into position 0 (BLIP calls it ``[DEC]``).  ``forward`` does **not** replace position 0,
  so training inputs must already start with it: :func:`decoder_inputs` does that.
* ``sep_token_id`` — generation stops there (``eos_token_id=sep_token_id`` in ``generate``);
  the tokenizer's ``eos_token`` is therefore ``[SEP]`` too.
* ``eos_token_id`` — only a placeholder second input id that ``generate`` drops again.

Layout: ``[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 [DEC]=5 [ENC]=6`` then the vocabulary in
sorted order.  Encoding: lowercase, split on whitespace and punctuation, template
``[CLS] text [SEP]`` (BERT layout, as BLIP's tokenizer).  Use :func:`blip_token_ids` to fill
``BlipTextConfig`` so model and tokenizer cannot disagree.
"""

from __future__ import annotations

from typing import Sequence

import torch

from repspace.data.text import vocabulary as shapes_vocabulary

__all__ = ["SPECIAL_TOKENS", "build_tokenizer", "blip_token_ids", "decoder_inputs"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "[ENC]")


def build_tokenizer(vocab: Sequence[str] | None = None, model_max_length: int = 64):
    """A ``transformers.PreTrainedTokenizerFast`` over ``vocab`` (default: :func:`repspace.data.text.vocabulary`).

    Round-trips through ``save_pretrained(dir)`` / ``AutoTokenizer.from_pretrained(dir)``
    (or ``PreTrainedTokenizerFast.from_pretrained``) with no network access.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = list(shapes_vocabulary() if vocab is None else vocab)
    clash = sorted(set(words) & set(SPECIAL_TOKENS))
    if clash:
        raise ValueError(f"vocabulary contains special tokens {clash}; pass plain words only")
    if len(set(words)) != len(words):
        raise ValueError("vocabulary contains duplicate words")
    table = {t: i for i, t in enumerate(list(SPECIAL_TOKENS) + words)}
    tok = Tokenizer(models.WordLevel(table, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", table["[CLS]"]), ("[SEP]", table["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=model_max_length,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        bos_token="[DEC]",
        eos_token="[SEP]",
        additional_special_tokens=["[ENC]"],
        clean_up_tokenization_spaces=True,
    )


def blip_token_ids(tokenizer) -> dict[str, int]:
    """``BlipTextConfig`` keyword arguments that match ``tokenizer``:
    ``vocab_size, pad_token_id, bos_token_id, eos_token_id, sep_token_id``."""
    return {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.sep_token_id,
        "sep_token_id": tokenizer.sep_token_id,
    }


def decoder_inputs(
    tokenizer, texts: Sequence[str], max_length: int | None = None
) -> dict[str, torch.Tensor]:
    """Training inputs for a BLIP text decoder: ``[DEC] text [SEP] [PAD]...``.

    Returns ``input_ids`` and ``attention_mask`` ``(batch, length)`` int64 and ``labels`` =
    ``input_ids`` with padding set to -100 (ignored by the loss; BLIP shifts labels itself).
    """
    if isinstance(texts, str) or not len(texts):
        raise ValueError("texts must be a non-empty list of strings")
    enc = tokenizer(
        list(texts),
        padding="longest" if max_length is None else "max_length",
        truncation=max_length is not None,
        max_length=max_length,
        return_tensors="pt",
    )
    ids = enc["input_ids"].clone()
    ids[:, 0] = tokenizer.bos_token_id  # [CLS] -> [DEC], as BLIP's own captioning model does
    labels = ids.masked_fill(enc["attention_mask"] == 0, -100)
    return {"input_ids": ids, "attention_mask": enc["attention_mask"], "labels": labels}
