"""LayerCapture: states equal output_hidden_states, hooks removed, early stop, dtypes."""

import pytest
import torch
from torch import nn

from repspace.capture import LayerCapture, capture, hidden_tensor

from .conftest import make_text


def _all_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_bert_states_equal_output_hidden_states(bert, text):
    with LayerCapture(bert, ["embeddings", "blocks"]) as cap:
        states = cap.forward(text)
    ref = bert(**text, output_hidden_states=True).hidden_states
    assert list(states) == ["embeddings", "encoder.layer.0", "encoder.layer.1"]
    for i, name in enumerate(states):
        torch.testing.assert_close(states[name], ref[i], rtol=0, atol=0)


def test_gpt2_states_equal_output_hidden_states(gpt2, text):
    with LayerCapture(gpt2, ["embeddings", "blocks"]) as cap:
        states = cap.forward(text)
    ref = gpt2(**text, output_hidden_states=True).hidden_states
    torch.testing.assert_close(states["transformer.h.0:input"], ref[0], rtol=0, atol=0)
    torch.testing.assert_close(states["transformer.h.0"], ref[1], rtol=0, atol=0)
    # HF applies ln_f to the last entry of hidden_states; the block output is before it.
    with torch.inference_mode():
        torch.testing.assert_close(gpt2.transformer.ln_f(states["transformer.h.1"]), ref[2])


def test_vit_states_equal_output_hidden_states(vit, pixels):
    with LayerCapture(vit, ["embeddings", "vision"]) as cap:
        states = cap.forward({"pixel_values": pixels})
    ref = vit(pixel_values=pixels, output_hidden_states=True).hidden_states
    for i, name in enumerate(["embeddings", "layers.0", "layers.1"]):
        torch.testing.assert_close(states[name], ref[i], rtol=0, atol=0)


def test_blip_towers_equal_output_hidden_states(blip_caption, pixels):
    text = make_text(n=pixels.shape[0])
    with LayerCapture(blip_caption, ["embeddings", "blocks"]) as cap:
        states = cap.forward({"pixel_values": pixels, **text})
    vis = blip_caption.vision_model(pixel_values=pixels, output_hidden_states=True)
    for i, name in enumerate(
        [
            "vision_model.embeddings",
            "vision_model.encoder.layers.0",
            "vision_model.encoder.layers.1",
        ]
    ):
        torch.testing.assert_close(states[name], vis.hidden_states[i], rtol=0, atol=0)
    txt = blip_caption.text_decoder(
        **text, encoder_hidden_states=vis.last_hidden_state, output_hidden_states=True
    ).hidden_states
    for i, name in enumerate(
        [
            "text_decoder.bert.embeddings",
            "text_decoder.bert.encoder.layer.0",
            "text_decoder.bert.encoder.layer.1",
        ]
    ):
        torch.testing.assert_close(states[name], txt[i], rtol=0, atol=0)
    # Image-patch tokens and text tokens stay apart: different layers, different lengths.
    assert states["vision_model.encoder.layers.0"].shape[1] == 1 + (16 // 8) ** 2
    assert states["text_decoder.bert.encoder.layer.0"].shape[1] == text["input_ids"].shape[1]


def test_hooks_removed_on_exit_and_on_error(bert, text):
    before = _all_hooks(bert)
    with LayerCapture(bert, "blocks") as cap:
        assert _all_hooks(bert) == before + 2 and cap.active
        cap.forward(text)
    assert _all_hooks(bert) == before and not cap.active
    with pytest.raises(RuntimeError, match="boom"):
        with LayerCapture(bert, ["embeddings", "blocks"]):
            raise RuntimeError("boom")
    assert _all_hooks(bert) == before
    # An error inside the forward pass (bad input shape) also leaves no hooks behind.
    with pytest.raises(Exception):
        with LayerCapture(bert, "blocks") as cap:
            cap.forward({"input_ids": torch.zeros(2, 3, 4, dtype=torch.long)})
    assert _all_hooks(bert) == before
    bert.train()
    with LayerCapture(bert, "blocks"):
        assert not bert.training  # captures run in eval mode ...
    assert bert.training  # ... and the caller's mode comes back
    bert.eval()


def _counting(module):
    calls = []
    module.register_forward_hook(lambda *a: calls.append(1))
    return calls


def test_early_stop_skips_later_modules(bert, text):
    later, pooler = _counting(bert.encoder.layer[1]), _counting(bert.pooler)
    with LayerCapture(bert, "encoder.layer.0", early_stop=True) as cap:
        s = cap.forward(text)
    assert later == [] and pooler == []
    torch.testing.assert_close(
        s["encoder.layer.0"], bert(**text, output_hidden_states=True).hidden_states[1]
    )
    later.clear()
    with LayerCapture(bert, "encoder.layer.0", early_stop=False) as cap:
        cap.forward(text)
    assert later == [1]


def test_half_precision_is_cast_to_fp32(bert, text):
    bert = bert.to(torch.bfloat16)
    with LayerCapture(bert, "blocks") as cap:
        s = cap.forward(text)
    assert all(v.dtype == torch.float32 for v in s.values())


def test_plain_module_and_tuple_outputs():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x):
            return self.lin(x), "aux"

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = Pair()
            self.b = nn.Linear(3, 2)

        def forward(self, x):
            return self.b(self.a(x)[0])

    net, x = Net(), torch.randn(5, 4)
    with LayerCapture(net, ["a", "b"]) as cap:
        s = cap.forward({"x": x})
    torch.testing.assert_close(s["a"], net.a.lin(x))
    assert s["b"].shape == (5, 2)
    out = capture(net, {"x": x}, "a", batch_size=2, progress=False)
    torch.testing.assert_close(out.tensors["base"]["a"], net.a.lin(x))  # 2-D rows pass through
    with pytest.raises(ValueError, match="without a tensor"):
        hidden_tensor(("no", "tensor"), "a")


