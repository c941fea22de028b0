"""AdaLink family: exact counts, identity at init, non-intrusiveness, the residual map,
training, round trip, generate, errors."""

import pytest
import torch

from repspace.methods import apply_method, make_config
from tests.methods import family_checks as fc
from tests.methods.conftest import ARCHS, tiny_model

# 2 d rank per embedding module, d = 32, rank = 4
PER_MODULE = 2 * 32 * 4
EXPECTED = {
    "blip": 2 * PER_MODULE,  # text decoder embeddings + vision embeddings
    "blip_vqa": 3 * PER_MODULE,  # text encoder + text decoder + vision
    "llava": 2 * PER_MODULE,  # embed_tokens + multi_modal_projector
    "gpt2": PER_MODULE,  # transformer.drop (text only)
    "bert": PER_MODULE,
}
SITES = {  # the modules that must carry an adalink
    "blip": ["text_decoder.bert.embeddings", "vision_model.embeddings"],
    "llava": ["model.language_model.embed_tokens", "model.multi_modal_projector"],
    "gpt2": ["transformer.drop"],
}


@pytest.mark.parametrize("arch", ARCHS)
def test_counts_identity_and_layer_names(arch):
    model = fc.check_counts_identity_names("adalink", arch, EXPECTED[arch])
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert all(".adalink." in n for n in trainable)
    if arch in SITES:
        assert trainable == sorted(
            f"{s}.adalink.{w}.weight" for s in SITES[arch] for w in ("down", "up")
        )


@pytest.mark.parametrize(
    "arch,options,expected",
    [
        ("blip", dict(modalities=("image",), rank=2), 2 * 32 * 2),
        ("llava", dict(modalities=["text"]), PER_MODULE),
        ("gpt2", dict(rank=8), 2 * 32 * 8),  # image requested by default, absent, ignored
    ],
)
def test_counts_modalities(arch, options, expected):
    fc.check_counts_identity_names("adalink", arch, expected, **options)


@pytest.mark.parametrize("arch", ARCHS)
def test_training_moves_only_adalink(arch):
    fc.check_training("adalink", arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_roundtrip(arch):
    fc.check_roundtrip("adalink", arch)


@pytest.mark.parametrize("arch", ["blip", "gpt2"])
def test_generate(arch):
    fc.check_generate("adalink", arch)


def test_hook_adds_low_rank_residual_to_embedding_output():
    """Block 0 of GPT-2 receives x + U D x, where x is the base's dropout output."""
    base, model = tiny_model("gpt2"), apply_method(tiny_model("gpt2"), make_config("adalink"))
    fc.perturb_trainable(model, scale=0.5)
    seen = {}
    for name, m in (("base", base), ("tuned", model)):
        m.transformer.h[0].register_forward_pre_hook(
            lambda mod, args, n=name: seen.__setitem__(n, args[0])
        )
        with torch.no_grad():
            m(input_ids=torch.arange(3, 9)[None])
    ad = model.transformer.drop.adalink
    want = seen["base"] + seen["base"] @ ad.down.weight.T @ ad.up.weight.T
    torch.testing.assert_close(seen["tuned"], want, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "arch,options,match",
    [
        ("gpt2", dict(modalities=("image",)), "no embeddings for modalities image"),
        ("bert", dict(modalities=("image",)), "available: text"),
        ("gpt2", dict(r=4), "no option"),
        ("gpt2", dict(rank=0), "^rank must be an integer from 1 to 65536; got 0$"),
        (
            "gpt2",
            dict(modalities=("audio",)),
            "^modalities must be a non-empty subset of text, image",
        ),
    ],
)
def test_errors_are_one_line(arch, options, match):
    with pytest.raises(ValueError, match=match) as err:
        apply_method(tiny_model(arch), make_config("adalink", **options))
    assert "\n" not in str(err.value)
