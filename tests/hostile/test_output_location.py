"""The output location: checked before loading, re-checked under the final rename, only ever
replacing a repspace report, never an input; staging folders of killed runs are cleaned."""

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

import repspace.compare.api as api
import repspace.report.writer as writer
from repspace.cli import main
from repspace.outputs import TMP_PREFIX, clean_stale, staging_dir
from tests.hostile.conftest import FAST, refused


@pytest.fixture
def no_model(monkeypatch):
    """Refusals that must come before any model is loaded: loading fails the test."""

    def boom(*a, **k):
        raise AssertionError("a model was loaded before the output/argument check")

    monkeypatch.setattr(api, "load_checkpoint", boom)


def _compare(ws, *extra):
    return ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST, *extra]


def test_output_is_the_tuned_checkpoint(ws, capsys, no_model):
    line = refused(
        capsys, ws.root, _compare(ws, "-o", ws.adapter, "--overwrite"), names=str(ws.adapter)
    )
    assert "reads" in line


def test_output_inside_the_base_checkpoint(ws, capsys, no_model):
    out = ws.base / "report"
    refused(capsys, ws.root, _compare(ws, "-o", out), names=str(ws.base), out=out)


def test_output_containing_the_probe_file(ws, capsys, no_model):
    # an earlier report folder into which the user dropped the probe: --overwrite would delete it
    old = ws.root / "old-report"
    old.mkdir()
    (old / "report.json").write_text(json.dumps({"schema": "repspace.report"}))
    probe = old / "probe.txt"
    shutil.copy(ws.probe, probe)
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", probe, *FAST, "-o", old, "--overwrite"],
        names=str(probe),
    )


def test_output_is_a_symlink_to_a_report(ws, capsys, no_model):
    real = ws.root / "real-report"
    real.mkdir()
    (real / "report.json").write_text(json.dumps({"schema": "repspace.report"}))
    link = ws.root / "work" / "link"
    os.symlink(real, link)
    refused(capsys, ws.root, _compare(ws, "-o", link, "--overwrite"), names=str(link))


@pytest.mark.parametrize("where", [".", "..", "./"])
def test_output_is_the_current_folder_or_a_parent(ws, capsys, no_model, where):
    (ws.root / "work" / "notes.txt").write_text("mine")
    refused(capsys, ws.root, _compare(ws, "-o", where, "--overwrite"), names=where)


def test_output_under_a_file(ws, capsys, no_model):
    (ws.root / "work" / "afile").write_text("x")
    out = ws.root / "work" / "afile" / "report"
    refused(capsys, ws.root, _compare(ws, "-o", out), names="afile")


def test_output_is_a_file(ws, capsys, no_model):
    (ws.root / "work" / "report.txt").write_text("keep me")
    refused(capsys, ws.root, _compare(ws, "-o", "report.txt", "--overwrite"), names="report.txt")


def test_output_is_empty_text(ws, capsys, no_model):
    refused(capsys, ws.root, _compare(ws, "-o", ""), names="-o")


def test_overwrite_of_a_folder_that_is_no_report(ws, capsys, no_model):
    out = ws.root / "work" / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8 precious")
    line = refused(capsys, ws.root, _compare(ws, "-o", out, "--overwrite"), names=str(out))
    assert "not a repspace report" in line


@pytest.mark.parametrize(
    "content",
    ['{"schema": "something.else"}', "[1, 2]", "not json", '{"schema": ["repspace.report"]}'],
)
def test_overwrite_of_a_folder_with_a_forged_report_json(ws, capsys, no_model, content):
    out = ws.root / "work" / "forged"
    out.mkdir()
    (out / "report.json").write_text(content)
    (out / "data.csv").write_text("precious")
    refused(capsys, ws.root, _compare(ws, "-o", out, "--overwrite"), names=str(out))


def test_symlinked_report_json_does_not_make_a_folder_ours(ws, capsys, no_model):
    real = ws.root / "real-report"
    real.mkdir()
    (real / "report.json").write_text(json.dumps({"schema": "repspace.report"}))
    out = ws.root / "work" / "mine"
    out.mkdir()
    os.symlink(real / "report.json", out / "report.json")
    (out / "thesis.tex").write_text("precious")
    refused(capsys, ws.root, _compare(ws, "-o", out, "--overwrite"), names=str(out))


def test_existing_report_without_overwrite(ws, capsys, no_model):
    out = ws.root / "work" / "report"
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"schema": "repspace.report"}))
    line = refused(capsys, ws.root, _compare(ws, "-o", out), names=str(out))
    assert "--overwrite" in line


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_output_in_a_read_only_folder(ws, capsys, no_model):
    ro = ws.root / "work" / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        refused(capsys, ws.root, _compare(ws, "-o", ro / "report"), names=str(ro))
    finally:
        ro.chmod(0o700)


def _appear_during_write(monkeypatch, make):
    """Something appears at the output while the report is being written."""
    real = writer._markdown

    def markdown(*a, **k):
        make()
        return real(*a, **k)

    monkeypatch.setattr(writer, "_markdown", markdown)


