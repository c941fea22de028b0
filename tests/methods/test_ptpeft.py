"""PT-PEFT: stage-wise trainable sets (prefix, then prefix + LoRA/adapter, never the backbone),
two-stage training, round trip through all stages, generation, stage split, errors."""

import pytest
import torch

from repspace.methods import (
    apply_method,
    config_from_dict,
    count_parameters,
    generation_kwargs,
    make_config,
)
from tests.methods import family_checks as fc
from tests.methods.conftest import tiny_inputs, tiny_model

P = 3
SECOND = {"pt_lora": ("lora", dict(r=4, alpha=8)), "pt_adapter": ("adapter", dict(width=4))}


def config(method, **options):
    return make_config(method, num_virtual_tokens=P, **SECOND[method][1], **options)


def trainable_names(model):
    return [n for n, p in model.named_parameters() if p.requires_grad]


def own_part(name):
    return ".adapter_prefix." in name or ".lora_" in name or ".adapter." in name


@pytest.mark.parametrize("method", ["pt_lora", "pt_adapter"])
@pytest.mark.parametrize("arch", ["blip", "gpt2", "llava"])
def test_trainable_sets_per_stage(method, arch):
    torch.manual_seed(0)
    cfg = config(method)
    prefix_only = count_parameters(
        apply_method(tiny_model(arch), make_config("prefix", num_virtual_tokens=P))
    )
    name, opts = SECOND[method]
    second_only = count_parameters(apply_method(tiny_model(arch), make_config(name, **opts)))
    model = apply_method(tiny_model(arch), cfg, stage=1)
    assert count_parameters(model).trainable == prefix_only.trainable
    assert all(".adapter_prefix." in n for n in trainable_names(model))
    model = apply_method(model, cfg, stage=2)
    assert count_parameters(model).trainable == prefix_only.trainable + second_only.trainable
    names = trainable_names(model)
    assert all(own_part(n) for n in names) and any(".adapter_prefix." in n for n in names)
    both = apply_method(tiny_model(arch), cfg)  # stage=None builds both stages
    assert trainable_names(both) == names


@pytest.mark.parametrize("method", ["pt_lora", "pt_adapter"])
def test_two_stage_training(method):
    """Stage 1 trains the prefix; stage 2 trains prefix + LoRA/adapter; the backbone never moves."""
    torch.manual_seed(0)
    arch, cfg = "blip", config(method)
    x = tiny_inputs(arch)
    model = apply_method(tiny_model(arch), cfg, stage=1)
    frozen = fc.backbone(model)
    losses = []
    for stage, steps in zip((1, 2), cfg.stage_steps(10)):
        if stage == 2:
            model = apply_method(model, cfg, stage=2)
            prefix_before = {
                n: p.detach().clone() for n, p in model.named_parameters() if "adapter_prefix" in n
            }
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        for _ in range(steps):
            loss = model(**x).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert losses[-1] < losses[4] < losses[0], losses
    prefix_after = {n: p for n, p in model.named_parameters() if "adapter_prefix" in n}
    assert all(
        not torch.equal(prefix_before[n], prefix_after[n]) for n in prefix_before
    )  # still training
    after = fc.backbone(model)
    assert all(torch.equal(after[n], frozen[n]) for n in frozen)


@pytest.mark.parametrize(
    "method,arch", [("pt_lora", "blip"), ("pt_adapter", "gpt2"), ("pt_lora", "llava")]
)
def test_roundtrip_all_stages(method, arch):
    torch.manual_seed(0)
    fc.check_roundtrip(method, arch, num_virtual_tokens=P, **SECOND[method][1])


@pytest.mark.parametrize("arch", ["blip", "gpt2"])
def test_generate(arch):
    model = apply_method(tiny_model(arch), config("pt_lora"))
    fc.perturb_trainable(model, scale=1.0)
    x = tiny_inputs(arch)
    kwargs = dict(max_new_tokens=4, min_new_tokens=4, do_sample=False, **generation_kwargs(model))
    if arch == "blip":
        kwargs["pixel_values"] = x["pixel_values"]
    else:
        kwargs["input_ids"] = x["input_ids"][:1]
    with torch.no_grad():
        assert torch.equal(
            model.generate(**kwargs, use_cache=True), model.generate(**kwargs, use_cache=False)
        )


def test_stage_steps():
    cfg = config("pt_lora", stage1_fraction=0.3)
    assert cfg.stage_steps(10) == [3, 7]
    assert cfg.stage_steps(2) == [1, 1]
    assert config("pt_adapter", stage1_fraction=0.01).stage_steps(10) == [1, 9]
    assert config("pt_adapter", stage1_fraction=0.99).stage_steps(10) == [9, 1]
    assert type(cfg).num_stages == 2
    assert config_from_dict(cfg.to_dict()) == cfg


def test_errors_are_one_line():
    for bad in (0, 1, 1.5, True, "half"):
        with pytest.raises(
            ValueError, match=r"^stage1_fraction must be a number in \(0, 1\); got "
        ):
            config("pt_lora", stage1_fraction=bad)
    with pytest.raises(ValueError, match="^total_steps must be an integer ≥ 2"):
        config("pt_adapter").stage_steps(1)
    with pytest.raises(ValueError, match="^r must be an integer from 1 to 65536; got 0$"):
        make_config("pt_lora", r=0)
    with pytest.raises(ValueError, match="stage 2 needs the stage-1 prefix") as e:
        apply_method(tiny_model("gpt2"), config("pt_lora"), stage=2)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="has 2 stage"):
        apply_method(tiny_model("gpt2"), config("pt_lora"), stage=3)
