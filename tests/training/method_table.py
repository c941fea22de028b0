"""Write the architecture x method table of docs/methods.md from the tests that check it.

    python -m tests.training.method_table            # rewrites the table in docs/methods.md
    python -m tests.training.method_table --stdout   # prints it instead
    python -m tests.training.method_table --expected # the table if every test passed (seconds)

Runs (in-process pytest; 249 tests, 1.5 min on this project's two-core machine) the zoo tests
of issue 18 and renders one row per architecture, one column per method, from their outcomes:

- ``trains``: ``test_train_zoo_archs.py::test_every_method_trains_and_reloads`` passed (2 steps,
  finite loss, held-out evaluation with the cached / uncached decoding check, run folder
  reloaded to bit-identical losses); for ``full`` also ``test_full_fine_tuning_lowers_the_loss``;
- ``↓``: the loss falls over 20 steps on a fixed batch (``test_towers_untouched.py``, full
  fine-tuning included, PT-PEFT over both stages and within stage 2, its stage-2 LoRA / adapter
  weights off their zero init; ``test_classify.py`` for T5, ``test_loss_decrease_text.py`` for BERT
  and RoBERTa, where the method's own parameters must also carry part of the drop);
- ``=1``: ``repspace compare base RUN`` gives CKA exactly 1 on the towers the method leaves
  alone and < 1 on the language model (``test_towers_untouched.py``); not claimed for ``full``,
  whose recipe trains the vision tower too (the same file checks it moves: CKA < 1);
- ``#``: exact trainable count against a hand computation and identity at init where the
  method promises it (``tests/methods/test_zoo_sites.py``, per architecture, every method
  but full, PT-PEFT with both stages built; ``test_towers_untouched.py`` also for the trained
  parallel adapter and PT-PEFT: prefix + LoRA / adapter over both stages);
- a failure shows ✗ and the test's one-line reason below the table.

Only the text between the two markers in docs/methods.md is replaced.

The rows, columns and marks come from the tests' own parametrization: ``--expected`` collects
the same tests without running them (``pytest --collect-only``) and renders the table every
cell would get if all of them passed.  ``test_method_table_doc.py`` (in CI, seconds) checks
that docs/methods.md holds that table -- a cell may differ only as ✗ with its reason listed
below the table -- and that every architecture and method the tests parametrize is a row /
column, and every cell is trained by a test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "methods.md"
START, END = "<!-- arch-method-table:start -->", "<!-- arch-method-table:end -->"
HERE = Path(__file__).resolve().parent
TESTS = [
    str(HERE / "test_train_zoo_archs.py") + "::test_every_method_trains_and_reloads",
    str(HERE / "test_train_zoo_archs.py") + "::test_full_fine_tuning_lowers_the_loss",
    str(HERE / "test_towers_untouched.py"),
    str(HERE / "test_classify.py") + "::test_every_method_lowers_the_t5_loss_over_20_steps",
    str(HERE / "test_classify.py")
    + "::test_every_method_trains_its_own_parameters_beside_the_new_head",
    str(HERE / "test_loss_decrease_text.py"),
    str(HERE.parent / "methods" / "test_zoo_sites.py"),
]
ROWS = {
    "gemma2": "Gemma2 (causal LM, text VQA)",
    "phi3": "Phi-3 (causal LM, text VQA)",
    "t5": "T5 / FLAN-T5 (text-to-text VQA, classify)",
    "roberta": "RoBERTa `ForMaskedLM` (new head: VQA, classify)",
    "bert": "BERT bare `BertModel` / `ForMaskedLM` (new head: VQA, classify)",
    "blip2": "BLIP-2, OPT LM (captioning, VQA)",
    "blip2_t5": "BLIP-2, T5 LM (VQA)",
    "instructblip": "InstructBLIP, Llama LM (captioning, VQA)",
    "paligemma": "PaliGemma (captioning, VQA)",
    "idefics3": "Idefics3 / SmolVLM (chat VQA)",
    "llava_next": "LLaVA-NeXT (chat VQA)",
    "qwen2_vl": "Qwen2-VL (chat VQA, no torchvision)",
}
COLUMNS = (
    "full",
    "lora",
    "adapter",
    "adapter-parallel",
    "prefix",
    "prompt",
    "ia3",
    "adalink",
    "pt_lora",
    "pt_adapter",
)
# the methods whose exact counts test_zoo_sites.py computes by hand (not full: it trains all)
COUNTED = (
    "lora",
    "adapter",
    "adapter-parallel",
    "prefix",
    "prompt",
    "ia3",
    "adalink",
    "pt_lora",
    "pt_adapter",
)
TRAINS = "test_every_method_trains_and_reloads"
TOWERS = "test_peft_lowers_the_loss_and_leaves_the_other_towers_exactly_unchanged"
TEXT_LMS = "test_peft_lowers_the_loss_on_text_lms"
FULL = "test_full_fine_tuning_lowers_the_loss_and_moves_every_tower"
ENCODER_LOSS = "test_every_method_lowers_the_encoder_loss_over_20_steps"


def _trained_counts() -> tuple:
    """The columns whose whole trained count test_towers_untouched.py checks by hand."""
    from tests.training.test_towers_untouched import COUNTED as TRAINED_COUNTED

    return TRAINED_COUNTED


def _encoder_rows() -> dict:
    """test_loss_decrease_text.py's encoder parameter -> table row (bert_mlm -> bert ...)."""
    from tests.training.test_loss_decrease_text import ENCODERS

    return dict(ENCODERS)


