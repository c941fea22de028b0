"""A settings error names the field as the caller spelled it: the API field in Python, the
command's option on the command line (repspace/cli.py `in_cli_vocabulary`, one place)."""

from __future__ import annotations

import pytest

from repspace._constraints import Interval, SettingError, validate
from repspace.cli import build_parser, in_cli_vocabulary, main


def _bad_samples():
    validate({"num_samples": [Interval(int, 2, None)]}, {"num_samples": 0}, owner="CompareConfig")


def test_the_api_names_the_field():
    with pytest.raises(SettingError, match=r"^num_samples must be an integer ≥ 2; got 0$"):
        _bad_samples()


def test_the_cli_names_the_option(monkeypatch, capsys):
    import repspace.compare.cli as compare_cli

    def run(args):
        _bad_samples()

    monkeypatch.setattr(compare_cli, "run", run)
    rc = main(["compare", "base", "tuned"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err == "repspace compare: error: --num-samples must be an integer ≥ 2; got 0"


def test_positionals_and_unknown_fields():
    parser = build_parser("compare")
    err = SettingError("base", "", "a checkpoint folder or hub id")
    assert (
        str(in_cli_vocabulary(err, parser, "compare"))
        == "BASE must be a checkpoint folder or hub id; got ''"
    )
    other = SettingError("no_such_field", 1, "an integer ≥ 2")
    assert in_cli_vocabulary(other, parser, "compare") is other
    plain = ValueError("x")
    assert in_cli_vocabulary(plain, parser, "compare") is plain
