"""Prefix-tuning: exact counts, attention against a hand-computed reference, a hidden prefix
reproduces the base, causality, training, round trip, generation (cached = uncached), errors."""

import copy
import math

import pytest
import torch
from torch import nn

from repspace.layer_table import layer_names
from repspace.capture.tokens import num_virtual_tokens
from repspace.methods import apply_method, count_parameters, generation_kwargs, make_config
from repspace.methods.prefix.attention import attention_route
from repspace.methods.prefix.modules import PrefixKV, prefix_mask
from tests.methods import family_checks as fc
from tests.methods.conftest import ARCHS, tiny_inputs, tiny_model

P = 3
TEXT_LAYERS = {"blip": 2, "blip_vqa": 4, "llava": 2, "gpt2": 2, "bert": 2}  # hidden 32 everywhere


def prefixed(arch, **options):
    torch.manual_seed(0)
    return apply_method(tiny_model(arch), make_config("prefix", num_virtual_tokens=P, **options))


def set_masked(model, masked=True):
    for m in model.modules():
        if isinstance(m, PrefixKV):
            m.masked = masked


def main_output(out):
    return out.logits if getattr(out, "logits", None) is not None else out.loss


@pytest.mark.parametrize("arch", ARCHS)
def test_counts_names_and_frozen_backbone(arch):
    base = tiny_model(arch)
    model = prefixed(arch)
    expected = TEXT_LAYERS[arch] * 2 * P * 32
    assert count_parameters(model).trainable == expected
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(".adapter_prefix." in n for n in trainable)
    assert layer_names(model) == layer_names(base)  # adapter_prefix is hidden from capture
    assert num_virtual_tokens(model) == 0  # prefixes add keys, not sequence positions


def test_reparameterized_counts_and_names():
    model = prefixed("gpt2", reparameterize=True, prefix_hidden=16)
    d, h, layers = 32, 16, 2
    assert (
        count_parameters(model).trainable == P * d + d * h + h + h * layers * 2 * d + layers * 2 * d
    )
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(n.startswith("adapter_prefix_encoder_text.") for n in names), names


def test_reparameterized_slices_equal_full_mlp():
    enc = prefixed("gpt2", reparameterize=True).adapter_prefix_encoder_text
    full = enc.up(torch.tanh(enc.down(enc.embedding))).view(P, 2, 2, 32)  # (P, layer, k/v, d)
    for layer in range(2):
        k, v = enc.layer(layer)
        torch.testing.assert_close(k, full[:, layer, 0], rtol=0, atol=1e-6)
        torch.testing.assert_close(v, full[:, layer, 1], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "arch,towers",
    [(a, ("text",)) for a in ARCHS] + [("blip", ("text", "vision")), ("llava", ("text", "vision"))],
)
def test_hidden_prefix_reproduces_base(arch, towers):
    """With every prefix position blocked in the mask, the prefixed model computes the base
    (this exercises the concatenation, the mask padding and the explicit causal mask)."""
    base = tiny_model(arch)
    model = prefixed(arch, towers=towers)
    fc.perturb_trainable(model, scale=1.0)
    inputs = tiny_inputs(arch)
    with torch.no_grad():
        want = main_output(base(**inputs))
        assert not torch.allclose(main_output(model(**inputs)), want, atol=1e-4)
        set_masked(model)
        torch.testing.assert_close(main_output(model(**inputs)), want, rtol=0, atol=1e-6)


def _reference_attention(q, k, v, pk, pv, mask2d, causal):
    """softmax(q [pk; k]^T / sqrt(d) + mask) [pv; v] per head, float64, by hand.
    q, k, v: (b, t, heads, d); pk, pv: (P, heads, d); mask2d: (b, t) of 0/1."""
    b, t, heads, d = q.shape
    keys = torch.cat([pk.expand(b, -1, -1, -1), k], 1)
    vals = torch.cat([pv.expand(b, -1, -1, -1), v], 1)
    scores = torch.einsum("bihd,bjhd->bhij", q, keys) / math.sqrt(d)
    allowed = mask2d.bool()[:, None, :].expand(b, t, t)
    if causal:
        allowed = allowed & torch.ones(t, t, dtype=torch.bool).tril()
    allowed = torch.cat([torch.ones(b, t, P, dtype=torch.bool), allowed], -1)[:, None]
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("bhij,bjhd->bihd", scores.softmax(-1), vals).reshape(b, t, heads * d)


def _layer_io(model, module, inputs):
    seen = {}

    def hook(mod, args, kwargs, out):
        seen["h"] = args[0] if args else kwargs["hidden_states"]
        seen["out"] = out[0]

    handle = module.register_forward_hook(hook, with_kwargs=True)
    with torch.no_grad():
        model(**inputs)
    handle.remove()
    return seen["h"], seen["out"]


def _prefix_of(module):
    pk, pv = module.adapter_prefix.key, module.adapter_prefix.value
    heads = module.adapter_prefix.kv_heads
    return pk.view(P, heads, -1), pv.view(P, heads, -1)