def test_a_folder_that_appears_while_writing_is_kept(ws, capsys, monkeypatch):
    out = ws.root / "work" / "race"

    def make():
        out.mkdir()
        (out / "theirs.txt").write_text("other run")

    _appear_during_write(monkeypatch, make)
    before = {p.name for p in out.parent.iterdir()}
    rc = main([str(a) for a in _compare(ws, "-o", out)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and str(out) in err, err
    assert (out / "theirs.txt").read_text() == "other run" and sorted(
        p.name for p in out.iterdir()
    ) == ["theirs.txt"]
    assert {p.name for p in out.parent.iterdir()} == before | {"race"}  # no staging left


def test_a_file_that_appears_while_writing_is_kept(ws, capsys, monkeypatch):
    out = ws.root / "work" / "race"
    _appear_during_write(monkeypatch, lambda: out.write_text("theirs"))
    rc = main([str(a) for a in _compare(ws, "-o", out, "--overwrite")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and str(out) in err, err
    assert out.read_text() == "theirs"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_a_report_replaced_meanwhile_by_other_files_is_kept(ws, capsys, monkeypatch):
    out = ws.root / "work" / "report"
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"schema": "repspace.report"}))

    def swap():  # the old report is replaced by someone's folder between check and rename
        shutil.rmtree(out)
        out.mkdir()
        (out / "new.txt").write_text("not a report")

    _appear_during_write(monkeypatch, swap)
    rc = main([str(a) for a in _compare(ws, "-o", out, "--overwrite")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert (out / "new.txt").read_text() == "not a report"


def test_disk_full_while_writing_leaves_nothing(ws, capsys, monkeypatch):
    import errno

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "report.html")

    monkeypatch.setattr(writer, "_html", full)
    out = ws.root / "work" / "deep" / "er" / "report"
    rc = main([str(a) for a in _compare(ws, "-o", out)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and "no space left" in err, err
    assert not (ws.root / "work" / "deep").exists()  # the parents it made are gone too


def test_sigterm_while_writing_cleans_up(ws, capsys, monkeypatch):
    from repspace.cli_errors import Terminated

    def term(*a, **k):
        raise Terminated()

    monkeypatch.setattr(writer, "_html", term)
    out = ws.root / "work" / "report"
    rc = main([str(a) for a in _compare(ws, "-o", out)])
    err = capsys.readouterr().err
    assert rc == 143 and len(err.splitlines()) == 1 and "terminated" in err, err
    assert sorted(p.name for p in (ws.root / "work").iterdir()) == []


def test_ctrl_c_during_start_up(ws, capsys, monkeypatch):
    import repspace.cli as cli

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_quiet_libraries", interrupted)
    rc = main([str(a) for a in _compare(ws, "-o", "out")])
    err = capsys.readouterr().err
    assert rc == 130 and err.splitlines() == ["repspace compare: interrupted"]


def test_stale_staging_folders_of_dead_runs_are_removed(tmp_path):
    out = tmp_path / "report"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    host = staging_dir(out).name.split("@")[1].split(".")[0]
    stale = tmp_path / f"{TMP_PREFIX}{dead}@{host}.abcd1234"
    (stale / "plots").mkdir(parents=True)
    alive = tmp_path / f"{TMP_PREFIX}{os.getppid()}@{host}.abcd1234"
    alive.mkdir()
    foreign = tmp_path / f"{TMP_PREFIX}{dead}@otherhost.abcd1234"
    foreign.mkdir()
    unrelated = tmp_path / ".out.abcd1234"
    unrelated.mkdir()
    assert clean_stale(tmp_path) == [stale]
    assert alive.exists() and foreign.exists() and unrelated.exists()


def test_report_folder_honours_the_umask(ws, capsys):
    old = os.umask(0o027)
    try:
        out = ws.root / "work" / "report"
        assert main([str(a) for a in _compare(ws, "-o", out)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert stat.S_IMODE((out / "report.json").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "plots" / "cka.png").stat().st_mode) == 0o640
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_a_killed_study_leaves_nothing_the_next_one_keeps(tmp_path):
    """Temporary files of a study killed with SIGKILL carry the staging prefix of a dead process;
    the next study in that folder removes them before it starts."""
    from repspace.outputs import staging_prefix
    from repspace.study import load_study_config
    from repspace.study.runner import run_study

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    out = tmp_path / "study"
    (out / "results").mkdir(parents=True)
    prefix = staging_prefix().replace(f"-{os.getpid()}@", f"-{dead}@")
    leftover = out / "results" / f"{prefix}summary.csv.tmp"
    leftover.write_text("half")
    cfg = tmp_path / "s.toml"
    cfg.write_text('name = "s"\nmethods = ["base"]\ntasks = ["vqa"]\n')
    run_study(
        load_study_config(cfg),
        out,
        progress=False,
        compare_fn=lambda *a, **k: None,
        base_score_fn=lambda *a: {},
        write_outputs=False,
    )  # the cell fails; that is fine
    assert not leftover.exists()
