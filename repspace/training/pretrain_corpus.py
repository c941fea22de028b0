"""Pre-training text targets of the embedded model: which text an image is trained on.

Two corpora (``PretrainConfig.corpus``):

``"canonical"`` (recipe v1)
    one target per image, the canonical caption ``captions(scene)[0]``, loss on every token.

``"captions+itm"`` (an ablation of v2 without its text stream)
    five targets per image, one drawn uniformly per image and step; a small stand-in for
    BLIP's own pre-training objectives (Li et al. 2022: image-grounded language modelling
    *and* image-text matching), so that the base has met every word a downstream task uses,
    as a real pre-trained VLM has:

    ====  ==========================================  =====================================
    slot  text                                        loss on
    ====  ==========================================  =====================================
    0     caption 1 (chain, left to right)            every token (captioning LM)
    1     caption 2 (chain reversed / "there is")     every token
    2     caption 3 (inventory); its number word      every token
          written as a digit for half of the images
          ("there are 2 shapes ...")
    3     ``<caption k of this image> ? yes``         the answer and ``[SEP]`` (matching, as
                                                      a generated yes / no)
    4     ``<caption k of a non-matching scene> ? no``  the answer and ``[SEP]``
    ====  ==========================================  =====================================

    The non-matching caption (slot 4) is a *hard* negative for half of the images (one
    attribute of one object changed to another value of the domain: colour, shape or
    size, so the text differs from every true caption in one word) and the caption of
    another train image otherwise, as BLIP mines negatives in the batch.

``"captions+itm+text"`` (recipe v2, the shipped model)
    the same five image texts plus a separate *text-only* stream
    (:func:`build_text_stream`): questions and answers about scenes of both domains as
    plain language, with no image, as a language model would have read them.

The VQA task itself (answering a question *about an image*) is never trained on: captions
and matching ground the answer words (``yes``, ``no``, the digits) in images, and the text
stream teaches how questions read, without an image to answer from.
Every choice is drawn from ``numpy.random.default_rng([seed, 0x5E7, index])``, so the
corpus is a function of the world and the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

__all__ = [
    "CORPORA",
    "TextTargets",
    "build_targets",
    "build_text_stream",
    "itm_negative",
    "matching_accuracy",
]

CORPORA = ("canonical", "captions+itm", "captions+itm+text")
_DIGIT_OF = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}


@dataclass(frozen=True)
class TextTargets:
    """Decoder inputs for ``n`` images with ``v`` candidate texts each.

    Attributes:
        input_ids, attention_mask, label_mask: ``(n, v, T)`` int64; ``[DEC] text [SEP] [PAD]..``,
            1 on real tokens, 1 where the token is a training label.
        texts: ``n`` lists of ``v`` strings (the texts before tokenisation).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    label_mask: torch.Tensor
    texts: list[list[str]]

    @property
    def variants(self) -> int:
        return self.input_ids.shape[1]


def itm_negative(scene, rng: np.random.Generator) -> object:
    """``scene`` with one attribute (colour, shape or size) of one object changed to another
    value of its domain; object order and positions are kept, so captions stay well formed."""
    from repspace.data.domains import SIZES, get_domain

    spec = get_domain(scene.domain)
    i = int(rng.integers(len(scene.objects)))
    obj = scene.objects[i]
    attr = ("color", "shape", "size")[int(rng.integers(3))]
    values = {"color": tuple(spec.colors), "shape": tuple(spec.shapes), "size": tuple(SIZES)}[attr]
    others = [v for v in values if v != getattr(obj, attr)]
    new = replace(obj, **{attr: others[int(rng.integers(len(others)))]})
    return replace(scene, objects=scene.objects[:i] + (new,) + scene.objects[i + 1 :])


def _with_digit(caption: str) -> str:
    """``"there are two shapes ..."`` -> ``"there are 2 shapes ..."`` (caption 3's count word)."""
    w = caption.split(" ")
    if len(w) > 2 and w[0] == "there" and w[2] in _DIGIT_OF:
        w[2] = _DIGIT_OF[w[2]]
    return " ".join(w)


def _texts_itm(scenes, seed: int) -> tuple[list[list[str]], list[list[bool]]]:
    from repspace.data.text import captions

    refs = [captions(s) for s in scenes]
    texts, answer_only = [], []
    n = len(scenes)
    for i, (scene, r) in enumerate(zip(scenes, refs)):
        rng = np.random.default_rng([seed, 0x5E7, i])
        c3 = _with_digit(r[2]) if rng.random() < 0.5 else r[2]
        pos = r[int(rng.integers(3))]
        k = int(rng.integers(3))
        if rng.random() < 0.5 or n == 1:
            neg = captions(itm_negative(scene, rng))[k]
        else:
            j = (i + 1 + int(rng.integers(n - 1))) % n  # any other image
            neg = refs[j][k]
        if (
            neg in r
        ):  # a caption of another scene can coincide with this one's: make it hard instead
            neg = captions(itm_negative(scene, rng))[k]
        texts.append([r[0], r[1], c3, f"{pos} ? yes", f"{neg} ? no"])
        answer_only.append([False, False, False, True, True])
    return texts, answer_only