class _Collector:
    """Outcome of every test call, keyed by (test function, its parameters)."""

    def __init__(self):
        self.results: dict[tuple, tuple[bool, str]] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.when == "call" or (report.when == "setup" and not report.passed):
            params = dict(getattr(getattr(item, "callspec", None), "params", {}) or {})
            key = (item.originalname, params.get("arch"), params.get("method"))
            reason = "" if report.passed else " ".join(str(report.longrepr).split())[-160:]
            self.results[key] = (report.passed, reason)


class _Collected:
    """Every collected test call counted as passed: the table if all of them passed."""

    def __init__(self):
        self.results: dict[tuple, tuple[bool, str]] = {}

    def pytest_collection_modifyitems(self, session, config, items):
        for item in items:
            params = dict(getattr(getattr(item, "callspec", None), "params", {}) or {})
            self.results[(item.originalname, params.get("arch"), params.get("method"))] = (True, "")


def collect() -> dict:
    """The (test function, arch, method) keys of every test the table reads, collected, not run."""
    import contextlib
    import io

    collected = _Collected()
    with contextlib.redirect_stdout(io.StringIO()) as out:  # the collected ids: not the table
        code = pytest.main(
            ["-q", "--collect-only", "-p", "no:cacheprovider", *TESTS], plugins=[collected]
        )
    if code != 0:
        print(out.getvalue()[-3000:], file=sys.stderr)
    if code != 0 or not collected.results:
        raise RuntimeError(f"collecting the table's tests failed (pytest exit {code})")
    return collected.results


def problems(res: dict) -> list[str]:
    """Where the tests' parametrization and the table's rows / columns disagree (one line each)."""
    trained = {(a, m) for (name, a, m) in res if name == TRAINS}
    out = []
    for arch in sorted({a for a, _ in trained} - set(ROWS)):
        out.append(f"{TRAINS} trains architecture {arch!r}, which has no row (ROWS)")
    for column in sorted({m for _, m in trained} - set(COLUMNS)):
        out.append(f"{TRAINS} trains method {column!r}, which has no column (COLUMNS)")
    for name, a, m in sorted(res, key=str):
        if (
            name in (TOWERS, TEXT_LMS, FULL, "test_trainable_counts_and_identity_at_init")
            and a not in ROWS
        ):
            out.append(f"{name} covers architecture {a!r}, which has no row (ROWS)")
        if name == ENCODER_LOSS and _encoder_rows().get(a) not in ROWS:
            out.append(f"{name} covers encoder {a!r}, which maps to no row (ENCODERS)")
    for arch in ROWS:
        for column in COLUMNS:
            if (TRAINS, arch, column) not in res:
                out.append(f"{arch} x {column}: no {TRAINS} test (a row or column with no test)")
    return out


