"""TrainConfig validation and hashing, schedule/data order, and one-line errors."""

import json
import math

import pytest
import torch

from repspace._constraints import SettingError
from repspace.checkpoints import CheckpointError
from repspace.training import DEFAULT_LR, TrainConfig, load_run, train
from repspace.training.trainer import batch_indices, lr_factor

from conftest import small_config


@pytest.mark.parametrize(
    "field,value",
    [
        ("task", "detection"),
        ("steps", 0),
        ("batch_size", -1),
        ("data_fraction", 0.0),
        ("lr", 2.0),
        ("domain", "mars"),
        ("image_size", 8),
        ("schedule", "step"),
        ("method_options", [1]),
        ("seed", -1),
        ("warmup_ratio", 1.5),
        ("eval_every", 0),
    ],
)
def test_invalid_fields_fail_in_one_line_naming_the_field(field, value):
    with pytest.raises(SettingError, match=f"^{field} must be ") as exc:
        TrainConfig(**{field: value})
    assert "\n" not in str(exc.value) and exc.value.field == field


def test_round_trip_and_hash():
    cfg = TrainConfig(method="full", method_options={"freeze_vision": True}, steps=10)
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.config_hash() == cfg.config_hash()
    assert (
        TrainConfig(method="full", steps=10, output_dir="elsewhere", save_every=3).config_hash()
        == TrainConfig(method="full", steps=10).config_hash()
    )
    assert (
        TrainConfig(method="full", steps=11).config_hash()
        != TrainConfig(method="full", steps=10).config_hash()
    )
    assert TrainConfig(method="full").resolved_lr() == DEFAULT_LR["full"]
    assert TrainConfig(method="full").output_dir == "runs/full-vqa-s0"
    with pytest.raises(ValueError, match="no field"):
        TrainConfig.from_dict({"stepz": 3})


def test_schedule_and_data_order():
    assert [lr_factor(s, 10, 2, "cosine") for s in (0, 1)] == [0.5, 1.0]
    assert lr_factor(2, 10, 2, "cosine") == 1.0 and math.isclose(lr_factor(6, 10, 2, "cosine"), 0.5)
    assert (
        math.isclose(lr_factor(6, 10, 2, "linear"), 0.5) and lr_factor(9, 10, 2, "constant") == 1.0
    )
    a = [batch_indices(s, 10, 3, seed=0) for s in range(6)]
    assert all(
        torch.equal(x, y) for x, y in zip(a, [batch_indices(s, 10, 3, seed=0) for s in range(6)])
    )
    assert len(set(torch.cat(a[:3]).tolist())) == 9  # one epoch: disjoint batches
    assert not torch.equal(a[0], batch_indices(0, 10, 3, seed=1))
    assert sorted(batch_indices(4, 5, 8, seed=0).tolist()) == list(range(5))


def test_unknown_method(tiny_base, tmp_path):
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        train(small_config(tiny_base("gpt2"), tmp_path, method="nope"), progress=False)


@pytest.mark.parametrize("arch", ["gpt2", "bert"])
def test_captioning_on_text_only_model(tiny_base, tmp_path, arch):
    with pytest.raises(
        ValueError, match="task captioning needs an image model; .* takes only text"
    ) as exc:
        train(small_config(tiny_base(arch), tmp_path, task="captioning"), progress=False)
    assert "\n" not in str(exc.value)


def test_missing_base_and_bad_data(tmp_path, tiny_base):
    with pytest.raises(ValueError, match="no such file or folder"):
        train(small_config(str(tmp_path / "absent"), tmp_path), progress=False)
    assert not (tmp_path / "run").exists()  # nothing written for a run that cannot start
    bad = tmp_path / "spec.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="spec.json is not valid JSON") as exc:
        train(small_config(tiny_base("blip"), tmp_path, data=str(bad)), progress=False)
    assert "\n" not in str(exc.value)


def test_run_whose_base_disappeared_needs_base(tiny_base, tmp_path):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_base("gpt2"), base)
    result = train(small_config(str(base), tmp_path), progress=False)
    shutil.rmtree(base)
    with pytest.raises(CheckpointError, match="pass --base"):
        load_run(result.run_dir)
    assert load_run(result.run_dir, base=tiny_base("gpt2")).manifest["method"] == "full"


def test_learning_rate_defaults_by_family():
    from repspace.methods import available_methods, get_method
    from repspace.training import default_lr

    # each method declares its own default (MethodFacts); these are the values runs with
    # lr=None have always used
    expected = {
        "full": 1e-4,
        "lora": 1e-3,
        "ia3": 3e-3,
        "adapter": 1e-3,
        "prefix": 5e-3,
        "prompt": 5e-3,
        "adalink": 1e-3,
        "pt_lora": 1e-3,
        "pt_adapter": 1e-3,
    }
    assert set(available_methods()) >= set(expected)
    for m in available_methods():
        assert default_lr(m) == get_method(m).facts.default_lr == DEFAULT_LR[m], m
    assert {m: default_lr(m) for m in expected} == expected


def test_method_not_applicable_to_architecture(tiny_base, tmp_path):
    from repspace.methods import available_methods

    if "lora" not in available_methods():
        pytest.skip("lora is not registered yet")
    with pytest.raises(ValueError, match="vision") as exc:
        train(
            small_config(
                tiny_base("gpt2"), tmp_path, method="lora", method_options={"towers": ["vision"]}
            ),
            progress=False,
        )
    assert "\n" not in str(exc.value)
