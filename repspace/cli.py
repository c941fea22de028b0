"""Command-line entry point (`repspace`).

Each subcommand lives with its feature (``repspace/<feature>/cli.py``) and exposes
``add_parser(subparsers)`` and ``run(args) -> int``; this module only dispatches and
turns every failure into one line on stderr (:mod:`repspace.cli_errors`: exit 2 for bad
input, 1 for anything unexpected, ``--debug`` for the traceback).  stdin is never read: a
library prompt (transformers' "run the custom code? [y/N]") sees end-of-file, so
``yes | repspace ...`` cannot answer it.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import signal
import sys

from repspace import __version__

# subcommand -> (module, its parser-adding function, its run function)
COMMANDS = {
    "compare": ("repspace.compare.cli", "add_parser", "run"),
    "layers": ("repspace.capture.cli", "add_layers_parser", "run_layers"),
    "demo": ("repspace.demo", "add_parser", "run"),
    "train": ("repspace.training.cli", "add_train_parser", "run_train"),
    "methods": ("repspace.methods.cli", "add_parser", "run"),
    "metrics": ("repspace.metrics.cli", "add_parser", "run"),
    "pretrain": ("repspace.training.pretrain.cli", "add_pretrain_parser", "run_pretrain"),
    "study": ("repspace.study.cli", "add_study_parser", "run_study_cli"),
    "weights": ("repspace.compare.weights_cli", "add_parser", "run"),
}
# Commands whose module sits below repspace.training yet loads any model compare accepts, a
# training run folder included: a run's loader registers with repspace.checkpoints when
# repspace.training is imported, so the entry point imports it for them (docs/development.md,
# "Layers": a lower floor is told about a higher one, it never imports it).
LOADS_RUNS = ("layers",)


def _command(name: str, which: int):
    module, *functions = COMMANDS[name]
    return getattr(importlib.import_module(module), functions[which])


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (like every other repspace error)."""

    def error(self, message):
        from repspace.cli_errors import EXIT_INPUT, one_line

        self.exit(EXIT_INPUT, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


class _NoStdin(io.TextIOBase):
    """A stdin that is always at end-of-file: ``input()`` raises EOFError, nothing is read."""

    def readable(self) -> bool:
        return True

    def read(self, size=-1) -> str:
        return ""

    def readline(self, size=-1) -> str:
        return ""

    def isatty(self) -> bool:
        return False


DEBUG_HELP = "on an unexpected error, print the full traceback too"


def _named_command(argv: list[str] | None) -> str | None:
    """The subcommand ``argv`` names (its first word that is not an option), or None: none,
    an unknown one, or ``--help`` / ``--version`` before it (the top-level parser answers,
    with every command)."""
    for word in sys.argv[1:] if argv is None else argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
        if word in ("-h", "--help", "--version"):
            return None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``repspace`` parser; ``only``: with that subcommand's parser alone (each command
    module is imported to add its parser, and several import torch: a ``compare --plan``
    from configs needs none of them)."""
    parser = _Parser(
        prog="repspace",
        description="Measure how far fine-tuning moves a pre-trained model's representation space.",
    )
    parser.add_argument("--version", action="version", version=f"repspace {__version__}")
    parser.add_argument("--debug", dest="debug_all", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if only is None else [only]:
        _command(name, 0)(sub)
        sub.choices[name].add_argument("--debug", action="store_true", help=DEBUG_HELP)
    return parser


def _quiet_libraries() -> None:
    """transformers' own loading bars and deprecation chatter drown repspace's output."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)\b")
    if "transformers" not in sys.modules:
        # Not imported yet (and a command may never import it: `compare --plan` from configs):
        # the same three settings through the variables the libraries read when imported.
        os.environ["TRANSFORMERS_VERBOSITY"] = "error"
        os.environ["HF_HUB_VERBOSITY"] = "error"
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        return
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        from huggingface_hub.utils import logging as hub_logging

        hub_logging.set_verbosity_error()  # retry chatter would add lines to a one-line error
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def _run_keeping_warnings(run, args, debug: bool) -> int:
    """Run a command holding back its warnings: shown once it finished, dropped when it failed
    (the error is then the one line on stderr; ``--debug`` shows them too)."""
    import warnings

    failure = None
    with warnings.catch_warnings(record=True) as caught:
        try:
            code = run(args)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the warnings
            failure = exc
        held = list(caught)
    if failure is None or debug:
        from repspace.cli_errors import plain_warnings

        # re-issued outside the recorder: they reach the terminal (or an outer recorder),
        # one line each (no source line of the library that raised them)
        with plain_warnings(debug):
            for w in held:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    if failure is not None:
        raise failure
    return code


