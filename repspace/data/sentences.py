"""Sentence classification on the shapes world (``task = "classify"``): text-only, offline.

The task: *what colour is the leftmost (or rightmost) shape of this description?*  Each
sentence is a question followed by one of a scene's two *chain* captions
(:func:`repspace.data.text.captions`)::

    what color is the rightmost shape? a small blue square right of a large red circle
    what color is the leftmost shape? a large red circle left of a small blue square

and the label is a colour name (5 classes in the source domain, 6 in the shifted one).
The chain is phrased either left to right (``left of`` / ``above``: the leftmost shape comes
first) or reversed, right to left (``right of`` / ``below``: it comes last), and the question
asks for either end.  So the answer is the colour of the first noun phrase when (question,
phrasing) is (leftmost, left-to-right) or (rightmost, right-to-left), and of the last one
otherwise -- an XOR of two words combined with *where* a colour sits.  Neither a word count,
a bag of words (every colour of the scene is in the sentence, in both phrasings) nor one
keyword is enough; the previous label (how many shapes the chain describes) could be read
off the sentence length and every method reached accuracy 1.000 on it.

Ties follow the captions' own order: objects are sorted by (column, row), so "leftmost" is
the first in that order (the topmost of the leftmost column) and "rightmost" the last (the
bottom-most of the rightmost column) -- exactly the chain's two ends.  A one-shape scene's
two captions ("a ... at the top left" / "there is a ... at the top left") have one colour.

Determinism and splits are the shapes world's own (:mod:`repspace.data.world`): splits,
data fractions and held-out compositions, so no test sentence's scene is in train.
Training has both chain captions of each scene, with opposite questions (which one goes
with which alternates with the scene index, so all four (question, phrasing) pairs are
trained); evaluation has one sentence per scene, cycling through the four pairs.  The
words ``leftmost``/``rightmost`` are outside the embedded model's word vocabulary: the task
is for text models with their own tokenizers.

Records: ``{"text", "answer", "answers", "question_type": "leftmost"|"rightmost",
"question", "caption", "id"}``.
"""

from __future__ import annotations

from repspace.data.text import captions

__all__ = ["sentence_records", "CHAIN_CAPTIONS", "QUESTIONS", "end_color"]

CHAIN_CAPTIONS = (
    0,
    1,
)  # reference captions used (0: left to right, 1: reversed; 2 lists positions: left out)
QUESTIONS = {
    "leftmost": "what color is the leftmost shape?",
    "rightmost": "what color is the rightmost shape?",
}


def end_color(scene, end: str) -> str:
    """Colour of the leftmost (first in (column, row) order) or rightmost (last) object."""
    if end not in QUESTIONS:
        raise ValueError(f"end must be one of {sorted(QUESTIONS)}, got {end!r}")
    return scene.objects[0 if end == "leftmost" else -1].color


def sentence_records(world, split: str) -> list[dict]:
    """Sentence-classification records of ``split`` of a :class:`~repspace.data.ShapesWorld`
    (its ``data_fraction`` applies to train, as for every task)."""
    out = []
    domain = world.config.domain
    for idx in world.indices(split):
        idx = int(idx)
        scene = world.scene(split, idx)
        caps = captions(scene)
        if split == "train":  # both phrasings, opposite questions, swapped every other scene
            pairs = [(k, ("leftmost", "rightmost")[(idx + k) % 2]) for k in CHAIN_CAPTIONS]
        else:  # one sentence, cycling through the 4 (phrasing, question) pairs
            pairs = [(CHAIN_CAPTIONS[idx % 2], ("leftmost", "rightmost")[(idx // 2) % 2])]
        for k, end in pairs:
            label = end_color(scene, end)
            out.append(
                {
                    "text": f"{QUESTIONS[end]} {caps[k]}",
                    "answer": label,
                    "answers": [label],
                    "question_type": end,
                    "question": QUESTIONS[end],
                    "caption": caps[k],
                    "id": f"{domain}/{split}/{idx}/{k}",
                }
            )
    return out
