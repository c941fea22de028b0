"""Greedy captioning with a BLIP captioner and its held-out scores (used by pretraining and tests)."""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["generate_captions", "evaluate_captions"]


@torch.no_grad()
def generate_captions(
    model, tokenizer, pixel_values: torch.Tensor, batch_size: int = 100, max_new_tokens: int = 24
) -> list[str]:
    """Greedy captions (``do_sample=False, num_beams=1``) of ``pixel_values`` ``(n, 3, H, W)``.

    BLIP's ``generate`` starts every caption with ``[DEC]`` and stops at ``[SEP]``; special
    tokens are dropped when decoding.  The model is put in eval mode and left there.
    """
    if pixel_values.ndim != 4:
        raise ValueError(
            f"generate_captions: pixel_values must be (n, 3, H, W), got {tuple(pixel_values.shape)}"
        )
    model.eval()
    out: list[str] = []
    for start in range(0, len(pixel_values), batch_size):
        ids = model.generate(
            pixel_values=pixel_values[start : start + batch_size],
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
        )
        out += [" ".join(t.split()) for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return out


def evaluate_captions(
    predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> dict[str, float]:
    """``{"cider_d", "bleu_1".."bleu_4", "exact"}``; ``exact`` = share of predictions
    equal to one of their references (after whitespace normalisation)."""
    from repspace.evaluation import caption_metrics

    scores = caption_metrics(list(predictions), [list(r) for r in references])
    exact = sum(
        p in {" ".join(r.split()) for r in refs} for p, refs in zip(predictions, references)
    )
    return {
        "cider_d": scores["cider_d"],
        **{k: v for k, v in scores.items() if k.startswith("bleu_")},
        "exact": exact / len(predictions),
    }
