"""Where repspace writes: checked before any work, published atomically, never clobbering.

Promises (docs/security.md):

- the output location is checked before a model is loaded (:func:`check_output`): it is
  not a file, not under a file, not the current folder or one of its parents, not a
  symlink, not a checkpoint or probe being read (nor inside or around one), and an
  existing non-empty folder is only ever replaced when it is recognisably a repspace
  output *and* ``--overwrite`` was given;
- results are written into a staging folder beside the target (:func:`staging_dir`,
  named ``.repspace-tmp-<pid>@<host>.<random>`` so that a later run can recognise and
  remove it once its process is dead, :func:`clean_stale`), given the modes the umask
  asks for (:func:`apply_umask`: mkdtemp / mkstemp create 0700 / 0600), and moved in with
  one rename (:func:`publish`), which re-checks the target: whatever appeared there
  meanwhile is left untouched unless it is a repspace output and overwriting was asked for.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

__all__ = [
    "OutputError",
    "TMP_PREFIX",
    "check_location",
    "check_output",
    "staging_dir",
    "staging_prefix",
    "publish",
    "clean_stale",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "apply_umask",
    "current_umask",
    "has_json_schema",
    "is_report_folder",
]

TMP_PREFIX = ".repspace-tmp-"
_TMP_NAME = re.compile(r"^\.repspace-tmp-(\d+)@([^.]*)\.")


class OutputError(ValueError):
    """The output location cannot be used; the message names it and says what to do."""


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def has_json_schema(folder: Path, file: str, schema: str) -> bool:
    """Whether ``folder/file`` is a JSON object whose ``schema`` is ``schema`` (a marker that
    repspace wrote the folder; symlinked markers do not count)."""
    marker = Path(folder) / file
    try:
        if marker.is_symlink() or not marker.is_file() or marker.stat().st_size > (64 << 20):
            return False
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("schema") == schema


def is_report_folder(folder: Path) -> bool:
    """A `repspace compare` report folder (its report.json carries the report schema)."""
    return has_json_schema(folder, "report.json", "repspace.report")


def current_umask() -> int:
    try:  # Linux ≥ 4.7 reports it without changing it (os.umask is not thread-safe)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(root: Path) -> None:
    """Give ``root`` and everything under it the modes a plain mkdir / open would have had."""
    mask = current_umask()
    os.chmod(root, 0o777 & ~mask)
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            p = os.path.join(folder, d)
            if not os.path.islink(p):
                os.chmod(p, 0o777 & ~mask)
        for f in files:
            p = os.path.join(folder, f)
            if not os.path.islink(p):
                os.chmod(p, 0o666 & ~mask)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or nonsense): leave it alone
    return True


def clean_stale(parent: Path) -> list[Path]:
    """Remove the staging folders a killed repspace run left in ``parent`` (ours by name,
    made on this host, by a process that no longer exists); returns what was removed."""
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    host = _host()
    for entry in entries:
        m = _TMP_NAME.match(entry.name)
        if (
            not m
            or m.group(2) != host
            or int(m.group(1)) == os.getpid()
            or _pid_alive(int(m.group(1)))
        ):
            continue
        try:
            if entry.is_symlink() or not entry.is_dir():
                entry.unlink()
            else:
                shutil.rmtree(entry)
            removed.append(entry)
        except OSError:
            pass
    return removed


def staging_prefix() -> str:
    """The name prefix of this process's temporary files and folders (see :func:`clean_stale`)."""
    return f"{TMP_PREFIX}{os.getpid()}@{_host()}."


