"""report.md / report.html text (issue 27): an ampersand reads as one, no ``-0.0000``, bidi
controls in user-supplied names shown escaped, and the ceiling of every rank stated."""

import numpy as np
import pytest

from repspace.report import CheckpointInfo, CompareResult, write_report
from repspace.report.summary import _pm, rank_bound, summarize
from repspace.report.tables import _fmt, md_text
from repspace.report.writer import _h, _with_interval

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_an_ampersand_stays_one_in_markdown_but_entities_and_tags_do_not_work():
    assert md_text("effective rank, Roy & Vetterli") == "effective rank, Roy & Vetterli"
    # entities are shown as typed, not decoded ("#" is markdown-escaped, which also does it)
    assert md_text("a &amp; b &#60; c") == "a &amp;amp; b &\\#60; c"
    assert md_text("<img src=x>") == "&lt;img src=x&gt;"


def test_bidi_controls_are_shown_escaped_in_markdown_and_html():
    for text in (md_text(f"lora-{BIDI}x"), _h(f"lora-{BIDI}x")):
        assert not any(c in text for c in BIDI)
        assert "\\u202e" in text and "\\u2066" in text and "\\u2069" in text


def test_no_negative_zero_in_any_table_cell():
    assert _fmt(-0.00001) == "0.0000" and _fmt(-0.2) == "-0.2000"
    assert _with_interval(-0.0001, None) == "0.000"
    assert _pm(-0.0001, None, 3) == "0.000" and _pm(-0.5, None, 1) == "-0.5"


@pytest.fixture
def result():
    rng = np.random.default_rng(0)
    layers = [f"encoder.layer.{i}" for i in range(2)]
    metrics = {
        f"lora-{BIDI}": {
            layer: {
                "linear_cka": float(rng.uniform(0.8, 1)),
                "effective_rank_base": 40.0,
                "effective_rank_tuned": 38.0,
                "frechet_distance": -0.0,
            }
            for layer in layers
        }
    }
    return CompareResult(
        base=CheckpointInfo("base", "/m/base", "hf", "ab" * 32),
        tuned=[CheckpointInfo(f"lora-{BIDI}", "/c/lora", "peft", "cd" * 32)],
        layers=layers,
        metrics=metrics,
        settings={"pooling": "mean"},
        probe={"source": "built-in", "num_samples": 256},
    )


def test_the_rank_ceiling_is_stated(result):
    assert "no layer can exceed 255" in rank_bound(result)
    assert "min(n − 1, d)" in summarize(result)
    result.settings["pooling"] = "tokens"  # rows are tokens: no number of samples to quote
    assert "255" not in rank_bound(result) and "min(n − 1, d)" in rank_bound(result)
    without = CompareResult(
        base=result.base,
        tuned=result.tuned,
        layers=result.layers,
        metrics={n: {la: {"linear_cka": 0.9} for la in result.layers} for n in result.metrics},
    )
    assert rank_bound(without) == ""


def test_written_report_text(result, tmp_path):
    out = write_report(result, tmp_path / "r", plots=("effective_rank",))
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    for text in (md, html):
        assert not any(c in text for c in BIDI)
        assert "-0.0000" not in text and "-0.000 " not in text
        assert "no layer can exceed 255" in text
    assert "&amp;" not in md.replace("&amp;amp;", "")  # no entity-escaped ampersands in md
    assert "Roy & Vetterli" in md  # the effective-rank figure's caption
