"""PEFT models: LoRA contribution, disable_adapter, virtual tokens, prefix, IA3, BLIP, ViT."""

import copy
import warnings

import peft
import pytest
import torch

from repspace.capture import (
    AccumulatorSink,
    AdapterInactiveWarning,
    LayerCapture,
    MemorySink,
    Pooling,
    capture,
    capture_paired,
)

from .conftest import make_text, nonzero_lora


def _paired(base, tuned, inputs, layers, **kw):
    sink = capture_paired(base, tuned, inputs, layers, sink=MemorySink(), progress=False, **kw)
    return sink.tensors["base"], sink.tensors["tuned"]


def _warns_inactive(fn):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn()
    return out, any(issubclass(w.category, AdapterInactiveWarning) for w in rec)


def test_lora_contribution_appears_and_disable_adapter_removes_it(bert, text):
    tuned = peft.get_peft_model(
        copy.deepcopy(bert), peft.LoraConfig(target_modules=["query", "value"], r=2)
    )
    layers = ["blocks", "encoder.layer.0.attention.self.query"]
    # PEFT initialises lora_B to zero: states are bit-identical and the guard fires.
    (b, t), inactive = _warns_inactive(lambda: _paired(bert, tuned, text, layers))
    assert inactive and all(torch.equal(b[n], t[n]) for n in b)
    nonzero_lora(tuned)
    (b, t), inactive = _warns_inactive(lambda: _paired(bert, tuned, text, layers))
    assert not inactive
    for n in b:  # the wrapping module is hooked, so the LoRA update is in the states
        assert b[n].shape == t[n].shape and not torch.allclose(b[n], t[n], atol=1e-4), n
    with tuned.disable_adapter():
        (b2, t2), inactive = _warns_inactive(lambda: _paired(bert, tuned, text, layers))
    assert inactive
    for n in b2:
        torch.testing.assert_close(b2[n], t2[n], rtol=0, atol=0)


def test_accumulator_sink_receives_paired_pooled_rows(bert, text):
    tuned = nonzero_lora(
        peft.get_peft_model(copy.deepcopy(bert), peft.LoraConfig(target_modules=["query"], r=2))
    )
    sink = capture_paired(bert, tuned, text, "blocks", batch_size=4, progress=False)
    assert isinstance(sink, AccumulatorSink)
    acc = sink.acc
    assert acc.n == 6 and acc.layers == ["encoder.layer.0", "encoder.layer.1"]
    mem = capture_paired(
        bert, tuned, text, "blocks", batch_size=4, sink=MemorySink(), progress=False
    )
    for side, moments in (("base", acc.base), ("tuned", acc.tuned)):
        x = mem.tensors[side]["encoder.layer.1"].double()
        torch.testing.assert_close(moments["encoder.layer.1"].mean().double().cpu(), x.mean(0))
        xc = x - x.mean(0)
        torch.testing.assert_close(
            moments["encoder.layer.1"].centred().scatter.double().cpu(),
            xc.T @ xc,
            rtol=1e-6,
            atol=1e-6,
        )


@pytest.mark.parametrize("kind", ["prompt", "p_tuning"])
def test_prompt_virtual_tokens_are_stripped_bert(bert, text, kind):
    cfg = (
        peft.PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=3)
        if kind == "prompt"
        else peft.PromptEncoderConfig(
            task_type="FEATURE_EXTRACTION", num_virtual_tokens=3, encoder_hidden_size=16
        )
    )
    tuned = peft.get_peft_model(copy.deepcopy(bert), cfg).eval()
    b, t = _paired(bert, tuned, text, "blocks", pooling="tokens")
    for n in b:
        assert t[n].shape == b[n].shape  # same real tokens, virtual ones gone
        assert not torch.allclose(b[n], t[n])  # the prompt changes the real tokens' states
    ref = tuned(**text, output_hidden_states=True).hidden_states
    with LayerCapture(tuned, "encoder.layer.1") as cap:
        raw = cap.forward(text)["encoder.layer.1"]
    assert raw.shape[1] == text["input_ids"].shape[1] + 3
    mean = capture(tuned, text, "encoder.layer.1", progress=False).tensors["base"][
        "encoder.layer.1"
    ]
    m = text["attention_mask"].bool()[..., None]
    expect = (ref[2][:, 3:] * m).sum(1) / m.sum(1)
    torch.testing.assert_close(mean, expect, rtol=1e-5, atol=1e-6)


def test_prompt_tuning_gpt2_last_token(gpt2, text):
    tuned = peft.get_peft_model(
        copy.deepcopy(gpt2), peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)
    )
    b, t = _paired(gpt2, tuned, text, ["embeddings", "blocks"], pooling="last")
    assert list(b) == ["transformer.h.0:input", "transformer.h.0", "transformer.h.1"]
    for n in b:
        assert b[n].shape == t[n].shape == (6, 32)
    # The embedding of the last real token is not touched by the prompt (position ids shift).
    b2, t2 = _paired(gpt2, tuned, text, "blocks", pooling="tokens")
    assert all(b2[n].shape == t2[n].shape for n in b2)


