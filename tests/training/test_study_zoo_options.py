"""Issue 18 in a study grid: a real study (train + compare) on zoo LMMs / T5 with the parallel
adapter and "PEFT + head" set through ``[options.<method>]``; compare sees the towers a
method leaves alone unchanged (CKA exactly 1) and the tuned tower moved (CKA < 1)."""

import warnings

import pytest
import torch

from repspace.study import StudyConfig, run_study

from tests.compat import zoo

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
COMPARE = {"num_samples": 12, "batch_size": 12, "sample_rows": 12}
TRAIN = {"steps": 3, "batch_size": 8, "n_train": 2, "n_eval": 1, "lr": 0.05}


def _base(tmp_path, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return str(zoo.save(name, tmp_path / name))


def test_parallel_adapter_and_peft_head_in_a_study_grid(tmp_path):
    # METHOD@VARIANT: two option sets of one method in one grid (serial vs parallel, PEFT vs + head)
    data = {
        "name": "opts",
        "base": _base(tmp_path, "t5"),
        "methods": ["base", "adapter", "adapter@parallel", "lora@head"],
        "options": {
            "adapter": {"width": 2},
            "adapter@parallel": {"placement": "parallel", "width": 2},
            "lora@head": {"r": 2, "train_head": True},
        },
        "compare": COMPARE,
        **TRAIN,
    }
    result = run_study(StudyConfig.from_dict(data), tmp_path / "out", progress=False)
    assert not result.failed, result.failed
    by = {r["cell"]["method"]: r for r in result.records}
    site = 2 * 32 * 2 + 2 + 32
    assert (
        by["adapter"]["params"]["trainable"] == 10 * site
    )  # after 6 attention + 4 feed-forward outputs
    assert (
        by["adapter@parallel"]["params"]["trainable"] == 4 * site
    )  # one per feed-forward sublayer
    head = zoo.vocab_of(zoo.t5_tokenizer()) * 32  # lm_head (vocab x d_model; tied to the embedding)
    assert (
        by["lora@head"]["params"]["trainable"] == 12 * 2 * 64 + head
    )  # LoRA on 12 maps + the head
    for method in ("adapter", "adapter@parallel", "lora@head"):
        ckas = [m["linear_cka"] for m in by[method]["metrics"].values()]
        assert all(c <= 1 + 1e-9 for c in ckas) and min(ckas) < 1 - 1e-6, (method, ckas)


def test_compare_sees_untouched_towers_unchanged(tmp_path):
    data = {
        "name": "towers",
        "base": _base(tmp_path, "paligemma"),
        "methods": ["lora"],
        "options": {"lora": {"r": 4}},
        "compare": dict(COMPARE, layers="blocks"),
        **TRAIN,
    }
    result = run_study(StudyConfig.from_dict(data), tmp_path / "out", progress=False)
    assert not result.failed, result.failed
    metrics = result.records[0]["metrics"]
    vision = {n: m["linear_cka"] for n, m in metrics.items() if "vision_tower" in n}
    text = {n: m["linear_cka"] for n, m in metrics.items() if "language_model" in n}
    assert vision and text, list(metrics)
    assert all(c == pytest.approx(1.0, abs=1e-9) for c in vision.values()), (
        vision
    )  # LoRA: text tower only
    assert min(text.values()) < 1 - 1e-6, text
    assert torch.isfinite(torch.tensor(list(text.values()))).all()
