"""Input validation and tokenisation shared by the task metrics."""

from __future__ import annotations

import re
from typing import Sequence

__all__ = ["check_inputs", "tokenize"]

# A word: a run of letters/digits, optionally with internal apostrophes ("don't" stays one token).
_TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize(text: str) -> list[str]:
    """Caption tokenisation for BLEU / CIDEr-D: lowercase, then keep runs of letters and digits
    (internal apostrophes kept); every other character — punctuation, underscores — separates
    tokens and is dropped.

    A simplification of the COCO caption toolkit's PTB tokenizer, which also lowercases and
    drops punctuation but splits clitics (``"don't" -> "do n't"``); on captions without
    clitics the two agree.  ``"A man, riding a horse."`` -> ``["a", "man", "riding", "a", "horse"]``.
    """
    return _TOKEN_RE.findall(text.lower())


def check_inputs(
    predictions: Sequence[str], references: Sequence[Sequence[str]], metric: str
) -> None:
    """One-line ``ValueError`` unless ``predictions`` is a non-empty list of strings and
    ``references`` a same-length list of non-empty lists of strings."""
    if isinstance(predictions, str):
        raise ValueError(f"{metric}: predictions must be a list of strings, got a single string")
    if isinstance(references, str):
        raise ValueError(
            f"{metric}: references must be a list of lists of strings, got a single string"
        )
    if len(predictions) == 0:
        raise ValueError(f"{metric}: predictions is empty")
    if len(predictions) != len(references):
        raise ValueError(
            f"{metric}: got {len(predictions)} predictions but {len(references)} reference lists; pass one list per prediction"
        )
    for i, (p, refs) in enumerate(zip(predictions, references)):
        if not isinstance(p, str):
            raise ValueError(f"{metric}: predictions[{i}] must be a string, got {type(p).__name__}")
        if isinstance(refs, str):
            raise ValueError(
                f"{metric}: references[{i}] must be a list of strings, got a string (wrap it in a list)"
            )
        if len(refs) == 0:
            raise ValueError(
                f"{metric}: references[{i}] is empty; every prediction needs at least one reference"
            )
        for j, r in enumerate(refs):
            if not isinstance(r, str):
                raise ValueError(
                    f"{metric}: references[{i}][{j}] must be a string, got {type(r).__name__}"
                )
