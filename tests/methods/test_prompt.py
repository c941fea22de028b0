"""Prompt tuning: exact counts, outputs against a hand-built prepended sequence, base-shaped
logits and loss, causality, capture strips the virtual tokens, training, round trip,
generation, errors."""

import pytest
import torch
import torch.nn.functional as F

from repspace.layer_table import layer_names
from repspace.capture.tokens import align_tokens, num_virtual_tokens
from repspace.methods import apply_method, count_parameters, generation_kwargs, make_config
from tests.methods import family_checks as fc
from tests.methods.conftest import ARCHS, tiny_inputs, tiny_model

P = 3


def prompted(arch, **options):
    torch.manual_seed(0)
    return apply_method(tiny_model(arch), make_config("prompt", num_virtual_tokens=P, **options))


def prompt_of(model):
    return next(p for n, p in model.named_parameters() if n.endswith("adapter_prompt.weight"))


def hand_built(model, words, x):
    """``(inputs_embeds, position_ids, attention_mask)`` of the prompted sequence built by
    hand: ``model``'s prompt first, then ``words(input_ids)``; the prompt at position 0 and
    the real tokens at their own positions 0..t-1; a mask of ones over the prompt."""
    b, t = x["input_ids"].shape
    emb = torch.cat([prompt_of(model).detach().expand(b, -1, -1), words(x["input_ids"])], 1)
    pos = torch.cat([torch.zeros(P, dtype=torch.long), torch.arange(t)])[None].expand(b, -1)
    mask = torch.cat([torch.ones(b, P, dtype=torch.long), x["attention_mask"]], 1)
    return emb, pos, mask


@pytest.mark.parametrize("arch", ARCHS)
def test_counts_names_shapes(arch):
    base = tiny_model(arch)
    model = prompted(arch)
    assert count_parameters(model).trainable == P * 32
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        {
            "blip": "text_decoder.bert",
            "blip_vqa": "text_encoder",
            "llava": "model.language_model",
            "gpt2": "transformer",
            "bert": "bert",
        }[arch]
        + ".adapter_prompt.weight"
    ]
    assert layer_names(model) == layer_names(base)
    assert num_virtual_tokens(model) == P and num_virtual_tokens(base) == 0
    assert generation_kwargs(model) == {"use_cache": False}
    with torch.no_grad():
        got, want = model(**tiny_inputs(arch)), base(**tiny_inputs(arch))
    for key in (
        "logits",
        "last_hidden_state",
    ):  # base shapes: the prompt never leaves the text model
        if getattr(want, key, None) is not None:
            assert getattr(got, key).shape == getattr(want, key).shape


def test_gpt2_matches_hand_built_sequence():
    """Prompt first, real tokens at their own positions 0..t-1, prompt at position 0, mask
    of ones over the prompt; logits of the real tokens are what the model returns."""
    model = prompted("gpt2")
    fc.perturb_trainable(model, scale=1.0)
    base = tiny_model("gpt2")
    x = tiny_inputs("gpt2")
    tr = base.transformer
    emb, pos, mask = hand_built(model, tr.wte, x)
    with torch.no_grad():
        h = tr(inputs_embeds=emb, position_ids=pos, attention_mask=mask).last_hidden_state
        want = base.lm_head(h[:, P:])
        out = model(**x)
    torch.testing.assert_close(out.logits, want, rtol=0, atol=1e-6)
    # the loss is the base definition on those logits: next-token CE over the real labels
    ref = F.cross_entropy(out.logits[:, :-1].reshape(-1, 64), x["labels"][:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, ref)


def test_blip_decoder_matches_hand_built_sequence():
    """BLIP captioning: the prompt goes into ``text_decoder.bert`` in front of ``[DEC] ...``,
    which still cross-attends to the image; logits and loss are those of the real tokens."""
    model = prompted("blip")
    fc.perturb_trainable(model, scale=1.0)
    base = tiny_model("blip")
    x = tiny_inputs("blip")
    text = base.text_decoder.bert
    emb, pos, mask = hand_built(model, text.embeddings.word_embeddings, x)
    with torch.no_grad():
        image = base.vision_model(pixel_values=x["pixel_values"]).last_hidden_state
        h = text(
            inputs_embeds=emb,
            position_ids=pos,
            attention_mask=mask,
            encoder_hidden_states=image,
            is_decoder=True,
        ).last_hidden_state
        want = base.text_decoder.cls(h[:, P:])
        out = model(**x)
    torch.testing.assert_close(out.logits, want, rtol=0, atol=1e-6)
    ref = F.cross_entropy(want[:, :-1].reshape(-1, want.shape[-1]), x["labels"][:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, ref, rtol=0, atol=1e-6)


def test_blip_vqa_prompts_the_question_encoder_only():
    """BLIP VQA: the prompt is prepended to the question in ``text_encoder``; the answer
    decoder cross-attends to the question's real tokens only (the prompt is stripped)."""
    model = prompted("blip_vqa")
    fc.perturb_trainable(model, scale=1.0)
    base = tiny_model("blip_vqa")
    x = tiny_inputs("blip_vqa")
    b, t = x["input_ids"].shape
    enc = base.text_encoder
    emb, pos, mask = hand_built(model, enc.embeddings.word_embeddings, x)
    seen = []
    hook = model.text_decoder.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["encoder_hidden_states"]), with_kwargs=True
    )
    with torch.no_grad():
        image = base.vision_model(pixel_values=x["pixel_values"]).last_hidden_state
        want = enc(
            inputs_embeds=emb,
            position_ids=pos,
            attention_mask=mask,
            encoder_hidden_states=image,
        ).last_hidden_state[:, P:]
        model(**x)
    hook.remove()
    assert seen and seen[0].shape == (b, t, want.shape[-1])
    torch.testing.assert_close(seen[0], want, rtol=0, atol=1e-6)


