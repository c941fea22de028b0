"""CompareOptions: one object for the options of compare_models (the study config's CompareSettings is
the study's [compare] section, a different thing)."""

import pytest

from repspace.compare.engine import CompareOptions, compare_models


def test_unknown_options_are_a_one_line_error_listing_the_valid_ones():
    with pytest.raises(
        ValueError, match=r"^compare: unknown option\(s\) bach_size; the options are .*batch_size"
    ):
        CompareOptions.from_options(bach_size=8)
    with pytest.raises(ValueError, match="unknown option"):
        compare_models(None, [], lambda: iter(()), bach_size=8)


def test_report_records_what_decides_the_numbers():
    s = CompareOptions(layers=("a", "b"), metrics=["linear_cka", "mmd"], device=None)
    d = s.report_dict()
    assert d["layers"] == ["a", "b"] and d["metrics"] == ["linear_cka", "mmd_linear", "mmd_rbf"]
    assert d["device"] == "cpu" and d["precision"] == "float64"
    assert CompareOptions().report_dict()["metrics"] == "default"
    assert s.wanted == {"linear_cka", "mmd_linear", "mmd_rbf"} and CompareOptions().wanted is None


# -- CompareConfig: every option of compare(), one name each for the API and the CLI -----------
from dataclasses import fields  # noqa: E402

from repspace.cli import build_parser  # noqa: E402
from repspace.compare import CompareConfig, compare  # noqa: E402
from repspace.compare.cli import settings_from_args  # noqa: E402

# API fields whose CLI option is spelled otherwise, and why
_CLI_SPELLING = {
    "strict": "--non-strict",  # a flag turns the default off
    "progress": "--quiet",  # likewise
    "merge_dtypes": "--merge-dtype",  # repeatable / comma list, one dtype each
    "distributed": None,  # the launcher decides: torchrun sets WORLD_SIZE
    "analyses": None,
}  # each registered analysis's own flag adds its name


def _compare_flags() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {s for a in sub.choices["compare"]._actions for s in a.option_strings}


def test_every_compare_setting_is_the_cli_option_of_the_same_name():
    flags = _compare_flags()
    for f in fields(CompareConfig):
        flag = _CLI_SPELLING.get(f.name, "--" + f.name.replace("_", "-"))
        assert flag is None or flag in flags, f"CompareConfig.{f.name} has no CLI option {flag}"


def test_the_cli_builds_exactly_the_settings_its_options_name():
    parser = build_parser()
    args = parser.parse_args(
        [
            "compare",
            "B",
            "T",
            "--num-samples",
            "64",
            "--layers",
            "a,b",
            "--base-override",
            "O",
            "--merge-dtype",
            "bfloat16",
            "--non-strict",
            "--quiet",
            "--sample-rows",
            "7",
            "--max-length",
            "32",
        ]
    )
    s = settings_from_args(args)
    assert isinstance(s, CompareConfig)
    assert (
        s.num_samples,
        s.layers,
        s.base_override,
        s.merge_dtypes,
        s.strict,
        s.progress,
        s.sample_rows,
        s.max_length,
    ) == (64, ["a", "b"], "O", ["bfloat16"], False, False, 7, 32)
    # the engine's share is the same values, nothing added or dropped
    e = s.engine_options()
    assert {f.name: getattr(e, f.name) for f in fields(e)} == {
        f.name: getattr(s, f.name) for f in fields(e)
    }


def test_compare_settings_and_keyword_options():
    with pytest.raises(ValueError, match=r"^compare: unknown option\(s\) num_sample;"):
        compare("embedded", ["embedded"], num_sample=8)
    with pytest.raises(ValueError, match=r"unknown option\(s\) bach_size"):
        compare("embedded", ["embedded"], CompareConfig(num_samples=8), bach_size=8)
    # keyword options override the object; the object is not changed (frozen)
    base = CompareConfig(num_samples=8, batch_size=4)
    with pytest.raises(ValueError, match="^batch_size must be an integer"):
        compare("embedded", ["embedded"], base, batch_size=0)
    assert base.batch_size == 4


def test_compare_takes_the_engine_settings_too_and_refuses_anything_else():
    from repspace.compare.engine import CompareOptions

    # an engine-only settings object is completed with compare's defaults (then checked)
    with pytest.raises(ValueError, match="^batch_size must be an integer"):
        compare("embedded", ["embedded"], CompareOptions(batch_size=0))
    with pytest.raises(TypeError, match="settings must be a CompareConfig"):
        compare("embedded", ["embedded"], {"num_samples": 8})
