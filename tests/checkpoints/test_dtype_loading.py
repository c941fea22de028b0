"""Loading like the ecosystem: --dtype auto keeps each checkpoint's own dtype (recorded), a
float32 upcast on request, a note where half-precision matmuls are slow, and quantized bases
(QLoRA adapters, bitsandbytes checkpoints, --load-in-4bit / -8bit) said out loud."""

import json

import pytest
import torch

from repspace.checkpoints import CheckpointError, load_checkpoint
from repspace.checkpoints import precision
from repspace.checkpoints.precision import (
    check_dtype,
    config_dtype,
    slow_matmul_note,
    weights_dtype,
)
from repspace.checkpoints.quantization import bnb_config, check_quantization, qlora_reason
from repspace.cli import main
from tests.compare.conftest import SENTENCES, tiny_bert, word_tokenizer

FAST = [
    "--embedding",
    "none",
    "--quiet",
    "--sample-rows",
    "16",
    "--num-samples",
    "24",
    "--batch-size",
    "12",
    "--no-report",
]


def _save(model, folder, dtype=None):
    (model.to(dtype) if dtype is not None else model).save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def probe_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "probe.txt"
    path.write_text("\n".join(SENTENCES))
    return path


@pytest.fixture(scope="module")
def bf16_dir(tmp_path_factory):
    return _save(tiny_bert(), tmp_path_factory.mktemp("bf16") / "bert-bf16", torch.bfloat16)


@pytest.fixture(scope="module")
def fp32_dir(tmp_path_factory):
    return _save(tiny_bert(seed=1), tmp_path_factory.mktemp("fp32") / "bert-fp32")


@pytest.fixture(scope="module")
def lora_bf16_dir(bf16_dir, tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    model = get_peft_model(
        AutoModel.from_pretrained(bf16_dir, dtype=torch.float32),
        LoraConfig(r=4, target_modules=["query", "value"], init_lora_weights=False),
    )
    out = tmp_path_factory.mktemp("adapters") / "lora-bf16"
    model.save_pretrained(out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(bf16_dir)
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    return out


def test_config_dtype_reads_torch_dtype_dtype_and_sub_configs():
    assert config_dtype({"torch_dtype": "bfloat16"}) == "bfloat16"
    assert config_dtype({"dtype": "float16", "torch_dtype": "float32"}) == "float16"
    assert config_dtype({"model_type": "bert"}) == "float32"  # none recorded: float32
    assert config_dtype({"text_config": {"dtype": "bfloat16"}, "vision_config": {}}) == "bfloat16"
    assert (
        config_dtype({"text_config": {"dtype": "bfloat16"}, "vision_config": {"dtype": "float32"}})
        == "float32"
    )  # disagree
    assert check_dtype(None) == "auto" and check_dtype(torch.bfloat16) == "bfloat16"
    with pytest.raises(ValueError, match=r"^--dtype: 'int8' is not a weights dtype"):
        check_dtype("int8")


def test_auto_keeps_the_checkpoint_dtype_and_float32_upcasts(bf16_dir, fp32_dir):
    auto = load_checkpoint(bf16_dir, dtype="auto").model
    assert {p.dtype for p in auto.parameters()} == {torch.bfloat16}
    assert weights_dtype(auto) == "bfloat16"
    up = load_checkpoint(bf16_dir, dtype="float32").model
    assert {p.dtype for p in up.parameters()} == {torch.float32}
    assert weights_dtype(load_checkpoint(fp32_dir, dtype="auto").model) == "float32"
    # the loader's own default (training, `repspace layers`) stays float32
    assert weights_dtype(load_checkpoint(bf16_dir).model) == "float32"
    # the bf16 weights are the saved ones, not a round trip through another dtype
    from safetensors.torch import load_file

    saved = load_file(bf16_dir / "model.safetensors")
    key = next(k for k in saved if k.endswith("query.weight"))
    assert torch.equal(dict(auto.named_parameters())[key], saved[key])


def test_adapter_base_in_its_own_dtype_adapter_weights_do_not_change_it(lora_bf16_dir):
    ck = load_checkpoint(lora_bf16_dir, dtype="auto")
    assert weights_dtype(ck.model) == "bfloat16"  # peft keeps the LoRA weights in float32


def test_compare_records_the_dtypes_and_compares_mixed_dtypes(
    bf16_dir, fp32_dir, probe_file, capsys, monkeypatch
):
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx512_bf16"})  # no note here
    rc = main(
        [str(a) for a in ("compare", bf16_dir, fp32_dir, "--probe", probe_file, "--json", *FAST)]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    rep = json.loads(out)
    st = rep["settings"]
    assert st["dtype"] == "auto"
    assert st["weights_dtype"] == {"base": "bfloat16", "tuned1": "float32"}
    ckas = [r["metrics"]["linear_cka"] for r in rep["results"]]
    assert len(ckas) == 3 and all(0 < c <= 1 + 1e-9 for c in ckas)
    assert not any("matrix multiply" in w for w in rep["warnings"])


def test_float32_default_models_give_the_numbers_they_gave(fp32_dir, probe_file):
    from repspace.compare import compare

    kw = dict(
        probe=str(probe_file),
        num_samples=24,
        batch_size=12,
        embedding="none",
        progress=False,
        sample_rows=16,
    )
    auto = compare(str(fp32_dir), [str(fp32_dir)], **kw)
    up = compare(str(fp32_dir), [str(fp32_dir)], dtype="float32", **kw)
    assert auto.settings["weights_dtype"] == up.settings["weights_dtype"] == "float32"
    assert auto.settings["dtype"] == "auto" and up.settings["dtype"] == "float32"
    assert auto.metrics == up.metrics


def test_slow_bf16_matmuls_are_said_once_and_recorded(bf16_dir, probe_file, monkeypatch):
    from repspace.compare import compare

    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2", "fma"})
    result = compare(
        str(bf16_dir),
        [str(bf16_dir)],
        probe=str(probe_file),
        num_samples=24,
        batch_size=12,
        embedding="none",
        progress=False,
        sample_rows=16,
    )
    notes = [w for w in result.warnings if "matrix multiply" in w]
    assert len(notes) == 1 and "no fast bfloat16" in notes[0] and "AVX512-BF16" in notes[0]
    assert result.settings["weights_dtype"] == "bfloat16"  # kept, not upcast
    assert slow_matmul_note(["float32"], "cpu") is None
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"amx_bf16"})
    assert slow_matmul_note(["bfloat16"], "cpu") is None
    monkeypatch.setattr(precision, "_cpu_flags", lambda: None)  # unknown: nothing said
    assert slow_matmul_note(["bfloat16"], "cpu") is None


@pytest.mark.parametrize(
    "flags,which", [(["--load-in-4bit"], "--load-in-4bit"), (["--load-in-8bit"], "--load-in-8bit")]
)
def test_load_in_kbit_without_bitsandbytes_or_cuda_is_one_line(
    flags, which, fp32_dir, capsys, monkeypatch, tmp_path
):
    from repspace.checkpoints import quantization

    monkeypatch.setattr(
        quantization,
        "bnb_usable",
        lambda: (
            "bitsandbytes cannot be imported "
            "(No module named 'bitsandbytes'); install it (pip install bitsandbytes) "
            "on a machine with a CUDA GPU"
        ),
    )
    rc = main(["compare", str(fp32_dir), str(fp32_dir), "-o", str(tmp_path / "r"), *flags])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"repspace compare: error: {which}: bitsandbytes cannot be imported")
    assert "pip install bitsandbytes" in err and "leave the flag out" in err
    assert not (tmp_path / "r").exists()


