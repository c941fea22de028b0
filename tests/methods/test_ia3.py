"""IA3 family: exact vector counts, identity at init, training, round trip, generate,
Conv1D rescaling numerics, errors."""

import pytest
import torch

from repspace.methods import apply_method, make_config
from repspace.methods.ia3 import apply_ia3
from tests.methods import family_checks as fc
from tests.methods.conftest import ARCHS, tiny_model

# per layer: key d_out + value d_out + ffn_out d_in (feed-forward: rescales its input).
EXPECTED = {
    "blip": 2 * (32 + 32 + 37),
    "blip_vqa": 4 * (32 + 32 + 37),
    "llava": 2 * (32 + 32 + 37),
    "gpt2": 2 * (96 + 128),  # fused c_attn: all 3 * 32 outputs; mlp.c_proj input 4 * 32
    "bert": 2 * (32 + 32 + 37),
}


@pytest.mark.parametrize("arch", ARCHS)
def test_counts_identity_and_layer_names(arch):
    fc.check_counts_identity_names("ia3", arch, EXPECTED[arch])


def test_counts_vision_tower():
    # BLIP vision: fused qkv 96 outputs + fc2 input 37, per layer, plus the text tower
    fc.check_counts_identity_names(
        "ia3", "blip", EXPECTED["blip"] + 2 * (96 + 37), towers=("text", "vision")
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_training_moves_only_ia3(arch):
    fc.check_training("ia3", arch, lr=3e-2)


@pytest.mark.parametrize("arch", ARCHS)
def test_roundtrip(arch):
    fc.check_roundtrip("ia3", arch)


@pytest.mark.parametrize("arch", ["blip", "gpt2"])
def test_generate(arch):
    fc.check_generate("ia3", arch)


def test_conv1d_rescaling():
    """c_attn: l * (x W + b) on its outputs; mlp.c_proj (feed-forward): (l * x) W + b."""
    model = apply_method(tiny_model("gpt2"), make_config("ia3"))
    fc.perturb_trainable(model, scale=0.5)
    block = model.transformer.h[0]
    x = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(3))
    h = torch.randn(2, 5, 128, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        attn, ffn = block.attn.c_attn, block.mlp.c_proj
        torch.testing.assert_close(
            attn(x), attn.ia3_l["default"].flatten() * attn.base_layer(x), rtol=0, atol=1e-6
        )
        torch.testing.assert_close(
            ffn(h), ffn.base_layer(ffn.ia3_l["default"].flatten() * h), rtol=0, atol=1e-6
        )


def test_keeps_earlier_stage_trainable():
    fc.check_keeps_trainable("ia3", "gpt2", apply_ia3)


@pytest.mark.parametrize(
    "arch,options,match",
    [
        ("gpt2", dict(towers=("vision",)), "no key_value site in tower"),
        ("gpt2", dict(r=4), "no option"),
        ("bert", dict(towers=("audio",)), "^towers must be a non-empty subset of text, vision"),
    ],
)
def test_errors_are_one_line(arch, options, match):
    with pytest.raises(ValueError, match=match) as err:
        apply_method(tiny_model(arch), make_config("ia3", **options))
    assert "\n" not in str(err.value)