def _check_common_options(args) -> None:
    """Options several commands share, checked once at the door (one message each, naming
    the option): ``--threads`` (a positive count, at most 4 per core: torch's thread pool
    crashes the process far beyond the machine), ``--seed`` (what torch, numpy and UMAP all
    accept) and ``--device`` (a device that is there; not the meta device)."""
    from repspace._threads import check_threads
    from repspace.compare.options import check_seed

    if getattr(args, "threads", None) is not None:
        check_threads(args.threads)
    if getattr(args, "seed", None) is not None:
        check_seed(args.seed)
    placed = (
        getattr(args, "device_map", None) is not None
        or getattr(args, "load_in_4bit", False)
        or getattr(args, "load_in_8bit", False)
    )  # then --device is not used
    if isinstance(getattr(args, "device", None), str) and not placed and args.device != "cpu":
        from repspace.devices import resolve_device  # torch: not for the CPU, always there

        resolve_device(args.device, "--device")  # the meta device, a GPU that is not there


def _hub_kernels_off() -> None:
    """transformers fetches compiled "Hub kernels" for some layers and quantizers on GPU
    machines where the ``kernels`` package is installed (``lazy_load_kernel``, read from
    ``USE_HUB_KERNELS`` when transformers is imported).  repspace runs no code it did not
    ship: the command line turns that off before transformers is imported.  Every model load
    also passes ``use_kernels=False`` (:func:`repspace.checkpoints.kernels.no_hub_kernels`)."""
    os.environ["USE_HUB_KERNELS"] = "NO"
    flags = sys.modules.get("transformers.integrations.hub_kernels")
    if flags is not None and hasattr(flags, "_kernels_enabled"):  # imported already (tests)
        flags._kernels_enabled = False


def in_cli_vocabulary(exc: BaseException, parser, command: str) -> BaseException:
    """A settings class names a bad field as the API spells it (``num_samples``); on the
    command line the user typed an option (``--num-samples``).  The one place that renames:
    the command's own parser maps each ``dest`` to its longest option string, and a field
    set by an option of another name (``progress`` by ``--quiet``) to the option its parser
    declares with ``set_defaults(field_options={field: option})``."""
    from repspace._constraints import SettingError

    if not isinstance(exc, SettingError) or parser is None or not command:
        return exc
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    sub = subparsers[0].choices.get(command) if subparsers else None
    if sub is None:
        return exc
    names = {a.dest: max(a.option_strings, key=len) for a in sub._actions if a.option_strings}
    names.update(
        {
            a.dest: (a.metavar or a.dest).upper()
            for a in sub._actions
            if not a.option_strings and isinstance(a.dest, str)
        }
    )
    names.update(sub.get_default("field_options") or {})
    renamed = exc.in_vocabulary(names)
    renamed.__cause__ = exc.__cause__
    renamed.__traceback__ = exc.__traceback__
    return renamed


def _prog(command: str) -> str:
    return f"repspace {command}" if command else "repspace"


def _on_sigterm(signum, frame):
    from repspace.cli_errors import Terminated

    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    from repspace.cli_errors import (
        EXIT_INTERRUPTED,
        EXIT_TERMINATED,
        EscapingStream,
        Terminated,
        print_error,
    )

    command, debug = "", os.environ.get("REPSPACE_DEBUG", "") not in ("", "0")
    parser = None
    saved_stdin, saved_out, saved_err, saved_term = sys.stdin, sys.stdout, sys.stderr, None
    _hub_kernels_off()
    try:
        sys.stdin = _NoStdin()  # nothing repspace runs may ever read stdin
        # Every line any command, library or warning prints goes through one filter: names
        # from hostile files cannot reach the terminal as escape sequences or bidi overrides.
        sys.stdout, sys.stderr = EscapingStream(saved_out), EscapingStream(saved_err)
        try:  # SIGTERM unwinds like Ctrl-C: staging folders are removed on the way out
            saved_term = signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:  # not the main thread: leave signals alone
            pass
        parser = build_parser(_named_command(argv))
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, a usage error (already printed)
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        command = args.command or ""
        debug = debug or getattr(args, "debug", False) or args.debug_all
        if args.command is None:
            parser.print_help()
            return 0
        _check_common_options(args)
        _quiet_libraries()
        if args.command in LOADS_RUNS:
            import repspace.training.runs  # noqa: F401 - registers the run-folder loaders
        return _run_keeping_warnings(_command(args.command, 1), args, debug)
    except Terminated:
        print(f"{_prog(command)}: terminated; nothing half-written was kept", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        # compare/study write nothing half-done; train keeps its last saved state to resume from.
        print(f"{_prog(command)}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `repspace layers ... | head`: the reader has all it wanted
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place that turns failures into one line
        return print_error(command, in_cli_vocabulary(exc, parser, command), debug)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_stdin, saved_out, saved_err
        if saved_term is not None:
            signal.signal(signal.SIGTERM, saved_term)


if __name__ == "__main__":
    sys.exit(main())
