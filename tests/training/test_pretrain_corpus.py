"""The embedded model's pre-training texts (recipe v2: captions + generated image-text matching)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

import repspace.training.pretrain as pt  # noqa: E402
import repspace.training.pretrain.loop as loop  # noqa: E402
from repspace.data import ShapesWorld  # noqa: E402
from repspace.data.text import captions  # noqa: E402
from repspace.training.pretrain_corpus import CORPORA, build_targets, itm_negative  # noqa: E402


@pytest.fixture(scope="module")
def world_and_tok():
    from repspace.models import build_processor

    world = ShapesWorld(seed=0, domain="source", image_size=32, n_train=200, n_test=2)
    scenes = [world.scene("train", i) for i in range(200)]
    return scenes, build_processor(32).tokenizer


def _diff_words(a: str, b: str) -> int:
    wa, wb = a.split(), b.split()
    return len(wa) - len(wb) if len(wa) != len(wb) else sum(x != y for x, y in zip(wa, wb))


def test_v2_texts_are_captions_and_matching_pairs(world_and_tok):
    scenes, tok = world_and_tok
    t = build_targets(tok, scenes, "captions+itm", seed=0)
    assert t.variants == 5 and t.input_ids.shape[:2] == (200, 5)
    digits = hard = 0
    for scene, texts in zip(scenes, t.texts):
        refs = captions(scene)
        assert texts[0] == refs[0] and texts[1] == refs[1]
        if texts[2] != refs[2]:  # the count word written as a digit, nothing else changed
            digits += 1
            assert _diff_words(texts[2], refs[2]) == 1 and texts[2].split()[2] == str(
                len(scene.objects)
            )
        pos, ans = texts[3].rsplit(" ? ", 1)
        assert ans == "yes" and pos in refs
        neg, ans = texts[4].rsplit(" ? ", 1)
        assert ans == "no" and neg not in refs
        hard += any(_diff_words(neg, r) == 1 for r in refs)
    # both halves of the coin flips happen (about 100 of 200 each; generous bounds)
    assert 60 < digits < 140 and 60 < hard < 160


def test_labels_are_whole_captions_but_only_the_answer_of_a_matching_pair(world_and_tok):
    scenes, tok = world_and_tok
    t = build_targets(tok, scenes[:20], "captions+itm", seed=0)
    assert torch.equal(t.label_mask[:, :3], t.attention_mask[:, :3])
    yes, no, sep = (tok.convert_tokens_to_ids(w) for w in ("yes", "no", "[SEP]"))
    for slot, answer in ((3, yes), (4, no)):
        lab = t.label_mask[:, slot]
        assert (lab.sum(-1) == 2).all()
        picked = t.input_ids[:, slot][lab.bool()].view(-1, 2)
        assert (picked[:, 0] == answer).all() and (picked[:, 1] == sep).all()
        assert (t.attention_mask[:, slot] >= lab).all()  # labels lie on real tokens only


def test_corpus_is_a_function_of_the_seed(world_and_tok):
    scenes, tok = world_and_tok
    a, b = (build_targets(tok, scenes[:50], "captions+itm", seed=0) for _ in range(2))
    c = build_targets(tok, scenes[:50], "captions+itm", seed=1)
    assert a.texts == b.texts and torch.equal(a.input_ids, b.input_ids)
    assert a.texts != c.texts


def test_unknown_corpus_is_named():
    assert set(CORPORA) == set(pt.RECIPES)
    with pytest.raises(
        ValueError,
        match=r"^corpus must be one of canonical, captions\+itm, captions\+itm\+text; got 'web'$",
    ):
        pt.PretrainConfig(corpus="web")


@settings(max_examples=60, deadline=None)
@given(index=st.integers(0, 5000), seed=st.integers(0, 2**16))
def test_hard_negative_changes_one_attribute_of_one_object(index, seed):
    scene = ShapesWorld(seed=0, domain="source", image_size=32).scene("train", index)
    neg = itm_negative(scene, np.random.default_rng(seed))
    changed = [(a, b) for a, b in zip(scene.objects, neg.objects) if a != b]
    assert len(neg.objects) == len(scene.objects) and len(changed) == 1
    a, b = changed[0]
    assert sum(getattr(a, f) != getattr(b, f) for f in ("color", "shape", "size")) == 1
    assert (a.row, a.col, a.bbox) == (b.row, b.col, b.bbox)
    assert not set(captions(neg)) & set(captions(scene))


def test_variant_draws_select_rows_consistently(world_and_tok):
    """Five identical copies of the canonical text must train exactly like the one-text corpus:
    the per-image variant draw may only choose *which* copy, never mix rows or columns."""
    from repspace.models import tiny_blip_config
    from repspace.training.pretrain_corpus import TextTargets

    _, tok = world_and_tok
    arch = dict(
        patch_size=8,
        vision_hidden=16,
        vision_layers=1,
        text_hidden=16,
        text_layers=1,
        num_heads=2,
        mlp_ratio=2,
    )
    world = ShapesWorld(seed=0, domain="source", image_size=32, n_train=12, n_test=2)
    images, _, sc = loop.render(world, "train", 12)
    one = build_targets(tok, sc, "canonical", seed=0)
    five = TextTargets(
        one.input_ids.repeat(1, 5, 1),
        one.attention_mask.repeat(1, 5, 1),
        one.label_mask.repeat(1, 5, 1),
        [r * 5 for r in one.texts],
    )
    cfg = pt.PretrainConfig(
        steps=5,
        batch_size=4,
        n_train=12,
        n_eval=2,
        image_size=32,
        architecture=arch,
        corpus="canonical",
    )
    states = []
    for targets in (one, five):
        torch.manual_seed(0)
        model = transformers.BlipForConditionalGeneration(
            tiny_blip_config(image_size=32, tokenizer=tok, **arch)
        )
        loop.train_loop(model, torch.from_numpy(images), targets, cfg, progress=False)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])

    # ... and a corpus whose copies differ does train differently (the draw is live)
    shuffled = replace(five, input_ids=five.input_ids.clone())
    shuffled.input_ids[:, 1:, 1] = tok.convert_tokens_to_ids("yes")
    torch.manual_seed(0)
    model = transformers.BlipForConditionalGeneration(
        tiny_blip_config(image_size=32, tokenizer=tok, **arch)
    )
    loop.train_loop(model, torch.from_numpy(images), shuffled, cfg, progress=False)
    assert any(not torch.equal(states[0][k], v) for k, v in model.state_dict().items())


def test_text_stream_is_questions_and_answers_of_both_domains_without_images():
    from repspace.data.text import vocabulary
    from repspace.models import build_processor, tiny_blip_config
    from repspace.training.pretrain_corpus import build_text_stream

    tok = build_processor(32).tokenizer
    s = build_text_stream(tok, world_seed=0, n_scenes=40, seed=0)
    texts = [t[0] for t in s.texts]
    assert s.variants == 1 and len(texts) > 80 and torch.equal(s.label_mask, s.attention_mask)
    assert all("?" in t and t.split("?")[1].strip() for t in texts)  # question, then its answer
    words = {w for t in texts for w in t.replace("?", " ").split()}
    assert words <= set(vocabulary()) and {"diamond", "white"} & words == {
        "diamond",
        "white",
    }  # shifted + source
    assert s.texts == build_text_stream(tok, world_seed=0, n_scenes=40, seed=0).texts

    # the text loss never touches the image side: no gradient reaches the vision tower
    arch = dict(
        patch_size=8,
        vision_hidden=16,
        vision_layers=1,
        text_hidden=16,
        text_layers=1,
        num_heads=2,
        mlp_ratio=2,
    )
    model = transformers.BlipForConditionalGeneration(
        tiny_blip_config(image_size=32, tokenizer=tok, **arch)
    )
    loss = loop.text_loss(model, s, torch.arange(8))
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert all(p.grad is None for p in model.vision_model.parameters())
    assert model.text_decoder.bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    cross = [p for n, p in model.text_decoder.named_parameters() if "crossattention" in n]
    assert cross and all(p.grad is None for p in cross)
