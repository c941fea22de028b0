"""docs/cli.md is generated from the argparse parser and must match it exactly."""

import argparse
from pathlib import Path

import pytest

from repspace.cli import COMMANDS, build_parser
from repspace.cli_docs import render_cli_reference

DOC = Path(__file__).parents[1] / "docs" / "cli.md"
REGENERATE = "docs/cli.md is out of date with the CLI; regenerate it: python -m repspace.cli_docs > docs/cli.md"


def test_docs_cli_md_matches_the_parser():
    assert DOC.is_file(), REGENERATE
    assert DOC.read_text(encoding="utf-8") == render_cli_reference(), REGENERATE


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [
        o
        for a in parser._actions
        if a.help is not argparse.SUPPRESS
        and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
        for o in a.option_strings
    ]


def test_every_command_and_option_is_documented():
    text = render_cli_reference()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(COMMANDS)
    for name, parser in sub.choices.items():
        section = text.split(f"## `repspace {name}`", 1)
        assert len(section) == 2, f"no section for repspace {name}"
        body = section[1].split("\n## ", 1)[0]
        for option in _options(parser):
            assert f"`{option}" in body, f"repspace {name} {option} missing from the reference"


def test_rendering_is_independent_of_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    narrow = render_cli_reference()
    monkeypatch.setenv("COLUMNS", "300")
    assert render_cli_reference() == narrow
    assert all(
        len(line) <= 88 for block in narrow.split("```")[1::2] for line in block.splitlines()
    )


def test_help_interpolation_and_defaults():
    text = render_cli_reference()
    assert "%(default)" not in text
    assert "| `--method METHOD` | text | required |" in text  # required option
    assert "(not with `--overwrite`)" in text  # mutually exclusive group


@pytest.mark.parametrize("command,dest", [("compare", "base_override"), ("layers", "base")])
def test_base_override_is_the_option_name_and_base_its_older_spelling(command, dest):
    """CLI = API = report: compare's option is `--base-override` (settings.base_override);
    `--base` keeps working for existing scripts."""
    parser = build_parser()
    positional = ["B", "T"] if command == "compare" else ["M"]
    new = parser.parse_args([command, *positional, "--base-override", "X"])
    old = parser.parse_args([command, *positional, "--base", "X"])
    assert getattr(new, dest) == getattr(old, dest) == "X"
