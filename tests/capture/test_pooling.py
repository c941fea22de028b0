"""Pooling: masks respected, padding invariance, token subsampling, vision layers."""

import pytest
import torch

from repspace.capture import LayerCapture, Pooling, capture

from .conftest import make_text


def _alone(model, layer, text, i):
    """States of sample i run alone, without any padding."""
    keep = text["attention_mask"][i].bool()
    one = {
        "input_ids": text["input_ids"][i][keep][None],
        "attention_mask": torch.ones(1, int(keep.sum()), dtype=torch.long),
    }
    with LayerCapture(model, layer) as cap:
        return cap.forward(one)[layer][0]


def test_mean_is_padding_invariant(bert, text):
    out = capture(bert, text, "encoder.layer.1", pooling="mean", batch_size=4, progress=False)
    rows = out.tensors["base"]["encoder.layer.1"]
    assert rows.shape == (6, 32)
    for i in range(6):
        torch.testing.assert_close(
            rows[i], _alone(bert, "encoder.layer.1", text, i).mean(0), rtol=1e-4, atol=1e-5
        )


def test_last_and_first_with_left_padding(gpt2):
    text = make_text(pad="left", seed=3)
    assert not bool(text["attention_mask"][:, 0].all())  # some rows really are left-padded
    last = capture(gpt2, text, "transformer.h.1", pooling="last", progress=False).tensors["base"]
    first = capture(gpt2, text, "transformer.h.1", pooling="first", progress=False).tensors["base"]
    cls = capture(gpt2, text, "transformer.h.1", pooling="cls", progress=False).tensors["base"]
    with LayerCapture(gpt2, "transformer.h.1") as cap:
        full = cap.forward(text)["transformer.h.1"]
    for i in range(6):
        valid = text["attention_mask"][i].bool()
        torch.testing.assert_close(last["transformer.h.1"][i], full[i, -1])
        torch.testing.assert_close(first["transformer.h.1"][i], full[i][valid][0])
        torch.testing.assert_close(cls["transformer.h.1"][i], full[i, 0])
    right = make_text(pad="right", seed=3)
    last_r = capture(gpt2, right, "transformer.h.1", pooling="last", progress=False).tensors["base"]
    with LayerCapture(gpt2, "transformer.h.1") as cap:
        full_r = cap.forward(right)["transformer.h.1"]
    ends = right["attention_mask"].sum(1) - 1
    torch.testing.assert_close(last_r["transformer.h.1"], full_r[torch.arange(6), ends])


def test_tokens_mode_and_subsampling(bert, text):
    out = capture(bert, text, "blocks", pooling="tokens", batch_size=4, progress=False)
    n_valid = int(text["attention_mask"].sum())
    assert out.tensors["base"]["encoder.layer.0"].shape == (n_valid, 32)
    idx = out.sample_index["base"]["encoder.layer.0"]
    assert torch.equal(idx, torch.repeat_interleave(torch.arange(6), text["attention_mask"].sum(1)))
    # Padding tokens never appear: rows equal the unpadded states, in order.
    torch.testing.assert_close(
        out.tensors["base"]["encoder.layer.0"][idx == 1],
        _alone(bert, "encoder.layer.0", text, 1),
        rtol=1e-4,
        atol=1e-5,
    )
    sub = Pooling("tokens", max_tokens=3, seed=7)
    a = capture(bert, text, "blocks", pooling=sub, batch_size=4, progress=False)
    b = capture(bert, text, "blocks", pooling=sub, batch_size=4, progress=False)
    ia = a.sample_index["base"]["encoder.layer.0"]
    assert torch.equal(ia, b.sample_index["base"]["encoder.layer.0"])
    torch.testing.assert_close(
        a.tensors["base"]["encoder.layer.1"], b.tensors["base"]["encoder.layer.1"]
    )
    assert torch.equal(torch.bincount(ia, minlength=6), text["attention_mask"].sum(1).clamp(max=3))
    # Every subsampled row is one of that sample's real token rows.
    full = out.tensors["base"]["encoder.layer.0"]
    for r, s in zip(a.tensors["base"]["encoder.layer.0"], ia):
        assert (full[idx == s] - r).abs().amax(1).min() < 1e-5
    other = capture(
        bert,
        text,
        "blocks",
        pooling=Pooling("tokens", max_tokens=3, seed=8),
        batch_size=4,
        progress=False,
    )
    assert not torch.equal(
        other.tensors["base"]["encoder.layer.0"], a.tensors["base"]["encoder.layer.0"]
    )


def test_vision_layers_have_no_mask(vit, pixels):
    with LayerCapture(vit, "layers.1") as cap:
        full = cap.forward({"pixel_values": pixels})["layers.1"]
    for mode, expect in [
        ("mean", full.mean(1)),
        ("cls", full[:, 0]),
        ("first", full[:, 0]),
        ("last", full[:, -1]),
    ]:
        got = capture(vit, {"pixel_values": pixels}, "layers.1", pooling=mode, progress=False)
        torch.testing.assert_close(got.tensors["base"]["layers.1"], expect)
    tok = capture(vit, {"pixel_values": pixels}, "layers.1", pooling="tokens", progress=False)
    assert tok.tensors["base"]["layers.1"].shape == (4 * 5, 32)


def test_blip_pools_each_tower_with_its_own_mask(blip_caption, pixels):
    text = make_text(n=4, seed=5)
    out = capture(
        blip_caption,
        {"pixel_values": pixels, **text},
        ["vision", "text"],
        pooling="tokens",
        batch_size=2,
        progress=False,
    )
    assert out.tensors["base"]["vision_model.encoder.layers.0"].shape[0] == 4 * 5
    assert out.tensors["base"]["text_decoder.bert.encoder.layer.0"].shape[0] == int(
        text["attention_mask"].sum()
    )


def test_blip_vqa_decoder_uses_decoder_mask(blip_vqa, pixels):
    q, a = make_text(n=4, seed=1), make_text(n=4, t=5, seed=2)
    batch = {
        "pixel_values": pixels,
        **q,
        "decoder_input_ids": a["input_ids"],
        "decoder_attention_mask": a["attention_mask"],
    }
    out = capture(blip_vqa, batch, "text", pooling="tokens", progress=False).tensors["base"]
    assert out["text_encoder.encoder.layer.0"].shape[0] == int(q["attention_mask"].sum())
    assert out["text_decoder.bert.encoder.layer.1"].shape[0] == int(a["attention_mask"].sum())


def test_pooling_errors(bert, text):
    with pytest.raises(ValueError, match="pooling must be one of"):
        Pooling("max")
    with pytest.raises(ValueError, match="max_tokens only applies"):
        Pooling("mean", max_tokens=3)
    empty = {**text, "attention_mask": text["attention_mask"].clone()}
    empty["attention_mask"][2] = 0
    with pytest.raises(ValueError, match="sample 2 has no valid tokens"):
        capture(bert, empty, "blocks", progress=False)
    five_d = torch.nn.Sequential(torch.nn.Unflatten(1, (1, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"layer '0' produced states of shape \(3, 1, 1, 2, 2\)"):
        capture(five_d, {"input": torch.randn(3, 4)}, "0", progress=False)
