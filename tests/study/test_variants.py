"""Two option sets of one method in one study grid (``METHOD@VARIANT``): Tian et al.'s serial vs
parallel adapter and PEFT vs PEFT + head, each its own row, trained with its own options."""

import pytest

from repspace.study import StudyConfig, run_study


def _config(**kw):
    data = {
        "name": "v",
        "methods": ["base", "adapter", "adapter@parallel", "lora", "lora@head"],
        "options": {
            "adapter": {"width": 4},
            "adapter@parallel": {
                "width": 4,
                "placement": "parallel",
                "parallel_sites": ["attention", "ffn"],
            },
            "lora@head": {"train_head": True},
        },
        "steps": {"default": 3, "lora": 5},
        "lr": {"adapter": 1e-3, "adapter@parallel": 2e-3},
        "budgets": {"lora@head": [2, 8]},
        "seeds": [0],
        "n_train": 8,
        "n_eval": 4,
    }
    data.update(kw)
    return StudyConfig.from_dict(data)


def test_variants_train_the_registry_method_with_their_own_options(tmp_path, trainer, comparer):
    res = run_study(
        _config(),
        tmp_path,
        progress=False,
        train_fn=trainer,
        compare_fn=comparer,
        base_score_fn=lambda c, cell: {"vqa_accuracy": 0.1},
        figures=False,
    )
    assert not res.failed
    calls = {(c.method, repr(sorted(c.method_options.items()))) for c in trainer.calls}
    adapter = [c for c in trainer.calls if c.method == "adapter"]
    assert len(adapter) == 2 and {c.method_options.get("placement") for c in adapter} == {
        None,
        "parallel",
    }
    par = next(c for c in adapter if c.method_options.get("placement") == "parallel")
    assert (
        par.lr == 2e-3
        and par.steps == 3
        and par.method_options["parallel_sites"] == ["attention", "ffn"]
    )
    loras = [c for c in trainer.calls if c.method == "lora"]
    assert sorted(
        (c.method_options.get("train_head", False), c.method_options.get("r")) for c in loras
    ) == [(False, None), (True, 2), (True, 8)]
    assert all(c.steps == 5 for c in loras)  # lora@head falls back to lora's steps
    rows = {(r["method"], r["budget"]) for r in res.tables.cells}
    assert {
        ("adapter", None),
        ("adapter@parallel", None),
        ("lora", None),
        ("lora@head", 2),
        ("lora@head", 8),
    } <= rows
    assert len(calls) == 5


@pytest.mark.parametrize(
    "methods,options,match",
    [
        (["adapter@"], {}, "a variant is METHOD@NAME"),
        (["adapter@par/allel"], {}, "a variant is METHOD@NAME"),
        (["nope@x"], {}, "unknown method 'nope'"),
        (["adapter@p"], {"adapter@p": {"placement": "beside"}}, "options.adapter@p"),
    ],
)
def test_bad_variants_fail_in_one_line(methods, options, match):
    with pytest.raises(ValueError, match=match) as exc:
        StudyConfig.from_dict({"name": "v", "methods": methods, "options": options})
    assert "\n" not in str(exc.value)


def test_the_base_is_evaluated_with_the_registry_method_of_a_variant_listed_first():
    # the dry run's calibration and the runner build the base's evaluation settings alike;
    # a study whose first trained method is a variant ("adapter@parallel") names the
    # registry method, not the variant (which no TrainConfig accepts)
    from repspace.study.grid import base_eval_config, expand_grid

    config = _config(
        methods=["base", "adapter@parallel", "lora"],
        options={"adapter@parallel": {"width": 4, "placement": "parallel"}},
        lr={"adapter@parallel": 2e-3},
        budgets={},
    )
    cell = next(c for c in expand_grid(config) if c.is_base)
    cfg = base_eval_config(config, cell)
    assert cfg.method == "adapter" and cfg.task == cell.task and cfg.seed == cell.seed