def test_load_in_kbit_checks():
    with pytest.raises(ValueError, match="--load-in-4bit and --load-in-8bit: choose one"):
        check_quantization(True, True)
    assert check_quantization(False, False) is None
    try:
        import bitsandbytes  # noqa: F401

        usable = torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        usable = False
    if not usable:  # the real check on this machine (no GPU in CI)
        with pytest.raises(ValueError, match=r"^--load-in-4bit: .*(bitsandbytes|CUDA)"):
            check_quantization(True, False)
    cfg = bnb_config("4bit", torch.bfloat16)
    assert cfg.load_in_4bit and cfg.bnb_4bit_quant_type == "nf4"
    assert cfg.bnb_4bit_compute_dtype == torch.bfloat16 and bnb_config("8bit").load_in_8bit


def test_qlora_adapter_is_compared_on_its_base_in_bf16_with_a_note(fp32_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    model = get_peft_model(
        AutoModel.from_pretrained(fp32_dir),
        LoraConfig(r=4, target_modules=["query"], init_lora_weights=False),
    )
    out = tmp_path / "qlora"
    model.save_pretrained(out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "unsloth/tiny-bert-bnb-4bit"  # as QLoRA bases are named
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    assert (
        qlora_reason(cfg, None) == "its recorded base unsloth/tiny-bert-bnb-4bit is a 4-bit model"
    )
    with pytest.warns(
        UserWarning,
        match=r"QLoRA adapter .* compared on the unquantized base in "
        r"bfloat16: the numbers are the adapter's effect",
    ):
        ck = load_checkpoint(out, base=fp32_dir, dtype="auto")
    assert weights_dtype(ck.model) == "bfloat16"
    with pytest.warns(UserWarning, match="in float32"):  # an explicit dtype is kept
        assert (
            weights_dtype(load_checkpoint(out, base=fp32_dir, dtype="float32").model) == "float32"
        )


def test_a_base_stored_in_bitsandbytes_4bit_is_refused_with_the_levers(
    fp32_dir, tmp_path, monkeypatch
):
    import shutil

    from repspace.checkpoints import quantization

    monkeypatch.setattr(
        quantization,
        "bnb_usable",
        lambda: "there is no CUDA device on this machine, and bitsandbytes quantizes on one",
    )
    folder = tmp_path / "bert-bnb-4bit"
    shutil.copytree(fp32_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["quantization_config"] = {
        "quant_method": "bitsandbytes",
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
    }
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        CheckpointError,
        match=r"stored quantized \(bitsandbytes 4-bit\) and there "
        r"is no CUDA device.*--base-override",
    ):
        load_checkpoint(folder, dtype="auto")
