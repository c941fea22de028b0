"""A tokenizer that does not know the probe's words is refused, not used (issue 14)."""

import pytest

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")

from repspace.probe.processors import MAX_UNKNOWN_FRACTION, processor_problem  # noqa: E402

TEXTS = [
    "a small red circle on the left",
    "two blue squares at the top",
    "a green star rests in the middle",
    "the yellow triangle floats on the right",
]


def _wordlevel(words):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "[PAD]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]"
    )


def test_a_third_unknown_is_refused_with_the_fraction_and_what_to_do():
    words = sorted({w for t in TEXTS for w in t.split()})
    known = [w for i, w in enumerate(words) if i % 3]  # about a third unknown
    problem = processor_problem(_wordlevel(known), ["text"], TEXTS, "some/folder")
    assert problem is not None and "[UNK]" in problem and "--probe" in problem
    frac = float(problem.split(" maps ")[1].split("%")[0]) / 100
    assert MAX_UNKNOWN_FRACTION < frac < 0.5  # the old 50 % threshold let this through


def test_a_tokenizer_that_knows_the_words_is_accepted():
    words = sorted({w for t in TEXTS for w in t.split()})
    assert processor_problem(_wordlevel(words), ["text"], TEXTS, "some/folder") is None
    assert processor_problem(_wordlevel(words[:-1]), ["text"], TEXTS) is None  # one word: 3 %