def test_layer_that_does_not_run_and_reused_module():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.dec = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x, decode=False):
            h = self.enc(x)
            return self.dec(h) if decode else h

    with LayerCapture(Branchy(), ["enc", "dec"]) as cap:
        with pytest.raises(ValueError, match=r"layers \['dec'\] did not run"):
            cap.forward({"x": torch.randn(2, 3)})
        assert cap.forward({"x": torch.randn(2, 3), "decode": True})["dec"].shape == (2, 3)
    shared = nn.Linear(3, 3)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    with LayerCapture(net, "0") as cap:
        with pytest.raises(ValueError, match="more than once"):
            cap.forward({"input": torch.randn(2, 3)})


def test_wrong_input_keys(bert, blip_caption, text, pixels):
    with pytest.raises(
        ValueError, match=r"BertModel\.forward does not take input\(s\) \['pixel_values'\]"
    ):
        capture(bert, {**text, "pixel_values": torch.zeros(6, 3)}, "blocks", progress=False)
    with pytest.raises(ValueError, match=r"requires input\(s\) \['pixel_values'\]"):
        capture(blip_caption, text, "blocks", progress=False)
    with pytest.raises(ValueError, match="disagree on the batch size"):
        capture(
            bert,
            {"input_ids": text["input_ids"], "attention_mask": text["attention_mask"][:2]},
            "blocks",
            progress=False,
        )
    with pytest.raises(ValueError, match="inputs must be"):
        capture(bert, 42, "blocks", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        capture(bert, text, "blocks", batch_size=0, progress=False)
    with pytest.raises(ValueError, match="device"):
        capture(
            bert,
            text,
            "blocks",
            device="cuda:0" if not torch.cuda.is_available() else "nope",
            progress=False,
        )


def test_runner_early_stop_and_without(bert, text):
    later = _counting(bert.encoder.layer[1])
    a = capture(bert, text, "encoder.layer.0", batch_size=3, progress=False)
    assert later == []
    b = capture(bert, text, "encoder.layer.0", batch_size=3, progress=False, early_stop=False)
    assert later == [1, 1]
    assert torch.equal(a.tensors["base"]["encoder.layer.0"], b.tensors["base"]["encoder.layer.0"])


def test_peft_training_flags_restored(bert, text):
    import peft

    tuned = peft.get_peft_model(bert, peft.LoraConfig(target_modules=["query"], r=2))
    flags = {n: m.training for n, m in tuned.named_modules()}
    with LayerCapture(tuned, "blocks") as cap:
        cap.forward(text)
        assert not any(m.training for m in tuned.modules())
    assert {n: m.training for n, m in tuned.named_modules()} == flags
