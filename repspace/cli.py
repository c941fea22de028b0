"""Command-line entry point (`repspace`).

Each subcommand lives with its feature (``repspace/<feature>/cli.py``) and exposes
``add_parser(subparsers)`` and ``run(args) -> int``; this module only dispatches and
turns expected failures into one-line errors with a non-zero exit code.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from repspace import __version__

# subcommand -> (module, its parser-adding function, its run function)
COMMANDS = {
    "compare": ("repspace.compare.cli", "add_parser", "run"),
    "layers": ("repspace.capture.cli", "add_layers_parser", "run_layers"),
    "demo": ("repspace.demo", "add_parser", "run"),
    "train": ("repspace.training.cli", "add_train_parser", "run_train"),
    "methods": ("repspace.methods.cli", "add_parser", "run"),
    "pretrain": ("repspace.training.pretrain", "add_pretrain_parser", "run_pretrain"),
    "study": ("repspace.study.cli", "add_study_parser", "run_study_cli"),
}


def _command(name: str, which: int):
    module, *functions = COMMANDS[name]
    return getattr(importlib.import_module(module), functions[which])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repspace",
        description="Measure how far fine-tuning moves a pre-trained model's representation space.",
    )
    parser.add_argument("--version", action="version", version=f"repspace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        _command(name, 0)(sub)
    return parser


def _quiet_libraries() -> None:
    """transformers' own loading bars and deprecation chatter drown repspace's output."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)\b")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _quiet_libraries()
    try:
        return _command(args.command, 1)(args)
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        # Expected failures (bad input, unloadable checkpoint) are one line, no traceback.
        message = " ".join(str(exc).split())
        print(f"repspace {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # compare/study write nothing half-done; train keeps its last saved state to resume from.
        print(f"repspace {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
