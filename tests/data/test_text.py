"""Captions and VQA pairs: consistent with the scene graph, unambiguous, inside the vocabulary."""

import re

import pytest

from repspace.data import ShapesWorld, vocabulary, words
from repspace.data.domains import DOMAINS, PLURALS

_SINGULAR = {v: k for k, v in PLURALS.items()}


def _samples(domain, n=150, split="train"):
    w = ShapesWorld(seed=11, domain=domain)
    return [w.sample(split, i) for i in range(n)]


@pytest.mark.parametrize("domain", ["source", "shifted"])
def test_all_words_in_vocabulary(domain):
    vocab = set(vocabulary())
    used = set()
    for s in _samples(domain) + _samples(domain, 50, "test"):
        for text in s.captions + [q.question for q in s.qa] + [q.answer for q in s.qa]:
            used |= set(words(text))
    assert used <= vocab, used - vocab
    # the vocabulary holds every colour and shape of the domain (they are all used somewhere)
    assert set(DOMAINS[domain].colors) | set(DOMAINS[domain].shapes) <= used


def _matches(o, desc):
    """Objects matching a referring expression such as 'small red circle' or 'red' (+ 'object')."""
    toks = desc.split()
    return all(t in (o.size, o.color, o.shape) for t in toks)


def _answer(scene, question):
    """Independent re-derivation of an answer from the scene graph by parsing the question."""
    objs = scene.objects
    if m := re.fullmatch(r"what color is the (.+)\?", question):
        hits = [o for o in objs if _matches(o, m[1])]
        assert len(hits) == 1, question  # unambiguous referent
        return hits[0].color
    if m := re.fullmatch(r"what shape is the (.+) object\?", question):
        hits = [o for o in objs if _matches(o, m[1])]
        assert len(hits) == 1, question
        return hits[0].shape
    if question == "how many shapes are there?":
        return str(len(objs))
    if m := re.fullmatch(r"how many (\w+) shapes are there\?", question):
        return str(sum(o.color == m[1] for o in objs))
    if m := re.fullmatch(r"how many (\w+) are there\?", question):
        return str(sum(o.shape == _SINGULAR[m[1]] for o in objs))
    if m := re.fullmatch(r"is the (.+?) (left of|right of|above|below) the (.+)\?", question):
        a = [o for o in objs if _matches(o, m[1])]
        b = [o for o in objs if _matches(o, m[3])]
        assert len(a) == 1 and len(b) == 1 and a[0] != b[0], question
        a, b = a[0], b[0]
        holds = {
            "left of": a.col < b.col,
            "right of": a.col > b.col,
            "above": a.row < b.row,
            "below": a.row > b.row,
        }
        return "yes" if holds[m[2]] else "no"
    if m := re.fullmatch(r"is there a (\w+) (\w+)\?", question):
        return "yes" if any(o.color == m[1] and o.shape == m[2] for o in objs) else "no"
    raise AssertionError(f"unparsed question {question!r}")


@pytest.mark.parametrize("domain", ["source", "shifted"])
def test_questions_answerable_and_unambiguous(domain):
    types = set()
    for s in _samples(domain):
        assert len({q.qtype for q in s.qa}) == len(s.qa)  # at most one per type
        for q in s.qa:
            assert _answer(s.scene, q.question) == q.answer, (q, s.scene)
            types.add(q.qtype)
    assert types == {"color", "shape", "count", "relation", "exist"}


def test_color_question_only_for_unique_shape_or_size_shape():
    for s in _samples("source", 200):
        for q in s.qa:
            if q.qtype == "color":
                assert not any(c in q.question for c in DOMAINS["source"].colors)


_NP = r"a (small|large) (\w+) (\w+)"


@pytest.mark.parametrize("domain", ["source", "shifted"])
def test_captions_describe_the_scene(domain):
    for s in _samples(domain):
        objs = s.scene.objects
        c1, c2, c3 = s.captions
        # caption 3 lists every object, with its position, in (col, row) order
        parts = re.fullmatch(r"there (?:is|are) (\w+) shapes? (.+)", c3)
        listed = parts[2].split(" and ")
        assert len(listed) == len(objs)
        for o, text in zip(objs, listed):
            assert text == f"a {o.size} {o.color} {o.shape} at the {o.position}"
        # captions 1 and 2: relations between consecutive objects hold on the grid
        if len(objs) > 1:
            rels = re.findall(r" (left of|above) ", c1)
            assert len(rels) == len(objs) - 1
            for a, b, rel in zip(objs[:-1], objs[1:], rels):
                assert (a.col < b.col) if rel == "left of" else (a.col == b.col and a.row < b.row)
            inv = re.findall(r" (right of|below) ", c2)
            assert inv == [{"left of": "right of", "above": "below"}[r] for r in rels][::-1]
            assert [m[2] for m in re.finditer(_NP, c2)] == [o.color for o in objs][::-1]
