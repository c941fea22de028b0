"""VQA accuracy: VQAv2 soft accuracy (Antol et al., 2015; Goyal et al., 2017) or exact match.

With 10 human answers ``a_1..a_10`` (VQAv2), a prediction ``p`` scores as the official
evaluator does, averaging over the 10 leave-one-out subsets of 9 answers::

    acc(p) = 1/10 * sum_i min(1, #{j != i : a_j == p} / 3)

so 1, 2, 3, >= 4 matching humans give 0.3, 0.6, 0.9, 1.0.  With any other number of
references the score is exact match: 1 if ``p`` equals *any* reference, else 0.  Both sides
are compared after :func:`normalize_answer`.

Normalisation (the official evaluator's steps, re-implemented):

1. newlines/tabs -> spaces, strip, lowercase;
2. punctuation ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !``: removed if the answer contains
   the mark next to a space or a digit-comma-digit group, replaced by a space otherwise (so
   ``"1,000" -> "1000"``, ``"t-shirt" -> "t shirt"``); a period not followed by a digit is removed
   (``"3.5"`` stays);
3. number words ``none/zero..ten`` -> digits, articles ``a an the`` dropped;
4. a subset of the official contraction table (``dont -> don't``, ``isnt -> isn't``, ...).

Deviation: the official script normalises only when the 10 human answers are not all equal;
here both sides are always normalised (so ``"Yes."`` matches 10 x ``"yes"``).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from repspace.evaluation._inputs import check_inputs

__all__ = ["normalize_answer", "vqa_scores", "vqa_accuracy"]

_PUNCT = [
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_PERIOD_STRIP = re.compile(r"\.(?!\d)")
_NUMBERS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = {"a", "an", "the"}
_CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldnt": "couldn't",
    "couldve": "could've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hasnt": "hasn't",
    "havent": "haven't",
    "isnt": "isn't",
    "mightnt": "mightn't",
    "mustnt": "mustn't",
    "shouldnt": "shouldn't",
    "shouldve": "should've",
    "wasnt": "wasn't",
    "werent": "weren't",
    "wont": "won't",
    "wouldnt": "wouldn't",
    "wouldve": "would've",
    "youre": "you're",
    "youve": "you've",
    "theyre": "they're",
    "theyve": "they've",
    "im": "i'm",
    "ive": "i've",
    "whats": "what's",
    "thats": "that's",
    "theres": "there's",
    "wheres": "where's",
    "whos": "who's",
    "hows": "how's",
}


def normalize_answer(answer: str) -> str:
    """Official-style VQA answer normalisation (see the module docstring)."""
    text = answer.replace("\n", " ").replace("\t", " ").strip().lower()
    strip_all = _COMMA_STRIP.search(text) is not None
    out = text
    for p in _PUNCT:
        # The official rule looks at the *original* text for every mark, hence `text` here.
        out = out.replace(p, "" if (p + " " in text or " " + p in text or strip_all) else " ")
    out = _PERIOD_STRIP.sub("", out)
    words = [_NUMBERS.get(w, w) for w in out.split()]
    words = [_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES]
    return " ".join(words)


def vqa_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """Per-question accuracy in [0, 1], shape ``(len(predictions),)``: soft accuracy for
    10 references, exact match (against any reference) otherwise."""
    check_inputs(predictions, references, "vqa_accuracy")
    out = np.empty(len(predictions))
    for i, (pred, refs) in enumerate(zip(predictions, references)):
        p = normalize_answer(pred)
        gts = [normalize_answer(r) for r in refs]
        if len(gts) == 10:
            hits = sum(g == p for g in gts)
            # leaving out a matching answer leaves hits - 1 matches, any other leaves hits
            out[i] = sum(min(1.0, (hits - (g == p)) / 3.0) for g in gts) / 10.0
        else:
            out[i] = float(p in gts)
    return out


def vqa_accuracy(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Mean of :func:`vqa_scores` (a fraction in [0, 1]; the official evaluator reports x100)."""
    return float(np.mean(vqa_scores(predictions, references)))
