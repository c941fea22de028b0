"""Corpus BLEU against hand computations and properties."""

import math

import pytest

from repspace.evaluation import bleu_scores, corpus_bleu, tokenize


def test_hand_example_multiple_references():
    # cand  a b c d e f            refs  a b c d x f  |  a b z d e f
    # 1-grams: all 6 occur in some ref                          -> 6/6
    # 2-grams: ab bc cd (ref1), de ef (ref2)                    -> 5/5
    # 3-grams: abc bcd (ref1), def (ref2); cde nowhere          -> 3/4
    # 4-grams: abcd (ref1); bcde, cdef nowhere                  -> 1/3
    # c = 6, closest ref length 6 -> BP = 1
    # BLEU-4 = (1 * 1 * 3/4 * 1/3)^(1/4) = (1/4)^(1/4) = 1/sqrt(2)
    b = bleu_scores(["a b c d e f"], [["a b c d x f", "a b z d e f"]])
    assert b[0] == pytest.approx(1.0)
    assert b[1] == pytest.approx(1.0)
    assert b[2] == pytest.approx((3 / 4) ** (1 / 3))
    assert b[3] == pytest.approx(2**-0.5)


def test_clipping_papineni_example():
    # "the" x7 against refs with at most 2 "the": clipped unigram precision 2/7 (Papineni et al. 2002 §2.1)
    # lengths: c = 7, refs 6 and 7 -> closest 7 -> BP = 1
    refs = [["the cat is on the mat", "there is a cat on the mat"]]
    assert corpus_bleu(["the the the the the the the"], refs, max_n=1) == pytest.approx(2 / 7)


def test_brevity_penalty_closest_reference():
    # c = 4; refs of length 5 and 8 -> r = 5 (closest); all precisions 1 -> BLEU = exp(1 - 5/4)
    assert corpus_bleu(["a b c d"], [["a b c d e", "a b c d e f g h"]]) == pytest.approx(
        math.exp(-0.25)
    )
    # tie |5 - 4| = |3 - 4|: the shorter reference (3) wins, as in pycocoevalcap -> c >= r -> BP = 1
    assert corpus_bleu(["a b c d"], [["a b c d e", "a b c"]]) == pytest.approx(1.0)


def test_corpus_level_not_sentence_average():
    # cand1 "a b c d" == its ref: matches 4, 3, 2, 1 of 4, 3, 2, 1
    # cand2 "w x y z" vs "w x y q": matches 3, 2, 1, 0 of 4, 3, 2, 1
    # corpus p = 7/8, 5/6, 3/4, 1/2 ; c = r = 8 -> BLEU-4 = (7/8 * 5/6 * 3/4 * 1/2)^(1/4)
    got = corpus_bleu(["a b c d", "w x y z"], [["a b c d"], ["w x y q"]])
    assert got == pytest.approx((7 / 8 * 5 / 6 * 3 / 4 * 1 / 2) ** 0.25)
    assert got != pytest.approx(0.5)  # the mean of sentence BLEU-4 (1 and 0)


def test_properties():
    refs = [["a large red circle at the top left"], ["there is a small blue square"]]
    preds = [r[0] for r in refs]
    assert corpus_bleu(preds, refs) == pytest.approx(1.0)
    assert corpus_bleu(["", ""], refs) == 0.0
    # image order does not matter
    assert corpus_bleu(preds[::-1], refs[::-1]) == corpus_bleu(preds, refs)
    # case and punctuation are ignored by the tokenisation
    assert corpus_bleu(["A large RED circle, at the top-left."], [refs[0]]) == pytest.approx(1.0)
    # no 4-gram match at all -> exactly 0 (no smoothing)
    assert corpus_bleu(["a b c d"], [["a b c x"]]) == 0.0
    # a single-word corpus has no 2-grams: BLEU-2..4 are 0, BLEU-1 is defined
    assert bleu_scores(["red"], [["red"]]) == [1.0, 0.0, 0.0, 0.0]


def test_tokenize():
    assert tokenize("A man, riding a horse.") == ["a", "man", "riding", "a", "horse"]
    assert tokenize("Don't stop_now!") == ["don't", "stop", "now"]


@pytest.mark.parametrize(
    "preds, refs, message",
    [
        (["a"], [["a"], ["b"]], "1 predictions but 2 reference lists"),
        (["a"], [[]], r"references\[0\] is empty"),
        ([], [], "predictions is empty"),
        (["a"], ["a"], r"references\[0\] must be a list of strings"),
        ("a", [["a"]], "single string"),
        ([None], [["a"]], r"predictions\[0\] must be a string"),
        (["a"], [["a", 3]], r"references\[0\]\[1\] must be a string"),
    ],
)
def test_validation(preds, refs, message):
    with pytest.raises(ValueError, match=message):
        corpus_bleu(preds, refs)


def test_caption_metrics_keys():
    from repspace.evaluation import caption_metrics

    refs = [["a red circle"], ["a blue square at the top"]]
    m = caption_metrics([r[0] for r in refs], refs)
    assert list(m) == ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider_d"]
    assert m["bleu_4"] == pytest.approx(1.0) and m["cider_d"] > 0
