"""CIDEr-D against hand computations, an independent dense implementation, and properties."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from repspace.evaluation import cider_d, cider_d_scores

L2 = math.log(2)


def test_perfect_two_word_captions():
    # N = 2 images, refs "a b" | "c d": every n-gram has df = 1 -> idf = log 2 - log 1 = log 2.
    # n = 1: hyp = ref = (log2, log2) -> cosine 1;  n = 2: one bigram -> cosine 1;
    # n = 3, 4: no n-grams -> 0.  Equal lengths -> penalty 1.  10 * (1 + 1 + 0 + 0) / 4 = 5.
    assert cider_d(["a b", "c d"], [["a b"], ["c d"]]) == pytest.approx(5.0)


def test_partial_match_with_length_penalty():
    # N = 2, refs "a b c" | "a d e".  df(a) = 2 -> idf 0; every other n-gram idf = log 2 =: L.
    # image 1, cand "a b":  n=1 hyp {a:0, b:L} |h| = L, ref {a:0, b:L, c:L} |r| = sqrt2 L
    #   -> L*L / (L * sqrt2 L) = 1/sqrt2 ;  n=2 hyp {ab:L}, ref {ab:L, bc:L} -> 1/sqrt2 ; n=3,4 -> 0
    #   bigram lengths 1 vs 2 -> delta = -1 -> penalty exp(-1/72)
    #   CIDEr-D = 10 * (2/sqrt2) / 4 * exp(-1/72) = 10 sqrt2 / 4 * exp(-1/72) ~= 3.4868
    # image 2, cand "x": unseen word -> 0
    s = cider_d_scores(["a b", "x"], [["a b c"], ["a d e"]])
    assert s[0] == pytest.approx(10 * math.sqrt(2) / 4 * math.exp(-1 / 72))
    assert s[1] == 0.0
    assert cider_d(["a b", "x"], [["a b c"], ["a d e"]]) == pytest.approx(s.mean())


def test_clipping():
    # same corpus, cand "b b": n=1 hyp {b: 2L} |h| = 2L, ref {a:0, b:L, c:L}
    #   clipped: min(2L, L) * L / (2L * sqrt2 L) = 1/(2 sqrt2)   (unclipped would be 1/sqrt2)
    #   n=2: "b b" not in ref -> 0.  delta = 1 - 2 -> exp(-1/72)
    #   CIDEr-D = 10 * 1/(2 sqrt2) / 4 * exp(-1/72) ~= 0.8717
    s = cider_d_scores(["b b", "x"], [["a b c"], ["a d e"]])
    assert s[0] == pytest.approx(10 / (8 * math.sqrt(2)) * math.exp(-1 / 72))


def test_references_averaged():
    # image 1 refs "a b" and "c d" (N = 2 with image 2 refs "e f"): cand "a b" matches the first ref
    # exactly (5.0 as above) and shares nothing with the second (0) -> (5 + 0) / 2 = 2.5
    assert cider_d_scores(["a b", "e f"], [["a b", "c d"], ["e f"]])[0] == pytest.approx(2.5)


def test_properties():
    refs = [
        ["a red circle", "a red circle"],
        ["a blue square at the top", "a blue square at the top"],
        ["two green triangles", "two green triangles"],
    ]
    perfect = [r[0] for r in refs]
    s = cider_d_scores(perfect, refs)
    assert (s > 0).all()
    assert cider_d(["", "", ""], refs) == 0.0
    # order of images does not matter (df is a set statistic over images)
    perm = [2, 0, 1]
    s_perm = cider_d_scores([perfect[i] for i in perm], [refs[i] for i in perm])
    np.testing.assert_allclose(s_perm, s[perm])
    # a single image: every idf is log 1 - log 1 = 0 -> 0
    assert cider_d(["a red circle"], [["a red circle"]]) == 0.0
    # a worse caption scores lower
    assert cider_d(["a red square", perfect[1], perfect[2]], refs) < cider_d(perfect, refs)
    with pytest.raises(ValueError, match="reference lists"):
        cider_d(["a"], [["a"], ["b"]])


def _dense_cider_d(preds, refs, sigma=6.0):
    """Independent dense re-implementation (vocabulary-indexed arrays) of CIDEr-D."""

    def grams(s, k):
        w = s.split()
        return [tuple(w[i : i + k]) for i in range(len(w) - k + 1)]

    n_img = len(preds)
    out = np.zeros(n_img)
    for k in range(1, 5):
        vocab = sorted({g for s in preds + [r for rs in refs for r in rs] for g in grams(s, k)})
        index = {g: i for i, g in enumerate(vocab)}

        def tf(s):
            v = np.zeros(len(vocab))
            for g in grams(s, k):
                v[index[g]] += 1
            return v

        df = np.zeros(len(vocab))
        for rs in refs:
            df += (sum(tf(r) for r in rs) > 0) if vocab else 0
        idf = math.log(n_img) - np.log(np.maximum(df, 1.0))
        for i, (p, rs) in enumerate(zip(preds, refs)):
            h = tf(p) * idf
            for r in rs:
                g = tf(r) * idf
                num = float(np.minimum(h, g) @ g)
                den = np.linalg.norm(h) * np.linalg.norm(g)
                val = num / den if den > 0 else num
                delta = max(len(p.split()) - 1, 0) - max(len(r.split()) - 1, 0)
                out[i] += val * math.exp(-(delta**2) / (2 * sigma**2)) / 4 / len(rs) * 10
    return out


_sentence = st.lists(st.sampled_from("a b c d e".split()), min_size=1, max_size=7).map(" ".join)


@given(
    st.lists(
        st.tuples(_sentence, st.lists(_sentence, min_size=1, max_size=3)), min_size=1, max_size=5
    )
)
def test_matches_dense_reference(data):
    preds = [p for p, _ in data]
    refs = [r for _, r in data]
    np.testing.assert_allclose(
        cider_d_scores(preds, refs), _dense_cider_d(preds, refs), rtol=1e-9, atol=1e-12
    )
