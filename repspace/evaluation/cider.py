"""CIDEr-D (Vedantam et al., 2015) exactly as ``pycocoevalcap``'s ``CiderScorer``.

For image ``i`` with candidate ``c`` and references ``R_i`` (tokenised by
:func:`~repspace.evaluation._inputs.tokenize`), ``N`` images in the evaluation set, and
n-gram order ``n = 1..4``:

* document frequency ``df(g)`` = number of images whose *reference* set contains ``g``
  (computed on the references of the evaluation set itself, never on candidates)
* ``g_n(s)[g] = tf_s(g) * (log N - log max(1, df(g)))`` for the n-grams ``g`` of sentence ``s``
* ``sim_n(c, r) = sum_g min(g_n(c)[g], g_n(r)[g]) * g_n(r)[g] / (||g_n(c)|| ||g_n(r)||)``
  (the ``min`` clips candidate counts by the reference's — the "-D"; the division is
  skipped when either norm is 0) ``* exp(-(l(c) - l(r))^2 / (2 sigma^2))``, ``sigma = 6``
* ``CIDEr-D_i = 10 / (4 |R_i|) * sum_n sum_{r in R_i} sim_n(c, r)``; the corpus score is the
  mean over images.

``l(s)`` is the number of *bigrams* of ``s`` (``len(s) - 1``), as in ``pycocoevalcap``; only
length differences enter the penalty, so this equals the word-length difference for any two
non-empty sentences.  Consequences worth knowing: with ``N = 1`` every idf is 0 and every
score 0; an n-gram present in every image's references carries no weight.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import numpy as np

from repspace.evaluation._inputs import check_inputs, tokenize
from repspace.evaluation.bleu import ngram_counts

__all__ = ["cider_d", "cider_d_scores"]


def _vec(counts: Counter, df: Counter, log_n: float, n: int):
    """TF-IDF vectors per order, their norms, and the bigram-count length of one sentence."""
    vec = [dict() for _ in range(n)]
    norm = [0.0] * n
    length = 0
    for g, tf in counts.items():
        k = len(g) - 1
        w = tf * (log_n - math.log(max(1.0, df[g])))
        vec[k][g] = w
        norm[k] += w * w
        if k == 1:
            length += tf
    return vec, [math.sqrt(x) for x in norm], length


def _sim(hyp, ref, n: int, sigma: float) -> np.ndarray:
    (vh, nh, lh), (vr, nr, lr) = hyp, ref
    delta = float(lh - lr)
    val = np.zeros(n)
    for k in range(n):
        for g, w in vh[k].items():
            wr = vr[k].get(g, 0.0)
            val[k] += min(w, wr) * wr
        if nh[k] != 0 and nr[k] != 0:
            val[k] /= nh[k] * nr[k]
        val[k] *= math.exp(-(delta**2) / (2 * sigma**2))
    return val


def cider_d_scores(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    n: int = 4,
    sigma: float = 6.0,
) -> np.ndarray:
    """Per-image CIDEr-D, shape ``(len(predictions),)``, float64 (>= 0; 10 x cosine-like, so up to ~10)."""
    check_inputs(predictions, references, "cider_d")
    if n < 1 or sigma <= 0:
        raise ValueError(f"cider_d: need n >= 1 and sigma > 0, got n={n}, sigma={sigma}")
    refs_counts = [[ngram_counts(tokenize(r), n) for r in refs] for refs in references]
    df: Counter = Counter()
    for rc in refs_counts:
        df.update(set().union(*(c.keys() for c in rc)))  # each image counts once per n-gram
    log_n = math.log(float(len(predictions)))
    scores = np.empty(len(predictions))
    for i, (pred, rc) in enumerate(zip(predictions, refs_counts)):
        hyp = _vec(ngram_counts(tokenize(pred), n), df, log_n, n)
        total = sum(_sim(hyp, _vec(c, df, log_n, n), n, sigma) for c in rc)
        scores[i] = float(np.mean(total)) / len(rc) * 10.0
    return scores


def cider_d(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    n: int = 4,
    sigma: float = 6.0,
) -> float:
    """Corpus CIDEr-D: the mean of :func:`cider_d_scores` over images."""
    return float(np.mean(cider_d_scores(predictions, references, n, sigma)))