def _cell(res: dict, arch: str, column: str, notes: list[str]) -> str:
    checks = [(TRAINS, arch, column)]
    marks = []
    if column == "full":
        checks.append(("test_full_fine_tuning_lowers_the_loss", arch, None))
        if (FULL, arch, None) in res:
            checks.append((FULL, arch, None))
            marks.append("↓")
    for name, mark in ((TOWERS, "↓ =1"), (TEXT_LMS, "↓")):
        if (name, arch, column) in res:
            checks.append((name, arch, column))
            marks.append(mark + (" #" if column in _trained_counts() else ""))
    if arch == "t5" and ("test_every_method_lowers_the_t5_loss_over_20_steps", None, column) in res:
        checks.append(("test_every_method_lowers_the_t5_loss_over_20_steps", None, column))
        marks.append("↓")
    own = ("test_every_method_trains_its_own_parameters_beside_the_new_head", None, column)
    if arch == "roberta" and own in res:
        checks.append(own)
    encoders = [(ENCODER_LOSS, p, column) for p, row in _encoder_rows().items() if row == arch]
    if encoders and all(c in res for c in encoders):
        checks += encoders
        marks.append("↓")
    if column in COUNTED and ("test_trainable_counts_and_identity_at_init", arch, None) in res:
        checks.append(("test_trainable_counts_and_identity_at_init", arch, None))
        marks.append("#")
    missing = [c for c in checks if c not in res]
    if missing and checks[0] in missing:
        return "not tested"
    failed = [(c, res[c][1]) for c in checks if c in res and not res[c][0]]
    if failed:
        for (name, a, m), why in failed:
            notes.append(f"- {arch} × {column}: `{name}` failed: {why}")
        return "✗"
    marks = sorted(set(" ".join(marks).split()), key=("↓", "=1", "#").index)
    return "trains" + (" " + " ".join(marks) if marks else "")


def render(res: dict) -> str:
    notes: list[str] = []
    head = "| architecture (task recipe) | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for arch, label in ROWS.items():
        lines.append(
            f"| {label} | " + " | ".join(_cell(res, arch, c, notes) for c in COLUMNS) + " |"
        )
    import torch
    import transformers

    out = [
        f"Generated by `python -m tests.training.method_table` from the tests it names "
        f"(transformers {transformers.__version__}, torch {torch.__version__}); do not edit by hand. "
        "`trains` = trains 2 steps, evaluates (cached = uncached decoding) and reloads to "
        "bit-identical losses (full FT also lowers the loss); `↓` = the loss falls over 20 "
        "steps on a fixed batch (BERT: on a bare and a `ForMaskedLM` folder; BERT and RoBERTa: "
        "the method's own parameters carry part of the drop, not only the new head; PT-PEFT: "
        "over both stages, 10 + 10 steps, and within stage 2 too, the stage-2 LoRA / adapter "
        "weights leaving their zero init); `=1` = `compare base RUN` gives CKA exactly 1 on the untouched vision tower "
        "(and Q-Former) and < 1 on the language model -- not claimed for full, whose recipe "
        "trains every weight (`freeze_vision=False`), the vision tower and Q-Former included "
        "(checked: CKA < 1 there too); `#` = exact trainable count by hand from the model's "
        "dimensions (PT-PEFT: prefix + LoRA / adapter, trained over both stages) and identity "
        "at init where promised (not by PT-PEFT: its prefix changes the outputs). "
        '`adapter-parallel` = `placement="parallel"` (feed-forward side).',
        "",
        *lines,
    ]
    if notes:
        out += ["", "Failures:", "", *notes]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stdout", action="store_true", help="print the table instead of writing it")
    p.add_argument(
        "--expected",
        action="store_true",
        help="print the table every cell would get if all its tests passed (collects the "
        "tests without running them: seconds) and any row / column / coverage problem",
    )
    p.add_argument(
        "-k",
        default=None,
        help="pytest -k expression: a partial table, for a quick look (--stdout only)",
    )
    args = p.parse_args(argv)
    if args.k and not args.stdout:
        p.error("-k makes a partial table: use it with --stdout")
    if args.expected:
        res = collect()
        print(render(res))
        for line in problems(res):
            print(f"problem: {line}", file=sys.stderr)
        return 1 if problems(res) else 0
    collector = _Collector()
    code = pytest.main(
        ["-q", "-p", "no:cacheprovider", *(["-k", args.k] if args.k else []), *TESTS],
        plugins=[collector],
    )
    if not collector.results:
        print(f"no test ran (pytest exit {code})", file=sys.stderr)
        return 2
    table = render(collector.results)
    if not args.k and problems(collector.results):
        print("\n".join(problems(collector.results)), file=sys.stderr)
        return 2
    if args.stdout:
        print(table)
        return 0
    text = DOC.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{DOC}: markers {START} / {END} not found", file=sys.stderr)
        return 2
    i, j = text.index(START) + len(START), text.index(END)
    DOC.write_text(text[:i] + "\n" + table + "\n" + text[j:], encoding="utf-8")
    print(f"wrote the table into {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
