"""Houlsby adapter family: exact counts, identity at init, wrapper numerics on Linear and
Conv1D, training, round trip, generate, errors."""

import pytest
import torch

from repspace.methods import apply_method, count_parameters, make_config
from repspace.methods.adapter import AdapterWrapped, apply_adapter
from tests.methods import family_checks as fc
from tests.methods.conftest import ARCHS, tiny_model

PER_SITE = 2 * 32 * 16 + 16 + 32  # 2 d width + width + d, d = 32, width = 16
# attn_out + ffn_out per layer, 2 layers per text stack
EXPECTED = {
    "blip": 4 * PER_SITE,
    "blip_vqa": 8 * PER_SITE,
    "llava": 4 * PER_SITE,
    "gpt2": 4 * PER_SITE,
    "bert": 4 * PER_SITE,
}


@pytest.mark.parametrize("arch", ARCHS)
def test_counts_identity_and_layer_names(arch):
    fc.check_counts_identity_names("adapter", arch, EXPECTED[arch])


def test_counts_width_and_vision_tower():
    per_site = 2 * 32 * 4 + 4 + 32
    fc.check_counts_identity_names(
        "adapter", "blip", 8 * per_site, width=4, towers=("text", "vision")
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_training_moves_only_adapters(arch):
    fc.check_training("adapter", arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_roundtrip(arch):
    fc.check_roundtrip("adapter", arch)


@pytest.mark.parametrize("arch", ["blip", "gpt2"])
def test_generate(arch):
    fc.check_generate("adapter", arch)


@pytest.mark.parametrize(
    "arch,path,d_in",
    [
        ("gpt2", "transformer.h.0.mlp.c_proj", 128),  # transformers Conv1D
        ("bert", "bert.encoder.layer.1.attention.output.dense", 32),  # nn.Linear
    ],
)
def test_wrapper_is_h_plus_up_act_down_h(arch, path, d_in):
    model = apply_method(tiny_model(arch), make_config("adapter", activation="tanh"))
    fc.perturb_trainable(model, scale=0.5)
    wrapped = model.get_submodule(path)
    assert isinstance(wrapped, AdapterWrapped)
    ad = wrapped.adapter
    x = torch.randn(2, 5, d_in, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        h = wrapped.base_layer(x)
        want = h + torch.tanh(h @ ad.down.weight.T + ad.down.bias) @ ad.up.weight.T + ad.up.bias
        torch.testing.assert_close(wrapped(x), want, rtol=0, atol=1e-6)


def test_init_is_exact_identity_but_trainable():
    model = apply_method(tiny_model("bert"), make_config("adapter", init_scale=1e-2))
    ad = model.bert.encoder.layer[0].output.dense.adapter
    assert torch.count_nonzero(ad.up.weight) == 0 and torch.count_nonzero(ad.up.bias) == 0
    assert 0 < ad.down.weight.std() < 2e-2 and ad.down.weight.abs().max() <= 2e-2


def test_keeps_earlier_stage_trainable():
    fc.check_keeps_trainable("adapter", "gpt2", apply_adapter)


def test_applying_twice_fails():
    model = apply_method(tiny_model("bert"), make_config("adapter"))
    n = count_parameters(model).trainable
    with pytest.raises(ValueError, match="already has an adapter"):
        apply_adapter(
            model, make_config("adapter"), __import__("repspace").methods.architecture_of(model)
        )
    assert count_parameters(model).trainable == n


@pytest.mark.parametrize(
    "options,match",
    [
        (dict(towers=("vision",)), "no attn_out site in tower"),
        (dict(bottleneck=4), "no option"),
        (dict(width=0), "^width must be an integer from 1 to 65536; got 0$"),
        (dict(activation="swish"), "^activation must be one of gelu, relu, silu, tanh"),
        (dict(init_scale=0.0), r"^init_scale must be a number in \(0, 10\]; got 0.0$"),
    ],
)
def test_errors_are_one_line(options, match):
    with pytest.raises(ValueError, match=match) as err:
        apply_method(tiny_model("gpt2"), make_config("adapter", **options))
    assert "\n" not in str(err.value)
