"""Scores of predictions against records.

captioning: ``bleu4`` (corpus BLEU-4) and ``cider`` (CIDEr-D), vs every reference caption;
VQA: ``vqa_accuracy`` (VQAv2 soft accuracy / exact match, :func:`repspace.evaluation.vqa_accuracy`)
and ``vqa_accuracy/<question type>`` per type.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["score"]


def score(task: str, predictions: Sequence[str], records: Sequence[dict]) -> dict[str, float]:
    from repspace.evaluation import caption_metrics, vqa_scores

    if task == "captioning":
        m = caption_metrics(list(predictions), [list(r["captions"]) for r in records])
        return {"bleu4": float(m["bleu_4"]), "cider": float(m["cider_d"])}
    s = vqa_scores(list(predictions), [list(r["answers"]) for r in records])
    out = {"vqa_accuracy": float(np.mean(s))}
    types = [r.get("question_type", "all") for r in records]
    for t in sorted(set(types)):
        out[f"vqa_accuracy/{t}"] = float(np.mean([v for v, q in zip(s, types) if q == t]))
    return out
