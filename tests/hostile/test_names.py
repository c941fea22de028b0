"""Names with HTML, TeX, newlines, terminal escapes and unicode: errors stay one line, reports
escape them, plots survive them."""

import json
import shutil

import pytest

from repspace.cli import main
from tests.hostile.conftest import FAST, payload_pickle, refused

HOSTILE_NAMES = {
    "html": "<img src=x onerror=alert(1)>",
    "tex": r"$\frac{a}{b}$_^\x",
    "newline": "evil\nrepspace compare: ok",
    "ansi": "red\x1b[31mname\x1b[0m",
    "unicode": "модель-𝔘-\u202etxt.pt",
}


@pytest.mark.parametrize("kind", list(HOSTILE_NAMES))
def test_missing_checkpoint_with_a_hostile_name(ws, capsys, kind):
    name = HOSTILE_NAMES[kind]
    line = refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.root / name, "--probe", ws.probe, *FAST],
        names=" ".join(name.split()).replace("\x1b", "\\x1b").replace("\u202e", "\\u202e"),
    )
    assert "\x1b" not in line and "\u202e" not in line  # bidi overrides escaped (issue 26)


@pytest.mark.parametrize("kind", ["html", "newline", "ansi"])
def test_pickle_payload_with_a_hostile_name(ws, capsys, kind):
    evil = payload_pickle(ws.root / (HOSTILE_NAMES[kind] + ".pt"), ws.root / "PWNED")
    refused(
        capsys, ws.root, ["compare", ws.base, evil, "--probe", ws.probe, *FAST], names="refused"
    )


def test_output_name_with_a_newline_refused_when_it_is_a_file(ws, capsys):
    out = ws.root / "work" / "a\nb"
    out.write_text("keep")
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST, "-o", out],
        names="a b",
    )


@pytest.mark.parametrize("kind", ["html", "tex"])
def test_hostile_checkpoint_name_is_escaped_and_plotted(ws, capsys, kind):
    tuned = ws.root / HOSTILE_NAMES[kind]
    shutil.copytree(ws.adapter, tuned)
    out = ws.root / "work" / "report"
    rc = main([str(a) for a in ["compare", ws.base, tuned, "--probe", ws.probe, *FAST, "-o", out]])
    err = capsys.readouterr().err
    assert rc == 0, err
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "<img" not in md and "<img src=x" not in html
    if kind == "html":
        assert "&lt;img src=x" in html and "&lt;img src=x" in md
    assert (out / "plots" / "cka.png").stat().st_size > 1000  # TeX-like text did not kill the plots
    rep = json.loads((out / "report.json").read_text())
    assert rep["inputs"]["tuned"][0]["name"] == HOSTILE_NAMES[kind]  # data kept verbatim in JSON
    assert rep["settings"]["max_length"] == 64  # --max-length changes results: it is recorded


def test_terminal_escapes_in_a_name_are_not_sent_to_the_terminal(ws, capsys):
    tuned = ws.root / HOSTILE_NAMES["ansi"]
    shutil.copytree(ws.adapter, tuned)
    rc = main(
        [str(a) for a in ["compare", ws.base, tuned, "--probe", ws.probe, *FAST, "--no-report"]]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "\x1b" not in out and "red\\x1b[31mname" in out