def test_bert_pools_its_cls_token():
    model = prompted("bert")
    fc.perturb_trainable(model, scale=1.0)
    base = tiny_model("bert")
    x = tiny_inputs("bert")
    emb, pos, mask = hand_built(model, base.bert.embeddings.word_embeddings, x)
    with torch.no_grad():
        h = base.bert(inputs_embeds=emb, position_ids=pos, attention_mask=mask).last_hidden_state
        want = base.classifier(base.bert.pooler(h[:, P:]))
        out = model(**x)
    torch.testing.assert_close(out.logits, want, rtol=0, atol=1e-6)


def test_llava_rotary_shift_and_loss():
    """Llama: prompt at positions 0..P-1, real tokens shifted by P (RoPE is relative)."""
    model = prompted("llava")
    fc.perturb_trainable(model, scale=1.0)
    x = tiny_inputs("llava")
    with torch.no_grad():
        out = model(**x)
    ref = F.cross_entropy(out.logits[:, :-1].reshape(-1, 64), x["labels"][:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, ref)


@pytest.mark.parametrize("arch", ["gpt2", "blip", "llava"])
def test_causality_and_prompt_reaches_every_position(arch):
    model = prompted(arch)
    fc.perturb_trainable(model, scale=1.0)
    x = tiny_inputs(arch)
    other = dict(x, input_ids=x["input_ids"].clone())
    other["input_ids"][:, -1] = (other["input_ids"][:, -1] + 1) % 60 + 3
    with torch.no_grad():
        a, b = model(**x).logits, model(**other).logits
        torch.testing.assert_close(a[:, :-1], b[:, :-1], rtol=0, atol=1e-6)
        prompt_of(model).add_(
            torch.randn(prompt_of(model).shape, generator=torch.Generator().manual_seed(3))
        )
        c = model(**x).logits
    assert (c - a).abs().amax(-1)[:, 1:].min() > 1e-4  # the prompt is seen from every position


def test_capture_strips_virtual_tokens():
    model = prompted("blip")
    x = tiny_inputs("blip")
    layer = model.text_decoder.bert.encoder.layer[0]
    seen = []
    handle = layer.register_forward_hook(
        lambda m, a, o: seen.append(o if torch.is_tensor(o) else o[0])
    )
    with torch.no_grad():
        model(**x)
    handle.remove()
    assert seen[0].shape[1] == P + 6
    states, valid = align_tokens(
        "text_decoder.bert.encoder.layer.0", seen[0], x, "text", num_virtual_tokens(model)
    )
    assert states.shape[1] == 6 and torch.equal(states, seen[0][:, P:])
    assert torch.equal(valid, x["attention_mask"].bool())


@pytest.mark.parametrize("arch", ["blip", "gpt2", "bert", "blip_vqa"])
def test_training_moves_only_prompt(arch):
    fc.check_training("prompt", arch, num_virtual_tokens=P, lr=5e-2)


@pytest.mark.parametrize("arch", ["blip", "llava"])  # blip_vqa's tiny loss hardly sees the question
def test_roundtrip(arch):
    torch.manual_seed(0)
    fc.check_roundtrip("prompt", arch, num_virtual_tokens=P)


@pytest.mark.parametrize("arch", ["blip", "gpt2", "blip_vqa", "llava"])
def test_generate(arch):
    model = prompted(arch)
    fc.perturb_trainable(model, scale=1.0)
    x = tiny_inputs(arch)
    kwargs = dict(max_new_tokens=4, min_new_tokens=4, do_sample=False, **generation_kwargs(model))
    if arch == "blip":
        kwargs["pixel_values"] = x["pixel_values"]
    else:
        kwargs.update(input_ids=x["input_ids"][:2], attention_mask=x["attention_mask"][:2])
    if arch in ("blip_vqa", "llava"):  # blip_vqa: the prompted question encoder feeds the decoder
        kwargs["pixel_values"] = x["pixel_values"][:2]
    with torch.no_grad():
        out = model.generate(**kwargs)
        assert out.shape[1] >= 4
        if arch == "gpt2":  # greedy: the first new token is the argmax of the last real logits
            first = model(
                input_ids=kwargs["input_ids"], attention_mask=kwargs["attention_mask"]
            ).logits[:, -1]
            assert torch.equal(out[:, 6], first.argmax(-1))
            with pytest.raises(ValueError, match="use_cache=False"):
                model.generate(**dict(kwargs, use_cache=True))


def test_init_modes():
    model = prompted("gpt2")
    vocab = tiny_model("gpt2").transformer.wte.weight
    assert all((vocab == row).all(-1).any() for row in prompt_of(model))
    rand = prompt_of(prompted("gpt2", init="random"))
    assert not any((vocab == row).all(-1).any() for row in rand)


def test_errors_are_one_line():
    with pytest.raises(ValueError, match="^init must be one of vocab, random; got 'zeros'$"):
        make_config("prompt", init="zeros")
    with pytest.raises(
        ValueError, match="^num_virtual_tokens must be an integer from 1 to 65536; got -1$"
    ):
        make_config("prompt", num_virtual_tokens=-1)
    model = prompted("gpt2")
    with pytest.raises(ValueError, match="already has a prompt"):
        apply_method(model, make_config("prompt"))
    x = tiny_inputs("gpt2")
    with pytest.raises(ValueError, match="2-D attention_mask") as e:
        model(input_ids=x["input_ids"], attention_mask=x["attention_mask"][:, None, None, :])
    assert "\n" not in str(e.value)
