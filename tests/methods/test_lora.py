"""LoRA family: exact parameter counts, identity at init, training, round trip, generate,
fused Conv1D qkv numerics, errors."""

import pytest
import torch

from repspace.methods import apply_method, make_config
from repspace.methods.lora import apply_lora
from tests.methods import family_checks as fc
from tests.methods.conftest import ARCHS, tiny_model

# r * (d_in + d_out) per target, r = 8, 2 layers per tower, hidden 32, FFN 37 (GPT-2: 128).
EXPECTED = {
    "blip": 4 * 8 * (32 + 32),  # text decoder query, value
    "blip_vqa": 8 * 8 * (32 + 32),  # text encoder + text decoder
    "llava": 4 * 8 * (32 + 32),  # q_proj, v_proj (2 kv heads x 16)
    "gpt2": 2 * 8 * (32 + 96),  # fused c_attn: 32 -> 3 * 32
    "bert": 4 * 8 * (32 + 32),
}


@pytest.mark.parametrize("arch", ARCHS)
def test_counts_identity_and_layer_names(arch):
    fc.check_counts_identity_names("lora", arch, EXPECTED[arch])


@pytest.mark.parametrize(
    "arch,options,expected",
    [
        # text q,v 2048 + vision fused qkv 2*8*(32+96) + ffn_out 37->32 in both towers 4*8*(37+32)
        (
            "blip",
            dict(towers=("text", "vision"), sites=("query_value", "ffn_out")),
            2048 + 2048 + 4 * 8 * 69,
        ),
        (
            "gpt2",
            dict(sites=("query_value", "ffn_out"), r=4),
            2 * 4 * (32 + 96) + 2 * 4 * (128 + 32),
        ),
        ("llava", dict(sites=["query_value", "key_value"], towers=["text"]), 6 * 8 * 64),  # v once
    ],
)
def test_counts_other_sites(arch, options, expected):
    fc.check_counts_identity_names("lora", arch, expected, **options)


@pytest.mark.parametrize("arch", ARCHS)
def test_training_moves_only_lora(arch):
    fc.check_training("lora", arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_roundtrip(arch):
    fc.check_roundtrip("lora", arch)


@pytest.mark.parametrize("arch", ["blip", "gpt2"])
def test_generate(arch):
    fc.check_generate("lora", arch)


def test_fused_conv1d_update_is_alpha_over_r_BA():
    """GPT-2 c_attn stores W as (d_in, d_out); the LoRA delta must still be (alpha/r) B A x."""
    model = apply_method(tiny_model("gpt2"), make_config("lora", r=4, alpha=12))
    fc.perturb_trainable(model, scale=0.5)
    layer = model.transformer.h[0].attn.c_attn
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    x = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(3))
    want = layer.base_layer(x) + 3.0 * (x @ a.T @ b.T)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), want, rtol=0, atol=1e-6)


def test_keeps_earlier_stage_trainable():
    fc.check_keeps_trainable("lora", "bert", apply_lora)


def test_trainable_names():
    model = apply_method(tiny_model("gpt2"), make_config("lora"))
    names = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert names[:2] == [
        "transformer.h.0.attn.c_attn.lora_A.default.weight",
        "transformer.h.0.attn.c_attn.lora_B.default.weight",
    ]


@pytest.mark.parametrize(
    "options,match",
    [
        (dict(towers=("vision",)), "no query_value site in tower"),
        (dict(rank=4), "no option"),
        (dict(r=0), "^r must be an integer from 1 to 65536; got 0$"),
        (dict(sites=("embeddings",)), "^sites must be a non-empty subset of query_value"),
        (dict(dropout=1.0), r"^dropout must be a number in \[0, 1\); got 1.0$"),
    ],
)
def test_errors_are_one_line(options, match):
    with pytest.raises(ValueError, match=match) as err:
        apply_method(tiny_model("gpt2"), make_config("lora", **options))
    assert "\n" not in str(err.value)


def test_sites_resolve_through_another_methods_wrapper():
    """PT-PEFT stage 2: attention modules already wrapped (original under ``base_layer``)."""

    class Wrapper(torch.nn.Module):
        def __init__(self, base_layer):
            super().__init__()
            self.base_layer = base_layer

        def forward(self, *args, **kwargs):
            return self.base_layer(*args, **kwargs)

    model = tiny_model("gpt2")
    for block in model.transformer.h:
        block.attn = Wrapper(block.attn)
    model = apply_method(model, make_config("lora"))
    names = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert (
        len(names) == 4
        and names[0] == "transformer.h.0.attn.base_layer.c_attn.lora_A.default.weight"
    )