@contextlib.contextmanager
def atomic_path(path: str | Path, *, fsync: bool = False) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; on success it gets the modes the umask asks
    for and replaces ``path`` in one rename, on any failure it is removed.

    The only way repspace writes a single file: readers see the old file or the new one,
    never half of one.  The temporary name carries :func:`staging_prefix` (unique per call,
    so concurrent writers never share it; :func:`clean_stale` recognises a crashed
    process's leftovers).  ``fsync``: flush the data to disk before the rename (for files
    a resumed run trusts, e.g. capture shards)::

        with atomic_path(out / "weights.safetensors") as tmp:
            save_file(tensors, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f"{staging_prefix()}{path.name}.", suffix=".tmp", dir=path.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 is not what the umask asks
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`); returns the path."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_path`); returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def staging_dir(out: Path, tag: str = "") -> Path:
    """A fresh, recognisable staging folder beside ``out`` (parents created as needed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out.parent)
    return Path(tempfile.mkdtemp(prefix=f"{staging_prefix()}{tag}", dir=out.parent))


def _real(p: Path) -> Path:
    return Path(os.path.realpath(p))


def _overlap(out: Path, inputs: Iterable[tuple[str, str | Path | None]], option: str) -> None:
    real_out = _real(out)
    for what, spec in inputs:
        if spec is None or not str(spec) or not os.path.lexists(spec):
            continue
        real_in = _real(Path(spec))
        if real_out == real_in:
            relation = "is"
        elif real_in in real_out.parents:
            relation = "is inside"
        elif real_out in real_in.parents:
            relation = "contains"
        else:
            continue
        raise OutputError(
            f"{option} {out} {relation} the {what} {spec} that this run reads; choose "
            "an output folder outside every input of the run (checkpoints, probe "
            "and data files)"
        )


def check_location(
    out: str | Path, *, inputs: Iterable[tuple[str, str | Path | None]] = (), option: str = "-o"
) -> Path:
    """Where an output may go, whatever is there now; returns it as an absolute path.

    Not empty text, not the file-system root, not the current folder or one of its parents,
    not a symbolic link, not under a file or an unwritable folder, and not ``inputs``
    (``(what, path)`` pairs being read: checkpoints, probe and data files), nor inside or
    around any of them.  Every command that writes checks its output with this (through
    :func:`check_output`, or directly where it resumes in place, as ``train`` does).
    """
    text = str(out)
    if not text.strip() or "\0" in text:
        raise OutputError(f"{option} {text!r}: give a folder path")
    path = Path(os.path.abspath(text))
    if path == Path(path.anchor):
        raise OutputError(f"{option} {text}: is the file-system root; give a new folder")
    cwd = Path(os.path.abspath(os.getcwd()))
    if path == cwd or path in cwd.parents:
        raise OutputError(
            f"{option} {text}: is the current folder or one of its parents; give a "
            "new folder for the output (e.g. -o report)"
        )
    if path.is_symlink():
        raise OutputError(
            f"{option} {text}: is a symbolic link; repspace writes only real "
            "folders — give the folder it points to, or a new one"
        )
    for parent in path.parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise OutputError(
                    f"{option} {text}: {parent} is a file, so no folder can be made "
                    "under it; choose another location"
                )
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputError(
                    f"{option} {text}: {parent} is not writable; choose a location you can write to"
                )
            break
    _overlap(path, inputs, option)
    if os.path.lexists(path) and not path.is_dir():
        raise OutputError(
            f"{option} {text}: is a file; give a folder path (repspace never replaces files)"
        )
    return path


def check_output(
    out: str | Path,
    *,
    overwrite: bool = False,
    inputs: Iterable[tuple[str, str | Path | None]] = (),
    is_ours: Callable[[Path], bool] = is_report_folder,
    option: str = "-o",
    kind: str = "repspace report",
) -> Path:
    """Validate an output folder before any work; returns it as an absolute path.

    ``inputs``: ``(what, path)`` pairs being read (checkpoints, probe and data files): the
    output may not be, contain, or lie inside any of them (:func:`check_location`).
    ``is_ours(folder)``: whether an existing folder is a repspace output that ``overwrite``
    may replace.
    """
    text = str(out)
    path = check_location(out, inputs=inputs, option=option)
    if os.path.lexists(path) and any(path.iterdir()):
        if not is_ours(path):
            raise OutputError(
                f"{option} {text}: already exists and is not a {kind} folder; "
                "repspace only ever replaces its own outputs — choose a new or "
                "empty folder"
            )
        if not overwrite:
            raise OutputError(
                f"{option} {text}: already holds a {kind}; pass --overwrite to "
                "replace it, or choose another folder"
            )
    return path


def publish(
    tmp: Path,
    out: Path,
    *,
    overwrite: bool = False,
    is_ours: Callable[[Path], bool] = is_report_folder,
    kind: str = "repspace report",
) -> None:
    """Move the finished staging folder ``tmp`` to ``out`` with one rename.

    The rename itself re-checks the target: it succeeds only where ``out`` is absent or an
    empty folder.  Anything else that appeared meanwhile is kept and this fails, unless it
    is one of ours and ``overwrite`` is set: then it is renamed aside, checked once more,
    replaced, and deleted last (restored if the swap fails).  ``tmp`` stays for the caller
    to remove on failure.
    """
    try:
        os.rename(tmp, out)
        return
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise
    if out.is_symlink() or not out.is_dir() or not overwrite or not is_ours(out):
        raise OutputError(
            f"{out}: something was created there while repspace was working; it was "
            f"left untouched and no {kind} was written — rerun with another output "
            "folder"
        )
    aside = Path(
        tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}@{_host()}.old-", dir=out.parent)
    )
    os.rmdir(aside)  # only the unique, recognisable name is wanted
    os.rename(out, aside)
    if not is_ours(aside):  # swapped for something else between the check and the rename
        os.rename(aside, out)
        raise OutputError(
            f"{out}: changed while repspace was replacing it; it was left untouched "
            "— rerun with another output folder"
        )
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(aside, out)
        raise
    shutil.rmtree(aside, ignore_errors=True)