def test_blip_text_attention_matches_hand_computation():
    model = prefixed("blip").double()
    fc.perturb_trainable(model, scale=1.0)
    inputs = {k: v.double() if v.is_floating_point() else v for k, v in tiny_inputs("blip").items()}
    att = model.text_decoder.bert.encoder.layer[0].attention.self
    h, out = _layer_io(model, att, inputs)
    split = lambda lin: lin(h).view(*h.shape[:2], 2, 16)  # noqa: E731
    pk, pv = _prefix_of(att)
    ref = _reference_attention(
        split(att.query),
        split(att.key),
        split(att.value),
        pk,
        pv,
        inputs["attention_mask"],
        causal=True,
    )
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_gpt2_attention_matches_hand_computation(impl):
    base = tiny_model("gpt2")
    base.set_attn_implementation(impl)
    torch.manual_seed(0)
    model = apply_method(base, make_config("prefix", num_virtual_tokens=P)).double()
    fc.perturb_trainable(model, scale=1.0)
    inputs = tiny_inputs("gpt2")
    att = model.transformer.h[1].attn
    h, out = _layer_io(model, att, inputs)
    q, k, v = (x.view(*h.shape[:2], 2, 16) for x in att.c_attn(h).split(32, dim=2))
    pk, pv = _prefix_of(att)
    ref = att.c_proj(_reference_attention(q, k, v, pk, pv, inputs["attention_mask"], causal=True))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("arch", ["gpt2", "blip", "llava"])
def test_causality_preserved(arch):
    """Changing the last token leaves every earlier position's logits unchanged."""
    model = prefixed(arch)
    fc.perturb_trainable(model, scale=1.0)
    inputs = tiny_inputs(arch)
    inputs["attention_mask"] = torch.ones_like(inputs["attention_mask"])
    other = dict(inputs, input_ids=inputs["input_ids"].clone())
    other["input_ids"][:, -1] = (other["input_ids"][:, -1] + 1) % 60 + 3
    with torch.no_grad():
        a, b = model(**inputs).logits, model(**other).logits
    torch.testing.assert_close(a[:, :-1], b[:, :-1], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_prefix_mask_shapes_and_values():
    m = prefix_mask(None, 2, 4, 3, causal=True)  # 2 new queries at real positions 2, 3
    assert m.shape == (1, 1, 2, 7) and m.dtype == torch.bool
    assert m[0, 0].tolist() == [[True] * 3 + [True, True, True, False], [True] * 7]
    assert prefix_mask(None, 4, 4, 3) is None
    add = prefix_mask(torch.zeros(1, 1, 4, 4), 4, 4, 2, visible=False)
    assert (add[..., :2] == torch.finfo(torch.float32).min).all() and (add[..., 2:] == 0).all()


@pytest.mark.parametrize("arch", ["blip", "gpt2", "llava", "bert"])
def test_training_moves_only_prefix(arch):
    fc.check_training("prefix", arch, num_virtual_tokens=P)


@pytest.mark.parametrize(
    "arch,options",
    [
        ("blip", {}),
        ("gpt2", {"reparameterize": True}),
        ("blip_vqa", {"towers": ("text", "vision")}),
    ],
)
def test_roundtrip(arch, options):
    fc.check_roundtrip("prefix", arch, num_virtual_tokens=P, **options)


@pytest.mark.parametrize("arch", ["blip", "gpt2"])
def test_generate_cached_equals_uncached(arch):
    model = prefixed(arch)
    fc.perturb_trainable(model, scale=1.0)
    assert generation_kwargs(model) == {}  # the KV cache keeps working
    inputs = tiny_inputs(arch)
    kwargs = dict(max_new_tokens=6, do_sample=False, min_new_tokens=6)
    if arch == "blip":
        kwargs["pixel_values"] = inputs["pixel_values"]
    else:
        kwargs.update(
            input_ids=inputs["input_ids"][:2], attention_mask=inputs["attention_mask"][:2]
        )
    with torch.no_grad():
        cached, plain = (
            model.generate(**kwargs, use_cache=True),
            model.generate(**kwargs, use_cache=False),
        )
    assert cached.shape[1] >= 6 and torch.equal(cached, plain)


def test_deepcopy_keeps_prefix():
    model = prefixed("llava")
    fc.perturb_trainable(model, scale=1.0)
    twin = copy.deepcopy(model)
    fc.assert_same_outputs(fc.outputs(twin, "llava"), fc.outputs(model, "llava"))
    set_masked(twin)  # the copy owns its own prefixes
    assert not torch.equal(
        fc.outputs(twin, "llava")["logits"], fc.outputs(model, "llava")["logits"]
    )


def test_errors_are_one_line():
    with pytest.raises(ValueError, match="prefix-tuning is not implemented for Linear"):
        attention_route(nn.Linear(2, 2))
    with pytest.raises(
        ValueError, match="^num_virtual_tokens must be an integer from 1 to 65536; got 0$"
    ):
        make_config("prefix", num_virtual_tokens=0)
    with pytest.raises(ValueError, match="^towers must be a non-empty subset of text, vision"):
        make_config("prefix", towers=("audio",))
    with pytest.raises(ValueError, match="no self_attention site in tower"):
        apply_method(tiny_model("gpt2"), make_config("prefix", towers=("vision",)))
    model = prefixed("gpt2")
    with pytest.raises(ValueError, match="already has prefixes") as e:
        apply_method(model, make_config("prefix"))
    assert "\n" not in str(e.value)
    model.transformer.h[0].attn.config._attn_implementation = "flash_attention_2"  # writes through
    with pytest.raises(ValueError, match="eager or sdpa"):
        model(**tiny_inputs("gpt2"))
