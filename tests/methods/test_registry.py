"""The method registry: names, configs round trip, one-line errors, `repspace methods`."""

import json

import pytest

from repspace.cli import main
from repspace.methods import (
    apply_method,
    available_methods,
    config_from_dict,
    count_parameters,
    get_method,
    make_config,
)
from tests.methods.conftest import tiny_model

PAPER_METHODS = {
    "full",
    "lora",
    "ia3",
    "adapter",
    "prefix",
    "prompt",
    "adalink",
    "pt_lora",
    "pt_adapter",
}


def test_every_method_of_the_papers_is_registered():
    assert PAPER_METHODS <= set(available_methods())


@pytest.mark.parametrize("name", sorted(PAPER_METHODS))
def test_config_round_trips_through_json(name):
    cfg = make_config(name)
    again = config_from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and type(again) is type(cfg)


def test_budget_field_names_a_real_option():
    for name in available_methods():
        cls = get_method(name).config_class
        if cls.budget_field is not None:
            assert make_config(name).budget == getattr(make_config(name), cls.budget_field)


def test_unknown_method_and_option_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown method 'loar'; choose from") as e:
        make_config("loar")
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="no option.*rank.*its options are"):
        make_config("lora", rank=4)
    with pytest.raises(ValueError, match="no 'method' entry"):
        config_from_dict({"r": 4})


def test_full_fine_tuning_trains_everything_and_freeze_vision_freezes_the_encoder():
    m = apply_method(tiny_model("blip"), make_config("full"))
    c = count_parameters(m)
    assert c.trainable == c.total
    m = apply_method(tiny_model("blip"), make_config("full", freeze_vision=True))
    frozen = [n for n, p in m.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith("vision_model.") for n in frozen)


def test_unknown_architecture_is_a_one_line_error():
    import torch

    with pytest.raises(ValueError, match="no method sites for this architecture"):
        apply_method(torch.nn.Linear(3, 3), make_config("lora"))


def test_methods_command_lists_every_method(capsys):
    assert main(["methods", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert PAPER_METHODS <= {r["method"] for r in rows}
    assert {r["method"]: r["budget"] for r in rows}["lora"] == "r"
    assert main(["methods"]) == 0
    assert "pt_adapter" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["lora", "ia3", "adapter", "prefix", "adalink"])
def test_methods_find_their_sites_on_vit(name):
    """ViT's module names changed in transformers 5 (``layers.N.attention.q_proj``); the
    architecture table must match the installed version, not only the old names."""
    import torch
    import transformers

    torch.manual_seed(0)
    vit = transformers.ViTModel(
        transformers.ViTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            image_size=16,
            patch_size=8,
        )
    ).eval()
    extra = {} if name == "adalink" else {"towers": ("vision",)}
    if name == "adalink":
        extra = {"modalities": ("image",)}
    model = apply_method(vit, make_config(name, **extra))
    c = count_parameters(model)
    assert 0 < c.trainable < c.total
    out = model(pixel_values=torch.randn(2, 3, 16, 16)).last_hidden_state
    assert torch.isfinite(out).all()
