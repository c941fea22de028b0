"""Task metrics for the fine-tuned models: captioning BLEU / CIDEr-D and VQA accuracy.

All functions take ``predictions`` (a list of strings) and ``references`` (a list, one per
prediction, of non-empty lists of strings) and raise a one-line ``ValueError`` on malformed
input.  Definitions and conventions: ``docs/data.md``.
"""

from repspace.evaluation._inputs import tokenize
from repspace.evaluation.bleu import bleu_scores, corpus_bleu
from repspace.evaluation.cider import cider_d, cider_d_scores
from repspace.evaluation.vqa import normalize_answer, vqa_accuracy, vqa_scores

__all__ = [
    "tokenize",
    "bleu_scores",
    "corpus_bleu",
    "cider_d",
    "cider_d_scores",
    "normalize_answer",
    "vqa_accuracy",
    "vqa_scores",
    "caption_metrics",
]


def caption_metrics(predictions, references) -> dict[str, float]:
    """``{"bleu_1".."bleu_4", "cider_d"}`` for a captioning evaluation set."""
    b = bleu_scores(predictions, references, 4)
    return {
        **{f"bleu_{k + 1}": v for k, v in enumerate(b)},
        "cider_d": cider_d(predictions, references),
    }
