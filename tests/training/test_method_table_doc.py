"""The architecture x method table of docs/methods.md agrees with the tests (issue 18, item 6).

The full generator (``python -m tests.training.method_table``, ~2 min) runs the tests; this
check (seconds, in CI) *collects* them (``--expected``: ``pytest --collect-only`` on the same
test list) and compares the doc with the table every cell would get if they all passed.
The rows, columns and marks are the tests' own parametrization (test_train_zoo_archs.ARCHS,
available_methods(), test_towers_untouched.UNTOUCHED, test_loss_decrease_text.ENCODERS, ...),
so adding an architecture or a method to the tests without regenerating the doc fails here,
and so does a row / column / mark in the doc that no test backs.  A cell may differ from the
all-pass table only as ✗ with its one-line reason under the table (what the generator writes
for a failing test)."""

import re
import subprocess
import sys
from pathlib import Path

from tests.training import method_table as mt

ROOT = Path(__file__).resolve().parents[2]
_VERSIONS = re.compile(r"\(transformers [^,()]+, torch [^()]+\)")


def _rows(lines: list[str]) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in lines
        if line.startswith("|")
    ]


def _parts(text: str) -> tuple[str, list[list[str]], list[str]]:
    """(legend with the versions blanked, table rows as cells, failure-note lines)."""
    lines = text.strip().splitlines()
    legend = _VERSIONS.sub("(VERSIONS)", lines[0])
    notes = [line for line in lines if line.startswith("- ")]
    return legend, _rows(lines), notes


def _doc_section() -> str:
    text = (ROOT / "docs" / "methods.md").read_text(encoding="utf-8")
    assert text.count(mt.START) == 1 and text.count(mt.END) == 1, (
        "table markers missing in docs/methods.md"
    )
    return text[text.index(mt.START) + len(mt.START) : text.index(mt.END)]


def test_docs_table_is_what_the_tests_parametrize():
    proc = subprocess.run(
        [sys.executable, "-m", "tests.training.method_table", "--expected"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]  # a row / column / cell no test covers
    want_legend, want, _ = _parts(proc.stdout)
    legend, doc, notes = _parts(_doc_section())
    regenerate = "regenerate with python -m tests.training.method_table"
    assert legend == want_legend, f"the table's legend differs: {regenerate}"
    assert doc[0] == want[0], f"columns: docs {doc[0]} != tests {want[0]}"
    assert [r[0] for r in doc[2:]] == [r[0] for r in want[2:]], (
        "rows differ from the tests' architectures"
    )
    label_to_arch = {label: arch for arch, label in mt.ROWS.items()}
    explained = set()
    for got_row, want_row in zip(doc[2:], want[2:]):
        arch = label_to_arch[got_row[0]]
        for column, got, expect in zip(want[0][1:], got_row[1:], want_row[1:]):
            if got == "✗":
                reason = [n for n in notes if n.startswith(f"- {arch} × {column}: ")]
                assert reason, f"{arch} × {column}: ✗ without its one-line reason under the table"
                explained.update(reason)
            else:
                assert got == expect, (
                    f"{arch} × {column}: docs say {got!r}, the tests give {expect!r}: {regenerate}"
                )
    stale = sorted(set(notes) - explained)
    assert not stale, f"failure notes for cells that are not ✗: {stale}"


def _all_pass() -> dict:
    """Results as if every table test ran, on every row and column, and passed."""
    res = {}
    for arch in mt.ROWS:
        for column in mt.COLUMNS:
            res[(mt.TRAINS, arch, column)] = (True, "")
    return res


def test_coverage_problems_are_found():
    res = _all_pass()
    assert mt.problems(res) == []
    # an architecture the tests train with no row in the doc's table
    assert any(
        "'mistral'" in p for p in mt.problems({**res, (mt.TRAINS, "mistral", "lora"): (True, "")})
    )
    # a method the tests train with no column
    assert any("'vera'" in p for p in mt.problems({**res, (mt.TRAINS, "t5", "vera"): (True, "")}))
    # a row whose cells no training test covers
    missing = {k: v for k, v in res.items() if k[1] != "t5"}
    assert sum("t5 x" in p for p in mt.problems(missing)) == len(mt.COLUMNS)
    # an encoder loss test that maps to no row
    extra = {**res, (mt.ENCODER_LOSS, "distilbert", "lora"): (True, "")}
    assert any("'distilbert'" in p for p in mt.problems(extra))


def test_cells_follow_the_tests_outcomes():
    res = _all_pass()
    res[("test_trainable_counts_and_identity_at_init", "t5", None)] = (True, "")
    for p in mt._encoder_rows():
        res[(mt.ENCODER_LOSS, p, "lora")] = (True, "")
    notes: list[str] = []
    assert mt._cell(res, "t5", "lora", notes) == "trains #"
    assert mt._cell(res, "bert", "lora", notes) == "trains ↓"
    assert mt._cell(res, "bert", "ia3", notes) == "trains"  # no loss test for it: no ↓
    res[(mt.ENCODER_LOSS, "bert_mlm", "lora")] = (False, "AssertionError: (0.69, 0.68)")
    assert mt._cell(res, "bert", "lora", notes) == "✗"
    assert notes and notes[-1].startswith("- bert × lora: ")
    del res[(mt.TRAINS, "phi3", "prompt")]
    assert mt._cell(res, "phi3", "prompt", notes) == "not tested"


def test_full_parallel_adapter_and_pt_peft_cells_read_their_tests():
    """full's ↓ comes from the 20-step full FT test (never =1: it moves the vision tower);
    the parallel adapter and PT-PEFT get ↓ =1 # from the towers test (# = its hand count)
    and ↓ # from the text-LM test; a failing one makes the cell ✗ with its reason."""
    res = _all_pass()
    res[("test_full_fine_tuning_lowers_the_loss", "blip2", None)] = (True, "")
    notes: list[str] = []
    assert mt._cell(res, "blip2", "full", notes) == "trains"
    res[(mt.FULL, "blip2", None)] = (True, "")
    assert mt._cell(res, "blip2", "full", notes) == "trains ↓"
    for column in ("adapter-parallel", "pt_lora", "pt_adapter"):
        res[(mt.TOWERS, "blip2", column)] = (True, "")
        assert mt._cell(res, "blip2", column, notes) == "trains ↓ =1 #"
        res[(mt.TEXT_LMS, "phi3", column)] = (True, "")
        assert mt._cell(res, "phi3", column, notes) == "trains ↓ #"
    res[(mt.TOWERS, "blip2", "prompt")] = (True, "")
    assert mt._cell(res, "blip2", "prompt", notes) == "trains ↓ =1"  # its # is test_zoo_sites'
    res[(mt.FULL, "phi3", None)] = (False, "AssertionError: [3.1, 3.2]")
    res[("test_full_fine_tuning_lowers_the_loss", "phi3", None)] = (True, "")
    assert mt._cell(res, "phi3", "full", notes) == "✗"
    assert notes[-1].startswith(f"- phi3 × full: `{mt.FULL}` failed: ")
