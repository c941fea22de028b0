"""Report writing: every file exists, parses, and says what the data says."""

import csv
import html as html_lib
import json
import math

import numpy as np
import pytest

from repspace.metrics import singular_values
from repspace.report import CheckpointInfo, CompareResult, summarize, terminal_table, write_report
from repspace.report.plots import short_layer_names
from repspace.report.style import METHOD_COLORS, color_for
from repspace.statistics import LayerwiseMoments


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(0)
    layers = [f"encoder.layer.{i}" for i in range(3)]
    base = {k: rng.standard_normal((200, 16)) * np.linspace(2, 0.2, 16) for k in layers}
    tuned_sets = {
        "lora-r4": {
            k: v + 2.0 * (v @ rng.standard_normal((16, 1))) @ rng.standard_normal((1, 16))
            for k, v in base.items()
        },
        "prefix-10": {k: v + 0.01 * rng.standard_normal(v.shape) for k, v in base.items()},
    }
    metrics, spectra = {}, {"base-model": {layers[-1]: singular_values(base[layers[-1]])}}
    for name, tuned in tuned_sets.items():
        acc = LayerwiseMoments()
        acc.update(base, tuned)
        metrics[name] = {b: row for (b, _), row in acc.compute().items()}
        spectra[name] = {layers[-1]: singular_values(tuned[layers[-1]])}
    emb = {
        "layer": layers[-1],
        "method": "pca",
        "points": {
            "base-model": rng.standard_normal((50, 2)),
            "lora-r4": rng.standard_normal((50, 2)),
        },
    }
    return CompareResult(
        base=CheckpointInfo("base-model", "/models/base", "hf", "ab" * 32),
        tuned=[CheckpointInfo(n, f"/ckpt/{n}", "peft", "cd" * 32) for n in tuned_sets],
        layers=layers,
        metrics=metrics,
        settings={"pooling": "mean", "seed": 0},
        probe={"source": "built-in", "num_samples": 200},
        spectra=spectra,
        embedding=emb,
    )


def test_report_folder_is_complete_and_parses(result, tmp_path):
    out = write_report(result, tmp_path / "out")
    rep = json.loads((out / "report.json").read_text())
    assert rep["schema"] == "repspace.report" and rep["schema_version"] == 1
    assert rep["packages"]["torch"] and rep["inputs"]["base"]["sha256"] == "ab" * 32
    assert len(rep["results"]) == 2 * 3
    first = rep["results"][0]["metrics"]
    assert first["linear_cka"] == pytest.approx(
        result.metrics["lora-r4"]["encoder.layer.0"]["linear_cka"]
    )
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert {r["checkpoint"] for r in rows} == {"lora-r4", "prefix-10"}
    assert {"linear_cka", "linear_cka_debiased", "effective_rank_tuned", "frechet_distance"} <= {
        r["metric"] for r in rows
    }
    assert len(rows) == sum(len(m) for t in result.metrics.values() for m in t.values())
    for name in ("cka", "effective_rank", "spectra", "drift", "embedding", "heatmap"):
        for ext in ("pdf", "png"):
            f = out / "plots" / f"{name}.{ext}"
            assert f.stat().st_size > 1000, f
    assert (out / "plots" / "cka.pdf").read_bytes().startswith(b"%PDF")
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and '<table class="full">' in html
    # every figure file's caption is in report.json, the same text as under the figure
    assert set(rep["captions"]) == {f for files in rep["plots"].values() for f in files}
    assert rep["captions"]["plots/cka.pdf"] == rep["captions"]["plots/cka.png"]
    assert rep["captions"]["plots/heatmap.png"].startswith("Linear CKA to the base base-model")
    for text in rep["captions"].values():
        assert html_lib.escape(text) in html
    md = (out / "report.md").read_text()
    assert "plots/cka.png" in md and "| checkpoint | layer |" in md
    assert not list(tmp_path.glob(".out.*"))  # no temporary folder left behind


def test_existing_output_is_not_clobbered_without_overwrite(result, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="already exists and is not a repspace report"):
        write_report(result, out)
    # --overwrite replaces only a repspace report, never a folder of someone else's files
    with pytest.raises(ValueError, match="already exists and is not a repspace report"):
        write_report(result, out, overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"
    report = tmp_path / "report"
    write_report(result, report)
    with pytest.raises(ValueError, match="already holds a repspace report; pass --overwrite"):
        write_report(result, report)
    (report / "extra.txt").write_text("x")
    write_report(result, report, overwrite=True)
    assert (report / "report.json").exists() and not (report / "extra.txt").exists()


def test_failure_midway_leaves_no_partial_folder(result, tmp_path, monkeypatch):
    import repspace.report.writer as writer

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "_html", boom)
    with pytest.raises(RuntimeError):
        write_report(result, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_summary_names_the_collapse_and_the_preservation(result):
    text = summarize(result)
    assert "lora-r4 lowered the effective rank of the last layer (layer.2)" in text
    assert "prefix-10 kept the effective rank" in text and "kept linear CKA ≥ 0.99" in text
    assert "200 probe samples" in text


def test_nan_metrics_become_null_in_json(result, tmp_path):
    result.metrics["lora-r4"]["encoder.layer.0"]["linear_cka_debiased"] = math.nan
    try:
        out = write_report(result, tmp_path / "o", plots=("cka",))
        rep = json.loads((out / "report.json").read_text())
        assert rep["results"][0]["metrics"]["linear_cka_debiased"] is None
        assert set(rep["plots"]) == {"cka"}
    finally:
        result.metrics["lora-r4"]["encoder.layer.0"]["linear_cka_debiased"] = 0.5


def test_terminal_table_and_helpers(result):
    table = terminal_table(result)
    assert table.splitlines()[0].split()[:3] == ["checkpoint", "layer", "linear_cka"]
    assert len(table.splitlines()) == 2 + 6
    assert short_layer_names(["a.b.0", "a.b.1"]) == ["b.0", "b.1"]
    assert short_layer_names(["enc.attn", "enc.mlp"]) == ["attn", "mlp"]
    assert short_layer_names(["text.layer.0", "vision.layer.0"]) == [
        "text.layer.0",
        "vision.layer.0",
    ]
    assert color_for("pt-lora-r8") == METHOD_COLORS["pt_lora"]
    assert color_for("my-lora") == METHOD_COLORS["lora"]
