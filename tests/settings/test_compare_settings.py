"""One compare settings class (repspace/compare/settings.py) for the API, the CLI and study
files: every bad value fails when the settings are made -- before anything is read or
loaded -- in one line naming the field as the caller spelled it."""

from __future__ import annotations

import dataclasses
import math

import pytest

from repspace._constraints import SettingError
from repspace.cli import main
from repspace.compare.settings import MAX_SEED, CompareConfig, CompareOptions

# field -> bad values (each must be refused with a SettingError naming the field)
BAD = {
    "layers": ["", [], [""], 3, None],
    "pooling": ["avg", "MEAN", None],
    "metrics": ["linear_cka", [], ["linear_ckaa"], [1]],
    "batch_size": [0, -1, 1.5, True, "8", None],
    "device": [3, True],
    "seed": [-1, MAX_SEED + 1, 2**64, 0.5, True, None],
    "precision": ["fp8", "float32", None],
    "sample_rows": [-1, 1.0, False],
    "spectrum_layers": [[], "a", [2]],
    "embedding": ["tsne", "UMAP", None],
    "embedding_layer": [3],
    "progress": [1, "yes", None],
    "tuned_per_pass": [0, -2, 1.5, True],
    "task_id": [-1, 1.0, True],
    "segments": [1, None],
    "probe": ["", "  ", 3, None],
    "num_samples": [0, -5, 2.0, True, math.nan],
    "max_length": [0, 1.5, None],
    "base_override": [3, True],
    "config": [3],
    "strict": [0, None],
    "device_map": [3, True],
    "dtype": ["int4", "fp8", 3],
    "load_in_4bit": [1, None],
    "load_in_8bit": ["no"],
    "two_models": [1],
    "distributed": [1, "yes"],
    "dist_timeout": [0, -1.0, math.inf, math.nan, "10", True],
    "adapter_effect": [1],
    "weight_space": [None],
    "merge_dtypes": ["fp8", ["float8"], [], ""],
    "match_layers": [1],
    "analyses": ["toy", ["no_such_analysis"], ("adapter_effect",), ("null",), [1]],
}
CASES = [(f, v) for f, values in BAD.items() for v in values]


def test_every_field_has_bad_values_listed():
    assert set(BAD) == {f.name for f in dataclasses.fields(CompareConfig)}


@pytest.mark.parametrize("field,value", CASES, ids=[f"{f}={v!r}" for f, v in CASES])
def test_a_bad_value_is_a_setting_error_naming_the_field(field, value):
    with pytest.raises(SettingError) as info:
        CompareConfig(**{field: value})
    assert info.value.field == field
    text = str(info.value)
    assert (
        text.startswith(f"{field} must be ") and "\n" not in text and "--" not in text.split(";")[0]
    )


@pytest.fixture
def nothing_loads(monkeypatch):
    """Any attempt to read a checkpoint or build a model fails the test."""
    import transformers

    import repspace.compare.api as api

    def boom(*args, **kwargs):
        raise AssertionError("a model was loaded before the settings were checked")

    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(boom))
    monkeypatch.setattr(api, "load_checkpoint", boom)
    monkeypatch.setattr(api, "preflight_checkpoints", boom)
    monkeypatch.setattr(api, "load_probe", boom)


@pytest.mark.parametrize("field,value", CASES[::3], ids=[f"{f}={v!r}" for f, v in CASES[::3]])
def test_compare_refuses_before_loading_anything(nothing_loads, field, value):
    from repspace.compare import compare

    with pytest.raises(SettingError) as info:
        compare("embedded", ["embedded"], **{field: value})
    assert info.value.field == field


