"""The study's seed baseline through the real compare: two LoRA seeds compared with each
other (seed a's adapter on the base side, seed b's applied onto the base), checked against
mean-pooled hidden states of two explicitly loaded PeftModels."""

import os
from types import SimpleNamespace

import pytest
import torch

from repspace.metrics import linear_cka
from repspace.study import StudyConfig
from repspace.study.seed_baseline import seed_baseline
from tests.compare.conftest import SENTENCES, train_lora, word_tokenizer


def pooled_blocks(base_dir, adapter):
    from peft import PeftModel
    from transformers import AutoModel

    model = PeftModel.from_pretrained(AutoModel.from_pretrained(base_dir), adapter).eval()
    enc = word_tokenizer()(
        SENTENCES, padding=True, truncation=True, max_length=64, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states[1:]
    mask = enc["attention_mask"][..., None].double()
    return [(h.double() * mask).sum(1) / mask.sum(1) for h in hidden]


def test_two_lora_seeds_compared_with_each_other(base_dir, probe_file, tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        train_lora(base_dir, runs / f"lora-s{seed}", steps=10, seed=seed)
    cfg = StudyConfig.from_dict(
        {
            "name": "sb",
            "methods": ["lora"],
            "base": str(base_dir),
            "seeds": [0, 1],
            "compare": {"probe": str(probe_file), "num_samples": len(SENTENCES)},
        }
    )

    def record(seed, cka):
        return {
            "label": f"vqa-lora-s{seed}",
            "key": f"k{seed}",
            "run_dir": os.path.relpath(runs / f"lora-s{seed}", tmp_path),
            "cell": {
                "task": "vqa",
                "method": "lora",
                "budget_field": None,
                "budget": None,
                "data_fraction": 1.0,
                "seed": seed,
            },
            "layers": [f"encoder.layer.{i}" for i in range(3)],
            "metrics": {f"encoder.layer.{i}": {"linear_cka": cka} for i in range(3)},
        }

    result = SimpleNamespace(
        records=[record(0, 0.9), record(1, 0.8)],
        config=cfg,
        output_dir=tmp_path,
        files={},
        notes=[],
    )
    rows = seed_baseline(result)
    assert [r["layer"] for r in rows] == [f"encoder.layer.{i}" for i in range(3)], result.notes
    xs, ys = pooled_blocks(base_dir, runs / "lora-s0"), pooled_blocks(base_dir, runs / "lora-s1")
    for row, x, y in zip(rows, xs, ys):
        assert row["cka_seed_to_seed"] == pytest.approx(linear_cka(x, y), abs=1e-6)
        assert row["cka_seed_to_seed"] < 1 - 1e-6  # two seeds do differ
        assert row["cka_base_to_tuned"] == pytest.approx(0.85)
        assert row["movement_ratio"] == pytest.approx(0.15 / (1 - row["cka_seed_to_seed"]))
