"""Sentence classification on the shapes world (``task = "classify"``): text-only, offline.

The sentence is one of a scene's two *chain* captions (the canonical left-to-right chain or
its reversed right-to-left form, :func:`repspace.data.text.captions`); the label is how many
shapes it describes, as a number word (``"one"``, ``"two"``, ``"three"``).  The third
reference caption states the count ("there are two shapes ...") and is left out, so the
label has to be read off the sentence's structure (how many noun phrases the relations
chain), not copied from a word.  Splits, data fractions and held-out compositions are the
shapes world's own (:mod:`repspace.data.world`): no test sentence's scene is in train.

Records: ``{"text", "answer", "answers", "question_type": "count", "caption", "id"}``;
training has both chain captions of each scene, evaluation one per scene (which one
alternates with the scene index, so both forms are tested).
"""
from __future__ import annotations

from repspace.data.text import NUMBER_WORDS, captions

__all__ = ["sentence_records", "CHAIN_CAPTIONS"]

CHAIN_CAPTIONS = (0, 1)  # reference captions used as sentences (2 states the count: left out)


def sentence_records(world, split: str) -> list[dict]:
    """Sentence-classification records of ``split`` of a :class:`~repspace.data.ShapesWorld`
    (its ``data_fraction`` applies to train, as for every task)."""
    out = []
    domain = world.config.domain
    for idx in world.indices(split):
        idx = int(idx)
        scene = world.scene(split, idx)
        caps = captions(scene)
        label = NUMBER_WORDS[len(scene.objects)]
        which = CHAIN_CAPTIONS if split == "train" else (CHAIN_CAPTIONS[idx % 2],)
        for k in which:
            out.append({"text": caps[k], "answer": label, "answers": [label], "question_type": "count",
                        "caption": caps[k], "id": f"{domain}/{split}/{idx}/{k}"})
    return out
