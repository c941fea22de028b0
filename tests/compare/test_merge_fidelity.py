"""Merge fidelity: a LoRA merged in float32 / float16 / bfloat16 against the unmerged float32
model, checked against explicit merges of the adapter's factors and explicit forwards."""

import json
import math

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model

from repspace.cli import main
from repspace.compare.merge_fidelity import (
    can_merge,
    merge_fidelity,
    merge_matrix_errors,
    merged_copy,
    parse_merge_dtypes,
)
from tests.compare.conftest import SENTENCES, tiny_bert, word_tokenizer

NAME = "encoder.layer.1.attention.self.query"


def lora_model(b_std=0.02, seed=0):
    torch.manual_seed(seed)
    model = get_peft_model(
        tiny_bert(), LoraConfig(r=4, lora_alpha=16, target_modules=["query", "value"])
    )
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, b_std)
    return model.eval()


def batches():
    tok = word_tokenizer()
    data = [
        dict(tok(SENTENCES[i : i + 8], padding=True, return_tensors="pt"))
        for i in range(0, len(SENTENCES), 8)
    ]
    return lambda: iter(data)


def factors(model, name=NAME):
    mod = dict(model.named_modules())[f"base_model.model.{name}"]
    w0 = mod.base_layer.weight.detach().double()
    dw = (
        mod.lora_B["default"].weight.detach().double()
        @ mod.lora_A["default"].weight.detach().double()
    )
    return w0, dw * mod.scaling["default"]


def pooled(model):
    out = []
    for batch in batches()():
        with torch.no_grad():
            hs = model(**batch, output_hidden_states=True).hidden_states[1:]
        m = batch["attention_mask"][..., None].double()
        out.append([(h.double() * m).sum(1) / m.sum(1) for h in hs])
    return [torch.cat(layer) for layer in zip(*out)]


@pytest.fixture(scope="module")
def model():
    return lora_model()


@pytest.fixture(scope="module")
def fidelity(model):
    return merge_fidelity(model, batches(), ["float32", "float16", "bfloat16"])


def test_matrix_errors_against_the_adapter_factors(model):
    w0, dw = factors(model)
    for dtype, dt in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        merged = merged_copy(model, dtype)
        wm = merged.encoder.layer[1].attention.self.query.weight.detach()
        assert wm.dtype == dt
        wm = wm.double()
        row = merge_matrix_errors(model, merged)[NAME]
        dn = float(torch.linalg.norm(dw))
        assert row["delta_norm"] == pytest.approx(dn, rel=1e-6)  # float32 factors vs float64 probe
        assert row["merge_error"] == pytest.approx(
            float(torch.linalg.norm(wm - w0 - dw)) / dn, rel=1e-3, abs=1e-9
        )
        w0r = w0.to(dt).double()
        assert row["update_error"] == pytest.approx(
            float(torch.linalg.norm(wm - w0r - dw)) / dn, rel=1e-3, abs=1e-9
        )
        assert row["base_rounding"] == pytest.approx(
            float(torch.linalg.norm(w0r - w0)) / dn, rel=1e-9, abs=1e-12
        )
        nz = dw != 0
        assert row["absorbed_fraction"] == pytest.approx(float(((wm == w0r) & nz).sum() / nz.sum()))
    assert set(merge_matrix_errors(model, merged_copy(model, "float32"))) == {
        f"encoder.layer.{i}.attention.self.{m}" for i in range(3) for m in ("query", "value")
    }


def test_float32_merge_is_faithful_and_bfloat16_is_not(fidelity):
    f32, bf16 = fidelity["float32"], fidelity["bfloat16"]
    assert f32.summary["max_merge_error"] < 1e-6 and f32.summary["max_relative_shift"] < 1e-6
    assert f32.summary["min_linear_cka"] > 1 - 1e-10
    assert bf16.summary["median_merge_error"] > 1e-3 and bf16.summary["max_relative_shift"] > 1e-4
    assert bf16.summary["min_linear_cka"] < 1 - 1e-8
    f16 = fidelity["float16"]  # 3 more mantissa bits than bfloat16: about 8x less damage
    assert (
        f32.summary["max_relative_shift"]
        < f16.summary["max_relative_shift"]
        < bf16.summary["max_relative_shift"] / 3
    )
    assert list(f32.layers) == [f"encoder.layer.{i}" for i in range(3)]
    # the float32 control (rounding to float32 changes nothing) is exact
    assert all(r["cast_relative_shift_mean"] == 0 for r in f32.layers.values())


