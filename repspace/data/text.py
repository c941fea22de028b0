"""Captions, VQA pairs and the closed vocabulary of the shapes world.

Everything is a deterministic function of the scene graph (questions also of a seeded RNG
that picks *which* question to ask).  The vocabulary is small and closed: :func:`vocabulary`
enumerates every word any template can produce, so a word-level tokenizer never sees
``[UNK]`` on generated text.

Captions (three references per image, always three so batches collate):

1. chain, left to right: ``"a large red circle left of a small blue square above a small green triangle"``
   (consecutive objects in (column, row) order; ``left of`` if their columns differ, else ``above``);
   one object: ``"a large red circle at the top left"``.
2. the same chain reversed with inverse relations (``right of`` / ``below``);
   one object: ``"there is a large red circle at the top left"``.
3. an inventory with positions:
   ``"there are two shapes a large red circle at the left and a small blue square at the top right"``.

Question types (one of each per image where the scene allows an unambiguous question):

==========  ==============================================  ===============
type        example                                         answer
==========  ==============================================  ===============
color       what color is the [small] circle?               a colour name
shape       what shape is the [large] red object?           a shape name
count       how many (shapes | circles | red shapes) ...    "0" .. "9"
relation    is the circle left of the blue square?          yes / no
exist       is there a red circle?                          yes / no
==========  ==============================================  ===============

Referring expressions are the shortest attribute combination that matches *exactly one*
object, so "what color is the circle" is only asked when there is exactly one circle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from repspace.data.domains import DOMAINS, PLURALS, SIZES, get_domain
from repspace.data.scene import GRID, Scene, SceneObject, position_name

__all__ = [
    "QA",
    "QUESTION_TYPES",
    "canonical_caption",
    "NUMBER_WORDS",
    "RELATIONS",
    "captions",
    "questions",
    "relation_holds",
    "vocabulary",
    "words",
]

QUESTION_TYPES = ("color", "shape", "count", "relation", "exist")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
RELATIONS = ("left of", "right of", "above", "below")
_PUNCT = ("?",)
# Template words that are not attribute values (kept in one place so vocabulary() is exact).
_TEMPLATE_WORDS = (
    "a the at there is are shape shapes and object what color how many is "
    "left right of above below yes no middle top bottom center"
).split()


@dataclass(frozen=True)
class QA:
    """One question about a scene, its answer and its type (one of :data:`QUESTION_TYPES`)."""

    question: str
    answer: str
    qtype: str


def _np(o: SceneObject) -> str:
    return f"a {o.size} {o.color} {o.shape}"


def canonical_caption(scene: Scene) -> str:
    """Caption 1 of :func:`captions` alone (cheaper; used to assign scenes to splits)."""
    objs = scene.objects
    if len(objs) == 1:
        return f"{_np(objs[0])} at the {objs[0].position}"
    out = [_np(objs[0])]
    for a, b in zip(objs[:-1], objs[1:]):
        # objects are sorted by (col, row): a differing column means "left of", else "above".
        out += ["left of" if a.col < b.col else "above", _np(b)]
    return " ".join(out)


def captions(scene: Scene) -> list[str]:
    """The three reference captions of ``scene`` (see the module docstring); index 0 is canonical."""
    objs = scene.objects
    n = len(objs)
    if n == 1:
        c2 = f"there is {_np(objs[0])} at the {objs[0].position}"
    else:
        rev = objs[::-1]
        c2 = " ".join(
            [_np(rev[0])]
            + [
                w
                for a, b in zip(rev[:-1], rev[1:])
                for w in ("right of" if a.col > b.col else "below", _np(b))
            ]
        )
    be, noun = ("is", "shape") if n == 1 else ("are", "shapes")
    # Positions make caption 3 a function of the full layout, so the canonical caption is a function
    # of every caption: scenes with different canonical captions share *no* caption (split disjointness).
    c3 = f"there {be} {NUMBER_WORDS[n]} {noun} " + " and ".join(
        f"{_np(o)} at the {o.position}" for o in objs
    )
    return [canonical_caption(scene), c2, c3]


def _unique_desc(obj: SceneObject, objs: tuple[SceneObject, ...], attr_sets) -> str | None:
    """Shortest description (attributes in size-color-shape order) that matches only ``obj``."""
    for attrs in attr_sets:
        if sum(all(getattr(o, a) == getattr(obj, a) for a in attrs) for o in objs) == 1:
            return " ".join(getattr(obj, a) for a in ("size", "color", "shape") if a in attrs)
    return None


_COLOR_Q = (("shape",), ("size", "shape"))
_SHAPE_Q = (("color",), ("size", "color"))
_REF = (("shape",), ("size", "shape"), ("color", "shape"), ("size", "color", "shape"))


def relation_holds(a: SceneObject, rel: str, b: SceneObject) -> bool:
    """Truth of ``a <rel> b`` on grid coordinates (see :mod:`repspace.data.scene`)."""
    return {
        "left of": a.col < b.col,
        "right of": a.col > b.col,
        "above": a.row < b.row,
        "below": a.row > b.row,
    }[rel]


def questions(scene: Scene, rng: np.random.Generator) -> list[QA]:
    """At most one question per type in :data:`QUESTION_TYPES` order; ``rng`` picks the variant.

    Types whose preconditions fail are skipped (e.g. ``relation`` needs two objects with
    unique referring expressions); ``count`` and ``exist`` are always available.
    """
    spec = get_domain(scene.domain)
    objs = scene.objects
    out: list[QA] = []

    cands = [(o, d) for o in objs if (d := _unique_desc(o, objs, _COLOR_Q))]
    if cands:
        o, d = cands[int(rng.integers(len(cands)))]
        out.append(QA(f"what color is the {d}?", o.color, "color"))

    cands = [(o, d) for o in objs if (d := _unique_desc(o, objs, _SHAPE_Q))]
    if cands:
        o, d = cands[int(rng.integers(len(cands)))]
        out.append(QA(f"what shape is the {d} object?", o.shape, "shape"))

    kind = int(rng.integers(3))
    if kind == 0:
        out.append(QA("how many shapes are there?", str(len(objs)), "count"))
    elif kind == 1:
        s = spec.shapes[int(rng.integers(len(spec.shapes)))]
        out.append(QA(f"how many {PLURALS[s]} are there?", str(scene.count(shape=s)), "count"))
    else:
        c = tuple(spec.colors)[int(rng.integers(len(spec.colors)))]
        out.append(QA(f"how many {c} shapes are there?", str(scene.count(color=c)), "count"))

    refs = [(o, d) for o in objs if (d := _unique_desc(o, objs, _REF))]
    if len(refs) >= 2:
        i, j = rng.choice(len(refs), size=2, replace=False)
        (a, da), (b, db) = refs[int(i)], refs[int(j)]
        rel = RELATIONS[int(rng.integers(len(RELATIONS)))]
        ans = "yes" if relation_holds(a, rel, b) else "no"
        out.append(QA(f"is the {da} {rel} the {db}?", ans, "relation"))

    if rng.random() < 0.5:  # ask about a present object half of the time to balance yes / no
        o = objs[int(rng.integers(len(objs)))]
        shape, color = o.shape, o.color
    else:
        shape = spec.shapes[int(rng.integers(len(spec.shapes)))]
        color = tuple(spec.colors)[int(rng.integers(len(spec.colors)))]
    ans = "yes" if scene.count(shape=shape, color=color) else "no"
    out.append(QA(f"is there a {color} {shape}?", ans, "exist"))
    return out


_WORD_RE = re.compile(r"[a-z0-9]+|\?")


def words(text: str) -> list[str]:
    """Split generated text into vocabulary words: lowercase alphanumeric runs and ``?``."""
    return _WORD_RE.findall(text.lower())


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """Every word captions, questions and answers of either domain can contain, sorted.

    Built from the templates' fixed words and every attribute value of every domain (shape
    names and plurals, colour names, sizes, cell names, number words, digits ``0..9``), so it
    is a superset of what :func:`captions` and :func:`questions` emit (tested).
    """
    vocab = set(_TEMPLATE_WORDS) | set(_PUNCT) | set(SIZES) | set(NUMBER_WORDS)
    vocab |= {str(d) for d in range(GRID * GRID + 1)}
    for spec in DOMAINS.values():
        vocab |= set(spec.shapes) | set(spec.colors) | {PLURALS[s] for s in spec.shapes}
    for r in range(GRID):
        for c in range(GRID):
            vocab |= set(position_name(r, c).split())
    for rel in RELATIONS:
        vocab |= set(rel.split())
    return tuple(sorted(vocab))
