"""The docs run as written.

docs/getting_started.md: every fenced ``bash`` and ``python`` block, in order, in one empty
folder (a ``toml`` block whose first line is ``# NAME`` is written to NAME there first, as a
reader would save it).  A block preceded by ``<!-- doc-test: skip REASON -->`` is left out;
the skipped blocks and their reasons are listed (and must give one).  Python blocks run with
``RepspaceWarning`` as an error: an example must not teach a warning.  README.md's Python
blocks run the same way, and every relative link in README.md and docs/ points at a file of
the repository.
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(
    r"^(?:<!-- doc-test: skip (?P<skip>.*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)^```$",
    re.M | re.S,
)
PY_PRELUDE = (
    "import warnings\nfrom repspace._validation import RepspaceWarning\n"
    "warnings.simplefilter('error', RepspaceWarning)\n"
)


def blocks(path: Path) -> list[dict]:
    """Fenced blocks of ``path``: ``{"lang", "body", "skip" (reason or None), "line"}``."""
    text = path.read_text(encoding="utf-8")
    return [
        {
            "lang": m["lang"],
            "body": m["body"],
            "skip": m["skip"],
            "line": text.count("\n", 0, m.start("body")) + 1,
        }
        for m in FENCE.finditer(text)
    ]


def _env() -> dict:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MPLBACKEND="Agg",
        PYTHONWARNINGS="ignore::FutureWarning",
    )
    # `repspace` is the console script of the interpreter running the tests
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_block(block: dict, cwd: Path, where: str) -> subprocess.CompletedProcess:
    if block["lang"] == "bash":
        cmd = ["bash", "-euo", "pipefail", "-c", block["body"]]
    else:
        cmd = [sys.executable, "-c", PY_PRELUDE + block["body"]]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=900,
    )
    assert proc.returncode == 0, (
        f"{where} (line {block['line']}) failed, exit {proc.returncode}:\n"
        f"{block['body']}\n--- stdout\n{proc.stdout[-3000:]}\n"
        f"--- stderr\n{proc.stderr[-3000:]}"
    )
    return proc


def test_getting_started_runs_in_order(tmp_path):
    doc = ROOT / "docs" / "getting_started.md"
    found = blocks(doc)
    skipped = [(b["line"], b["skip"]) for b in found if b["skip"] is not None]
    ran = []
    for b in found:
        if b["skip"] is not None:
            assert b["skip"].strip(), f"line {b['line']}: a skip marker needs a reason"
            continue
        if b["lang"] == "toml":
            name = b["body"].splitlines()[0].lstrip("# ").strip()
            (tmp_path / name).write_text(b["body"])
            continue
        if b["lang"] not in ("bash", "python"):
            continue  # output listings
        ran.append((b["line"], run_block(b, tmp_path, "getting_started.md")))
    print(
        "getting_started.md: skipped blocks:",
        *(f"  line {n}: {why}" for n, why in skipped),
        sep="\n",
    )
    # what ran: the train/compare section, the study's dry run, and both Python snippets
    assert len(ran) >= 4 and len(skipped) <= 5, (len(ran), skipped)
    assert (tmp_path / "runs" / "lora-vqa-s0" / "repspace_manifest.json").is_file()
    assert (tmp_path / "report" / "report.html").is_file()
    assert (tmp_path / "api-report" / "report.html").is_file()  # beside the CLI's, not over it
    out = "".join(p.stdout for _, p in ran)
    assert "estimated wall time for the 16 cell(s) to run" in out
    assert "[95% CI" in out


def test_readme_python_runs_without_warnings(tmp_path):
    py = [b for b in blocks(ROOT / "README.md") if b["lang"] == "python"]
    assert py
    for b in py:
        proc = run_block(b, tmp_path, "README.md")
        # the printed interval contains its estimate: "0.7045 [95% CI 0.7015, 0.7128]"
        for est, lo, hi in re.findall(r"([-\d.]+) \[95% CI ([-\d.]+), ([-\d.]+)\]", proc.stdout):
            assert float(lo) <= float(est) <= float(hi), proc.stdout


def test_relative_links_stay_in_the_repository():
    bad = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            if ROOT not in path.parents or not path.exists():
                bad.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not bad, "links outside the repository or to missing files:\n" + "\n".join(bad)


def test_skip_markers_are_parsed():
    doc = textwrap.dedent("""\
        <!-- doc-test: skip too slow -->
        ```bash
        sleep 999
        ```

        ```python
        print(1)
        ```
        """)
    found = [{"lang": m["lang"], "skip": m["skip"]} for m in FENCE.finditer(doc)]
    assert found == [{"lang": "bash", "skip": "too slow"}, {"lang": "python", "skip": None}]
