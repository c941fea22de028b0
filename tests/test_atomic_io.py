"""repspace.outputs.atomic_path: the one way a single file is written."""

import os
import stat

import pytest

from repspace.outputs import TMP_PREFIX, atomic_path, atomic_write_text, clean_stale, staging_prefix


def test_a_reader_sees_the_old_file_until_the_new_one_is_complete(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new, half")
        assert target.read_text() == "old"
        assert tmp.parent == target.parent and tmp.name.startswith(TMP_PREFIX)
    assert target.read_text() == "new, half"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_failed_write_leaves_the_old_file_and_no_leftover(tmp_path):
    target = tmp_path / "weights.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target, fsync=True) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.safetensors"]


def test_modes_follow_the_umask_not_mkstemps_0600(tmp_path):
    old = os.umask(0o027)
    try:
        path = atomic_write_text(tmp_path / "sub" / "a.txt", "x")
    finally:
        os.umask(old)
    assert path.read_text() == "x"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_concurrent_writers_never_share_a_temporary_name(tmp_path):
    target = tmp_path / "figure.png"
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a != b
        a.write_text("a")
        b.write_text("b")
    assert target.read_text() == "a"  # the outer context finishes last


def test_a_crashed_writers_leftover_is_recognised(tmp_path):
    """The temporary file of a process that died mid-write is removed by the next run."""
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    ours = staging_prefix()  # ".repspace-tmp-<our pid>@<host>."
    stale = tmp_path / (ours.replace(f"-{os.getpid()}@", f"-{pid}@") + "report.json.abc.tmp")
    stale.write_text("left by a dead process")
    with atomic_path(tmp_path / "live.json") as live:  # our own, in flight: kept
        assert clean_stale(tmp_path) == [stale]
        assert live.exists()
    assert not stale.exists()