def test_layer_drift_against_explicit_forwards(model, fidelity):
    from repspace.metrics import linear_cka

    ref = pooled(model)
    got = pooled(merged_copy(model, "bfloat16").float())
    for (layer, row), x, y in zip(fidelity["bfloat16"].layers.items(), ref, got):
        shift = ((y - x).norm(dim=1) / x.norm(dim=1)).mean().item()
        assert row["relative_shift_mean"] == pytest.approx(shift, rel=1e-4)
        assert row["linear_cka"] == pytest.approx(linear_cka(x, y), abs=1e-9)


def test_a_small_update_is_rounded_away_in_bfloat16():
    tiny = lora_model(b_std=1e-5)
    row = merge_matrix_errors(tiny, merged_copy(tiny, "bfloat16"))[NAME]
    assert row["update_error"] > 0.5 and row["absorbed_fraction"] > 0.5
    row32 = merge_matrix_errors(tiny, merged_copy(tiny, "float32"))[NAME]
    assert row32["update_error"] < 1e-2 and row32["absorbed_fraction"] < 0.05


def test_the_model_is_untouched(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    merged_copy(model, "bfloat16")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert dict(model.named_modules())[f"base_model.model.{NAME}"].merged is False


def test_refusals():
    assert "nothing to merge" in can_merge(tiny_bert())
    with pytest.raises(ValueError, match="cannot merge: not a PEFT model"):
        merged_copy(tiny_bert(), "bfloat16")
    with pytest.raises(
        ValueError, match="--merge-dtype: 'int8'; give comma-separated dtypes from float32"
    ):
        parse_merge_dtypes("bfloat16,int8")
    with pytest.raises(ValueError, match="nothing given"):
        parse_merge_dtypes(" , ")
    assert parse_merge_dtypes("bfloat16, float16,bfloat16") == ["bfloat16", "float16"]


def test_cli(base_dir, lora_dir, probe_file, tmp_path, capsys):
    from transformers import BertModel

    full = tmp_path / "full-ft"
    ft = BertModel.from_pretrained(base_dir, local_files_only=True)
    with torch.no_grad():
        ft.encoder.layer[1].output.dense.weight.mul_(1.1)
    ft.save_pretrained(full)
    out = tmp_path / "w"
    assert (
        main(
            [
                str(a)
                for a in (
                    "weights",
                    base_dir,
                    lora_dir,
                    full,
                    "-o",
                    out,
                    "--merge-dtype",
                    "float32,bfloat16",
                    "--probe",
                    probe_file,
                    "--num-samples",
                    16,
                )
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "lora-r4: merged in bfloat16: min CKA" in printed and "merge_fidelity.pdf" in printed
    data = json.loads((out / "weights.json").read_text())
    fid = data["checkpoints"]["lora-r4"]["merge_fidelity"]
    assert list(fid) == ["float32", "bfloat16"] and data["settings"]["merge_dtypes"] == [
        "float32",
        "bfloat16",
    ]
    assert fid["float32"]["summary"]["max_relative_shift"] < 1e-6
    assert fid["bfloat16"]["summary"]["max_relative_shift"] > 1e-4
    assert "nothing to merge" in data["checkpoints"]["full-ft"]["merge_fidelity_note"]
    md = (out / "weights.md").read_text()
    assert "Merge fidelity" in md and "| bfloat16 | encoder.layer.2 |" in md
    assert (out / "merge_fidelity.pdf").is_file() and (out / "merge_fidelity.png").is_file()
    assert all(math.isfinite(r["linear_cka"]) for r in fid["bfloat16"]["layers"].values())
    assert (
        main(
            [
                "weights",
                str(base_dir),
                str(lora_dir),
                "-o",
                str(tmp_path / "x"),
                "--merge-dtype",
                "fp8",
            ]
        )
        != 0
    )
    err = capsys.readouterr().err  # the settings' one vocabulary, named as the option
    assert "--merge-dtype must be dtypes from float32, float16, bfloat16; got 'fp8'" in err
    assert not (tmp_path / "x").exists()
    assert np.isfinite(fid["bfloat16"]["summary"]["median_update_error"])
