"""Cases where the process matters: stdin (a `yes |` must answer no prompt), a real SIGTERM."""

import os
import signal
import subprocess
import sys

import repspace.report.writer as writer
from repspace.cli import main
from repspace.outputs import TMP_PREFIX
from tests.hostile.conftest import FAST, MARKER_NAME, add_auto_map


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    # transformers only prompts when a timeout is configured: make it prompt if it ever would
    env["TRUST_REMOTE_CODE_TIMEOUT"] = "15"
    return env


def test_yes_on_stdin_cannot_accept_remote_code(ws):
    add_auto_map(ws.base)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "repspace",
            "compare",
            str(ws.base),
            str(ws.adapter),
            "--probe",
            str(ws.probe),
            *FAST,
            "-o",
            "out",
        ],
        input="y\n" * 1000,
        capture_output=True,
        text=True,
        cwd=ws.root / "work",
        env=_env(),
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert (
        len(lines) == 1 and str(ws.base / "config.json") in lines[0] and "[y/N]" not in res.stdout
    )
    assert not (ws.root / MARKER_NAME).exists() and not (ws.root / "work" / "out").exists()


def test_library_prompts_see_end_of_file(ws, capsys, monkeypatch):
    """Whatever a library asks on stdin while repspace runs reads nothing (EOF)."""
    import repspace.compare.api as api

    seen = []

    def prompt(*a, **k):
        try:
            seen.append(input("run the custom code? [y/N] "))
        except EOFError:
            seen.append(EOFError)
        raise ValueError("refused for the test")

    monkeypatch.setattr(api, "load_checkpoint", prompt)
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("y\n"))
    assert (
        main(
            [
                str(a)
                for a in ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST, "-o", "out"]
            ]
        )
        == 2
    )
    assert seen == [EOFError]
    assert sys.stdin.read() == "y\n"  # repspace's own stdin is restored, untouched


def test_real_sigterm_while_writing_leaves_nothing(ws, capsys, monkeypatch):
    def terminate(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to repspace's handler

    monkeypatch.setattr(writer, "_html", terminate)
    out = ws.root / "work" / "report"
    rc = main(
        [str(a) for a in ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST, "-o", out]]
    )
    err = capsys.readouterr().err
    assert rc == 143 and len(err.splitlines()) == 1, err
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(TMP_PREFIX)]
    assert signal.getsignal(signal.SIGTERM) is not None  # handler restored after the command


def test_a_real_process_prints_one_line_even_when_libraries_warn(ws):
    """torch warns about the pickle protocol while refusing a payload; in a real process that
    warning would be a second stderr line: warnings of a failed command are held back."""
    from tests.hostile.conftest import payload_pickle

    evil = payload_pickle(ws.root / "tuned.pt", ws.root / MARKER_NAME)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "repspace",
            "compare",
            str(ws.base),
            str(evil),
            "--probe",
            str(ws.probe),
            *FAST,
            "-o",
            "out",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=ws.root / "work",
        env=_env(),
        timeout=300,
    )
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert str(evil) in res.stderr and not (ws.root / MARKER_NAME).exists()