def test_prefix_tuning_keeps_length_and_changes_states(gpt2, text):
    tuned = peft.get_peft_model(
        copy.deepcopy(gpt2), peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3)
    )
    with LayerCapture(tuned, "transformer.h.0") as cap:
        raw = cap.forward(text)["transformer.h.0"]
    assert raw.shape[1] == text["input_ids"].shape[1]
    b, t = _paired(gpt2, tuned, text, "blocks", pooling="tokens")
    for n in b:
        assert b[n].shape == t[n].shape and not torch.allclose(b[n], t[n])


def test_ia3(gpt2, text):
    tuned = peft.get_peft_model(
        copy.deepcopy(gpt2),
        peft.IA3Config(
            task_type="CAUSAL_LM",
            target_modules=["c_attn", "mlp.c_proj"],
            feedforward_modules=["mlp.c_proj"],
        ),
    )
    (b, t), inactive = _warns_inactive(lambda: _paired(gpt2, tuned, text, "blocks"))
    assert inactive  # IA3 vectors start at one: identity
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if "ia3_l" in name:
                p.fill_(1.5)
    (b, t), inactive = _warns_inactive(lambda: _paired(gpt2, tuned, text, "blocks"))
    assert not inactive and all(not torch.allclose(b[n], t[n]) for n in b)


@pytest.mark.parametrize("targets", [["qkv"], ["query", "value"], ["qkv", "query", "value"]])
def test_blip_caption_lora(blip_caption, pixels, targets):
    tuned = nonzero_lora(
        peft.get_peft_model(
            copy.deepcopy(blip_caption), peft.LoraConfig(target_modules=targets, r=2)
        )
    )
    inputs = {"pixel_values": pixels, **make_text(n=4, seed=4)}
    b, t = _paired(blip_caption, tuned, inputs, ["vision", "text"], batch_size=2)
    vision_changed = "qkv" in targets
    for n in b:
        assert b[n].shape == (4, 32)
        changed = not torch.allclose(b[n], t[n])
        # The text decoder cross-attends to the image, so a vision LoRA moves it too.
        assert changed == (vision_changed or n.startswith("text")), n
    # Token rows: vision patches and text tokens go to separate accumulators.
    sink = capture_paired(
        blip_caption,
        tuned,
        inputs,
        ["vision", "text"],
        pooling="tokens",
        batch_size=2,
        progress=False,
    )
    assert set(sink.accumulators) == {"vision", "text"}
    assert sink.accumulators["vision"].n == 4 * 5
    assert sink.accumulators["text"].n == int(inputs["attention_mask"].sum())


def test_blip_vqa_ia3_and_vit_lora(blip_vqa, vit, pixels):
    q, a = make_text(n=4, seed=1), make_text(n=4, t=5, seed=2)
    batch = {
        "pixel_values": pixels,
        **q,
        "decoder_input_ids": a["input_ids"],
        "decoder_attention_mask": a["attention_mask"],
    }
    tuned = peft.get_peft_model(
        copy.deepcopy(blip_vqa),
        peft.IA3Config(
            target_modules=["qkv", "query", "value", "fc2"], feedforward_modules=["fc2"]
        ),
    )
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if "ia3_l" in name:
                p.mul_(0.5)
    b, t = _paired(blip_vqa, tuned, batch, "blocks", pooling="mean")
    assert len(b) == 6 and all(not torch.allclose(b[n], t[n]) for n in b)
    tv = nonzero_lora(
        peft.get_peft_model(
            copy.deepcopy(vit), peft.LoraConfig(target_modules=["q_proj", "v_proj"], r=2)
        )
    )
    b, t = _paired(vit, tv, {"pixel_values": pixels}, "vision", pooling="cls")
    assert all(b[n].shape == (4, 32) and not torch.allclose(b[n], t[n]) for n in b)
    with tv.disable_adapter():
        b2, t2 = _paired(
            vit, tv, {"pixel_values": pixels}, "vision", pooling=Pooling("cls"), check_adapter=False
        )
    assert all(torch.equal(b2[n], t2[n]) for n in b2)


def test_same_object_is_rejected(bert, text):
    with pytest.raises(ValueError, match="same object"):
        capture_paired(bert, bert, text, "blocks", progress=False)


def test_accumulator_buffering_is_exact(bert, text):
    tuned = nonzero_lora(
        peft.get_peft_model(copy.deepcopy(bert), peft.LoraConfig(target_modules=["query"], r=2))
    )
    one = capture_paired(
        bert,
        tuned,
        text,
        "blocks",
        batch_size=2,
        progress=False,
        sink=AccumulatorSink(buffer_rows=1),
    ).acc
    big = capture_paired(bert, tuned, text, "blocks", batch_size=2, progress=False).acc
    assert one.n == big.n == 6
    for name in one.layers:
        torch.testing.assert_close(
            one.base[name].centred().scatter, big.base[name].centred().scatter
        )
        torch.testing.assert_close(one.tuned[name].mean(), big.tuned[name].mean())
    with pytest.raises(ValueError, match="buffer_rows"):
        AccumulatorSink(buffer_rows=0)
