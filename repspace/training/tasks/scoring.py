"""Scores of predictions against records.

captioning: ``bleu_4`` (corpus BLEU-4) and ``cider_d`` (CIDEr-D), vs every reference caption, named
as :func:`repspace.evaluation.caption_metrics` names them;
classify: ``accuracy`` (exact match of the predicted label) and ``accuracy/<label>`` per true label;
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
        return {"bleu_4": float(m["bleu_4"]), "cider_d": float(m["cider_d"])}
    if task == "classify":
        hits = np.array([p == r["answer"] for p, r in zip(predictions, records)], dtype=np.float64)
        out = {"accuracy": float(hits.mean())}
        labels = [r["answer"] for r in records]
        for label in sorted(set(labels)):
            out[f"accuracy/{label}"] = float(
                np.mean([h for h, t in zip(hits, labels) if t == label])
            )
        return out
    s = vqa_scores(list(predictions), [list(r["answers"]) for r in records])
    out = {"vqa_accuracy": float(np.mean(s))}
    types = [r.get("question_type", "all") for r in records]
    for t in sorted(set(types)):
        out[f"vqa_accuracy/{t}"] = float(np.mean([v for v, q in zip(s, types) if q == t]))
    return out
