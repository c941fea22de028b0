"""Token rows into tensors: padding, and labels that learn only the answer.

Shared by the probe and every training recipe (:mod:`repspace.training.tasks`), so both lay
out sequences one way: int64, padded on the right (a causal model's positions then do not
depend on the other rows of a batch), contiguous.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["IGNORE", "pad_rows", "mask_rows", "answer_rows"]

IGNORE = -100  # the label every transformers loss skips


def pad_rows(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """``(len(rows), longest)`` int64, right-padded with ``value``, contiguous."""
    if not rows:
        raise ValueError("no rows to pad")
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), int(value), dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            out[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
    return out


def mask_rows(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """The attention mask of :func:`pad_rows`: 1 on each row's tokens, 0 on its padding."""
    return pad_rows([[1] * len(r) for r in rows], 0)


def answer_rows(
    prompt: Sequence[int], answer: Sequence[int], seq2seq: bool
) -> tuple[list[int], list[int]]:
    """``(input row, label row)`` of one sample that learns ``answer`` after ``prompt``.

    Decoder-only: the row is ``prompt + answer`` and the labels are :data:`IGNORE` on the
    prompt (the model shifts them itself).  Encoder-decoder: the encoder reads the prompt
    and the labels are the answer (the model builds its decoder inputs by shifting them)."""
    prompt, answer = list(prompt), list(answer)
    if not answer:
        raise ValueError("an answer tokenized to no tokens; every record needs a non-empty answer")
    if seq2seq:
        return prompt, answer
    return prompt + answer, [IGNORE] * len(prompt) + answer