def test_study_defaults_are_declared_overrides_and_nothing_else():
    """The study compares with its own defaults; this lists every one of them."""
    from repspace.study.config import DEFAULT_PROBES, CompareSettings

    plain = {f.name: f.default for f in dataclasses.fields(CompareConfig)}
    study = {f.name: f.default for f in dataclasses.fields(CompareSettings)}
    assert set(plain) == set(study)  # the same fields: one class
    overrides = {k: v for k, v in study.items() if plain[k] != v}
    assert overrides == {
        "probe": DEFAULT_PROBES,
        "num_samples": 256,
        "sample_rows": 512,
        "progress": False,
        "distributed": False,
    }
    changed = {
        k
        for k in CompareConfig._constraints
        if CompareSettings._constraints[k] is not CompareConfig._constraints[k]
    }
    assert changed == {"probe", "num_samples", "pooling"}  # several probes; ≥ 4; no token rows


def test_study_compare_table_errors_name_the_file_key(tmp_path):
    from repspace.study.config import load_study_config

    path = tmp_path / "s.toml"
    path.write_text('methods = ["base"]\n[compare]\nembedding = "tsne"\n')
    with pytest.raises(
        ValueError,
        match=r"s\.toml: key 'compare\.embedding': must be one of "
        r"none, umap, pca, got 'tsne'$",
    ):
        load_study_config(path, check_methods=False)
    path.write_text('methods = ["base"]\n[compare]\ndtype = "bfloat16"\nmetrics = ["all"]\n')
    cfg = load_study_config(path, check_methods=False)
    assert cfg.compare.dtype == "bfloat16" and cfg.compare.metrics == ("all",)
    kwargs = cfg.compare.compare_kwargs("general")
    assert kwargs["probe"] == "general" and kwargs["num_samples"] == 256
    assert CompareConfig(**kwargs).to_dict() == {**kwargs, "metrics": ["all"], "layers": "blocks"}


def test_to_dict_and_from_dict_invert_each_other():
    s = CompareConfig(
        layers=("a", "b"),
        metrics=["linear_cka"],
        merge_dtypes="bfloat16,float16",
        dist_timeout=30,
        num_samples=None,
    )
    d = s.to_dict()
    assert d["layers"] == ["a", "b"] and d["merge_dtypes"] == ["bfloat16", "float16"]
    assert CompareConfig.from_dict(d).to_dict() == d
    with pytest.raises(ValueError, match=r"^compare: unknown option\(s\) bach_size"):
        CompareConfig.from_dict({**d, "bach_size": 3})


def test_engine_options_are_the_same_values():
    s = CompareConfig(batch_size=3, seed=7, metrics=["mmd"])
    e = s.engine_options()
    assert type(e) is CompareOptions
    assert all(getattr(e, f.name) == getattr(s, f.name) for f in dataclasses.fields(CompareOptions))


def test_cross_field_rules():
    with pytest.raises(
        SettingError,
        match=r"^sample_rows must be ≥ 4 when the metrics include "
        r"rbf_cka",
    ):
        CompareConfig(sample_rows=0, metrics=["rbf_cka"])
    CompareConfig(sample_rows=0, metrics=["linear_cka"])  # no sample metric: fine
    with pytest.raises(SettingError, match=r"^load_in_8bit must be False when load_in_4bit"):
        CompareConfig(load_in_4bit=True, load_in_8bit=True)
    with pytest.raises(SettingError, match=r"^metrics must be .*\(known: all, default, "):
        CompareConfig(metrics=["linear_ckaa"])


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--num-samples", "0"], "--num-samples must be an integer ≥ 1 or None; got 0"),
        (
            ["--sample-rows", "0", "--metrics", "rbf_cka"],
            "--sample-rows must be ≥ 4 when the metrics",
        ),
        (["--merge-dtype", "fp8"], "--merge-dtype must be dtypes from float32, float16, bfloat16"),
        (["--dist-timeout", "0"], "--dist-timeout must be a number > 0 or None; got 0.0"),
        (["--tuned-per-pass", "0"], "--tuned-per-pass must be an integer ≥ 1"),
        (["--seed", "-1"], "--seed must be an integer from 0 to"),
    ],
)
def test_the_cli_names_the_option(nothing_loads, tmp_path, capsys, argv, expected):
    out = tmp_path / "never"
    rc = main(["compare", "embedded", "embedded", "-o", str(out), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert expected in err, err
    assert not out.exists()
