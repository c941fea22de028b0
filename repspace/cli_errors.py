"""The one place where a command's exception becomes what the user sees.

Expected failures (bad input: an unloadable or hostile checkpoint, a malformed probe, a bad
argument, an unusable output folder, a full disk) are one line on stderr naming the file,
checkpoint or argument and what to do, exit code 2.  Anything else is a repspace bug or an
input it does not recognise: one line too, saying how to see the traceback (``--debug``),
exit code 1.  Ctrl-C and SIGTERM: exit 130 / 143, after the command's own clean-up ran.
"""

from __future__ import annotations

import contextlib
import errno
import re
import sys
from collections.abc import Iterator

__all__ = [
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "Terminated",
    "one_line",
    "printable",
    "escape_text",
    "EscapingStream",
    "classify",
    "format_warning",
    "plain_warnings",
]

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
_MAX_CHARS = 1500
# What a terminal would act on instead of showing: C0 / C1 control characters (escape
# sequences, carriage returns, backspaces) and the invisible Unicode format characters that
# reorder or hide text (bidirectional overrides and isolates, the Arabic letter mark,
# zero-width characters, line / paragraph separators, the byte-order mark).
_INVISIBLE = "\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb"
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{_INVISIBLE}]")
# The same, keeping the layout characters a program's own output uses (newline, tab, the
# carriage return of progress bars): for whole output streams.
_STREAM_UNSAFE = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_INVISIBLE}]")


def _escaped(m: re.Match) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so every ``finally`` / clean-up still runs."""


def one_line(text) -> str:
    """``text`` on one line: whitespace runs (newlines included) become one space, control
    characters (terminal escapes in a hostile file name) are shown escaped, long text is cut."""
    text = " ".join(str(text).split())
    text = _CONTROL.sub(_escaped, text)
    return text if len(text) <= _MAX_CHARS else text[:_MAX_CHARS] + " …"


def printable(text) -> str:
    """Multi-line output for a terminal: lines kept, other control characters (escape
    sequences from hostile checkpoint names) shown escaped instead of interpreted."""
    return "\n".join(_CONTROL.sub(_escaped, line) for line in str(text).split("\n"))


def escape_text(text: str) -> str:
    """``text`` with every character a terminal would act on, or that reorders / hides text
    (bidirectional overrides), shown escaped; newlines, tabs and carriage returns kept."""
    return _STREAM_UNSAFE.sub(_escaped, text)


class EscapingStream:
    """A text stream that writes through :func:`escape_text`: the CLI's stdout and stderr while
    a command runs, so no output path (tables, progress bars, warnings, messages of the
    libraries) can print a hostile name's escape sequences or bidirectional overrides raw."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text) -> int:
        self._stream.write(escape_text(text) if isinstance(text, str) else text)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):  # flush, isatty, fileno, encoding, buffer, …
        return getattr(self._stream, name)


def format_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the command line shows it: ``UserWarning: message`` on one line.
    Python's default adds ``file:line:`` and the source line that raised it (a line of
    peft's or repspace's code), which tells a user nothing; ``--debug`` keeps the default."""
    return f"{category.__name__}: {one_line(message)}\n"


@contextlib.contextmanager
def plain_warnings(debug: bool = False) -> Iterator[None]:
    """Show warnings with :func:`format_warning` within the block (unless ``debug``)."""
    import warnings

    saved = warnings.formatwarning
    if not debug:
        warnings.formatwarning = format_warning
    try:
        yield
    finally:
        warnings.formatwarning = saved


def _os_error(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"{where or 'writing'}: no space left on the device; nothing half-written was "
            "kept — free some space or choose an output folder on another disk"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}: {reason}; check its permissions or choose another location"
    return f"{where}: {reason}" if where else reason


def classify(exc: BaseException) -> tuple[str, int]:
    """``(one-line message, exit code)`` for an exception that ended a command."""
    try:
        from PIL import Image

        bomb = (Image.DecompressionBombError,)
    except ImportError:  # pragma: no cover - Pillow is a dependency
        bomb = ()
    if bomb and isinstance(exc, bomb):
        return one_line(
            f"an image is too large to decode safely ({exc}); resize it or remove "
            "it from the probe data"
        ), EXIT_INPUT
    if isinstance(exc, ValueError):  # CheckpointError, OutputError, JSON / TOML / Unicode errors
        return one_line(exc), EXIT_INPUT
    if isinstance(exc, OSError):
        return one_line(_os_error(exc)), EXIT_INPUT
    if isinstance(exc, MemoryError):
        return one_line(
            "ran out of memory; lower --batch-size / --num-samples or use a smaller model"
        ), EXIT_INPUT
    detail = one_line(f"{type(exc).__name__}: {exc}")
    library = _failing_library(exc)
    if library is not None:  # the model's own code raised: say so, with the version
        name, version, where = library
        return (
            f"the model's own code failed in {name} {version} ({where}): {detail}; this "
            f"checkpoint may need another {name} version, or be an older layout it no longer "
            "runs (rerun with --debug for the traceback)"
        ), EXIT_FAILED
    return (
        f"unexpected error: {detail} (rerun with --debug for the traceback, and please report it)"
    ), EXIT_FAILED


_LIBRARIES = ("transformers", "peft", "accelerate")


def _failing_library(exc: BaseException) -> tuple[str, str, str] | None:
    """``(library, version, "function in file")`` when the innermost frame of ``exc``'s
    traceback is in a model library's code (a model's forward), else None."""
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    path = tb.tb_frame.f_code.co_filename.replace("\\", "/")
    for name in _LIBRARIES:
        marker = f"/{name}/"
        if marker in path:
            try:
                from importlib.metadata import version

                ver = version(name)
            except Exception:  # noqa: BLE001 - only for the message
                ver = "(version unknown)"
            where = f"{tb.tb_frame.f_code.co_name} in {path.split(marker, 1)[1]}"
            return name, ver, where
    return None


def print_error(command: str, exc: BaseException, debug: bool = False) -> int:
    """Print ``exc`` the way repspace does (traceback first with ``debug``); returns the exit code."""
    message, code = classify(exc)
    if debug:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(f"{f'repspace {command}' if command else 'repspace'}: error: {message}", file=sys.stderr)
    return code
