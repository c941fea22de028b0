"""VQA accuracy: official soft accuracy with 10 answers, exact match otherwise, answer normalisation."""

import pytest

from repspace.evaluation import normalize_answer, vqa_accuracy, vqa_scores


@pytest.mark.parametrize(
    "k, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)]
)
def test_soft_accuracy_leave_one_out(k, expected):
    # k of 10 humans said "yes".  Leaving out one of the k: min(1, (k-1)/3); one of the other 10-k: min(1, k/3).
    # k=1: (1*0 + 9*1/3)/10 = 0.3 ; k=2: (2*1/3 + 8*2/3)/10 = 0.6 ; k=3: (3*2/3 + 7*1)/10 = 0.9 ; k=4: 1
    refs = ["yes"] * k + ["no"] * (10 - k)
    assert vqa_scores(["yes"], [refs])[0] == pytest.approx(expected)


def test_normalisation_applied_to_both_sides():
    # "Two" -> "2" (number word), "the 2" -> "2" (article), "2." -> "2" (period)
    refs = ["2"] * 3 + ["the 2"] + ["2."] + ["three"] * 5
    assert vqa_scores(["Two"], [refs])[0] == pytest.approx(1.0)  # 5 matches
    assert vqa_scores(["3"], [refs])[0] == pytest.approx(1.0)
    assert vqa_scores(["four"], [refs])[0] == 0.0


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("Yes.", "yes"),
        ("  A Dog\n", "dog"),
        ("t-shirt", "t shirt"),
        ("1,000", "1000"),
        ("3.5", "3.5"),
        ("dont know", "don't know"),
        ("red, white", "red white"),
        ("none", "0"),
        ("what?", "what"),
        ("the an a", ""),
    ],
)
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_exact_match_when_not_ten_answers():
    assert vqa_scores(["Red"], [["red"]])[0] == 1.0
    assert vqa_scores(["blue"], [["red", "blue", "green"]])[0] == 1.0  # any reference
    assert vqa_scores(["pink"], [["red", "blue"]])[0] == 0.0
    # mean over questions: (1 + 0 + 0.3) / 3
    preds = ["red", "no", "yes"]
    refs = [["red"], ["yes"], ["yes"] + ["no"] * 9]
    assert vqa_accuracy(preds, refs) == pytest.approx((1 + 0 + 0.3) / 3)


def test_validation():
    with pytest.raises(ValueError, match="2 predictions but 1 reference"):
        vqa_accuracy(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="empty"):
        vqa_accuracy(["a"], [[]])
