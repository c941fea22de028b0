"""Corpus-level BLEU (Papineni et al., 2002) as computed by the COCO caption toolkit.

For candidates ``c_i`` with reference sets ``R_i`` (tokenised by
:func:`~repspace.evaluation._inputs.tokenize`):

* clipped n-gram matches ``m_n = sum_i sum_{g in ngrams_n(c_i)} min(count_{c_i}(g), max_{r in R_i} count_r(g))``
* candidate n-grams ``t_n = sum_i max(0, |c_i| - n + 1)``
* modified precision ``p_n = m_n / t_n`` (corpus sums, not an average of sentence precisions)
* candidate length ``c = sum_i |c_i|``; reference length ``r = sum_i |r*_i|`` where ``r*_i`` is
  the reference *closest* in length to ``c_i`` (ties -> the shorter one), as ``pycocoevalcap``'s
  ``option="closest"``
* brevity penalty ``BP = 1 if c >= r else exp(1 - r / c)``
* ``BLEU-N = BP * (prod_{n<=N} p_n)^(1/N)``

Deviation from ``pycocoevalcap``: it adds 1e-15 / 1e-9 to every numerator / denominator, so
a corpus without any matching 4-gram scores a small positive number there; here it scores
exactly 0 (and ``p_n = 0`` when there are no candidate n-grams at all), as in the paper.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

from repspace.evaluation._inputs import check_inputs, tokenize

__all__ = ["bleu_scores", "corpus_bleu", "ngram_counts"]


def ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    """Counts of all k-grams of ``tokens`` for ``k = 1..n`` (keys are tuples)."""
    return Counter(
        tuple(tokens[i : i + k]) for k in range(1, n + 1) for i in range(len(tokens) - k + 1)
    )


def bleu_scores(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    max_n: int = 4,
) -> list[float]:
    """Corpus BLEU-1 .. BLEU-``max_n`` (each with the brevity penalty), in [0, 1]."""
    check_inputs(predictions, references, "bleu")
    if max_n < 1:
        raise ValueError(f"bleu: max_n must be >= 1, got {max_n}")
    matches, totals = [0] * max_n, [0] * max_n
    cand_len = ref_len = 0
    for pred, refs in zip(predictions, references):
        c = tokenize(pred)
        rs = [tokenize(r) for r in refs]
        max_ref: Counter = Counter()
        for r in rs:
            max_ref |= ngram_counts(r, max_n)  # Counter union = element-wise max: clipping counts
        for g, cnt in ngram_counts(c, max_n).items():
            matches[len(g) - 1] += min(cnt, max_ref[g])
        for k in range(max_n):
            totals[k] += max(0, len(c) - k)
        cand_len += len(c)
        ref_len += min((abs(len(r) - len(c)), len(r)) for r in rs)[1]
    if cand_len == 0:
        return [0.0] * max_n
    bp = 1.0 if cand_len >= ref_len else math.exp(1.0 - ref_len / cand_len)
    out, log_sum = [], 0.0
    for k in range(max_n):
        if matches[k] == 0:  # totals[k] == 0 implies matches[k] == 0
            out += [0.0] * (max_n - k)
            break
        log_sum += math.log(matches[k] / totals[k])
        out.append(bp * math.exp(log_sum / (k + 1)))
    return out


def corpus_bleu(
    predictions: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4
) -> float:
    """Corpus BLEU-``max_n`` (default BLEU-4) of ``predictions`` against lists of ``references``."""
    return bleu_scores(predictions, references, max_n)[-1]