def build_targets(tokenizer, scenes, corpus: str, seed: int) -> TextTargets:
    """Tokenised targets of ``corpus`` (one of :data:`CORPORA`) for ``scenes`` (train order)."""
    from repspace.data import decoder_inputs
    from repspace.data.text import canonical_caption

    if corpus not in CORPORA:
        raise ValueError(f"pretrain: unknown corpus {corpus!r}; choose one of {', '.join(CORPORA)}")
    if corpus == "canonical":
        texts = [[canonical_caption(s)] for s in scenes]
        answer_only = [[False] for _ in scenes]
    else:
        texts, answer_only = _texts_itm(scenes, seed)  # "+text" adds a separate stream
    n, v = len(texts), len(texts[0])
    enc = decoder_inputs(tokenizer, [t for row in texts for t in row])
    ids = enc["input_ids"].view(n, v, -1)
    mask = enc["attention_mask"].view(n, v, -1)
    labels = mask.clone()
    only = torch.tensor(answer_only).view(n, v)
    if only.any():
        # answer-only texts end "... ? <answer> [SEP]": the labels are their last two real tokens
        length = mask.sum(-1, keepdim=True)
        pos = torch.arange(mask.shape[-1]).view(1, 1, -1)
        tail = (pos >= length - 2) & (pos < length)
        labels = torch.where(only.unsqueeze(-1), tail.long(), labels)
    return TextTargets(ids, mask, labels, texts)


def matching_accuracy(
    model, tokenizer, pixel_values, scenes, seed: int = 0, batch_size: int = 64
) -> dict:
    """Held-out image-text matching as the model was pre-trained to do it: for each image,
    its canonical caption and a hard negative (:func:`itm_negative`, drawn from
    ``default_rng([seed, 0x17E, index])``) are each followed by ``?``, and the model is
    right when it gives ``yes`` a higher next-token logit than ``no`` for the true caption
    and the reverse for the negative.

    Returns ``{"positive": acc, "hard_negative": acc, "mean": (positive + hard_negative) / 2}``
    (chance is 0.5 for ``mean``).
    """
    from repspace.data import decoder_inputs
    from repspace.data.text import canonical_caption

    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    negs = [
        canonical_caption(itm_negative(s, np.random.default_rng([seed, 0x17E, i])))
        for i, s in enumerate(scenes)
    ]
    out = {}
    model.eval()
    for name, texts, want_yes in (
        ("positive", [canonical_caption(s) for s in scenes], True),
        ("hard_negative", negs, False),
    ):
        enc = decoder_inputs(tokenizer, [f"{t} ?" for t in texts])
        last = enc["attention_mask"].sum(1) - 2  # position of "?" ([SEP] follows it)
        right = 0
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                sl = slice(i, i + batch_size)
                logits = model(
                    pixel_values=pixel_values[sl],
                    input_ids=enc["input_ids"][sl],
                    attention_mask=enc["attention_mask"][sl],
                ).logits
                at = logits[torch.arange(logits.shape[0]), last[sl]]
                says_yes = at[:, yes] > at[:, no]
                right += int((says_yes == want_yes).sum())
        out[name] = right / len(texts)
    out["mean"] = (out["positive"] + out["hard_negative"]) / 2
    return out


def build_text_stream(tokenizer, world_seed: int, n_scenes: int, seed: int) -> TextTargets:
    """The text-only stream of ``"captions+itm+text"``: questions and answers about
    ``n_scenes`` train scenes of *each* domain, as plain text ``[DEC] question answer [SEP]``
    with the loss on every token and **no image** (the decoder runs without cross-attention).

    It stands in for the language pre-training a real VLM's text side brings (BLIP's decoder
    starts from BERT): the base learns how questions read and which kind of word answers
    them, but never to answer one *about an image*; answers here are priors, not grounded.
    Returns a :class:`TextTargets` with ``v = 1``; the question for scene ``i`` of domain
    ``d`` is drawn by ``default_rng([seed, 0x7E7, d, i])``.
    """
    from repspace.data import ShapesWorld, decoder_inputs
    from repspace.data.text import questions

    texts = []
    for d, domain in enumerate(("source", "shifted")):
        world = ShapesWorld(
            seed=world_seed, domain=domain, image_size=32, n_train=n_scenes, n_val=2, n_test=2
        )
        for i in range(n_scenes):
            qas = questions(world.scene("train", i), np.random.default_rng([seed, 0x7E7, d, i]))
            texts += [[f"{qa.question} {qa.answer}"] for qa in qas]
    enc = decoder_inputs(tokenizer, [t[0] for t in texts])
    ids, mask = enc["input_ids"].unsqueeze(1), enc["attention_mask"].unsqueeze(1)
    return TextTargets(ids, mask, mask.clone(), texts)
