"""`repspace compare --plan`: the memory of a comparison from the configs alone, no weights."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from repspace.cli import main
from repspace.compare.plan import plan_compare
from repspace.statistics.routes import break_even_rows

LLAMA_70B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 8192,
    "num_hidden_layers": 80,
    "intermediate_size": 28672,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "torch_dtype": "bfloat16",
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def llama_70b_parameters() -> int:
    """By hand: embeddings and head (untied), 80 blocks of attention (GQA: 8 of 64 heads for
    k and v), SwiGLU MLP and two RMSNorms, the final norm."""
    h, i, v, kv = 8192, 28672, 128256, 8192 // 64 * 8
    block = h * h * 2 + h * kv * 2 + 3 * h * i + 2 * h
    return 2 * v * h + 80 * block + h


@pytest.fixture
def llama_70b(tmp_path):
    """A 70B Llama-shaped config.json and an all-linear LoRA r = 16 config: no weights at all."""
    base = tmp_path / "llama-70b"
    base.mkdir()
    (base / "config.json").write_text(json.dumps(LLAMA_70B))
    lora = tmp_path / "lora-r16"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "task_type": "CAUSAL_LM",
                "base_model_name_or_path": str(base),
                "r": 16,
                "lora_alpha": 32,
                "target_modules": ALL_LINEAR,
                "bias": "none",
            }
        )
    )
    return base, lora


def test_70b_config_plans_fast_and_weights_match_the_parameter_count(llama_70b):
    base, lora = llama_70b
    # The acceptance: the CLI, a fresh process, configs only.  A Llama config is planned from
    # config.json arithmetic (plan_fast): 0.24 s for the whole command on this 2-core machine
    # at load average 2.8 once compare/cli.py tries plan_fast first and the parser is built
    # for the named command only (benchmarks/bench_plan.py; 2.4 s while every subcommand's
    # parser imports torch).  CI is a loaded 2-core machine, so the bound here has margin;
    # test_plan_fast.py asserts the command imports neither torch nor transformers.
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "repspace", "compare", str(lora), "--plan", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    wall = time.perf_counter() - started
    plan = json.loads(run.stdout)
    fits = plan["fits"]
    assert run.returncode == (0 if fits else 2), run.stderr
    if not fits:  # this machine has less than 140 GB free: one line naming the levers
        assert run.stderr.count("\n") == 1 and "--plan: this comparison needs about" in run.stderr
        assert "--device-map auto" in run.stderr and "fewer --layers" in run.stderr
    assert wall < 15, f"--plan took {wall:.1f} s"
    exact = llama_70b_parameters() * 2  # bfloat16
    base_plan, tuned_plan = plan["models"]
    assert base_plan["dtype"] == "bfloat16" and base_plan["parameters"] == llama_70b_parameters()
    assert abs(base_plan["weights_bytes"] - exact) <= 0.05 * exact
    assert tuned_plan["weights_bytes"] == 0  # one model: the adapter's, base read disabled
    # LoRA r = 16 on every linear map of the 80 blocks: r · (in + out) each
    h, i, kv = 8192, 28672, 1024
    per_block = 16 * ((h + h) * 2 + (h + kv) * 2 + (h + i) * 3)
    assert tuned_plan["adapter_parameters"] == 80 * per_block
    assert len(plan["layers"]) == 80 and {la["route"] for la in plan["layers"]} == {"rows"}
    # in-process (imports warm), the plan itself is well under the 2 s of the acceptance
    started = time.perf_counter()
    again = plan_compare(str(lora), available_bytes=1 << 50)
    assert time.perf_counter() - started < 2.0
    assert again.weights_bytes == plan["weights_bytes"] and again.fits


def test_plan_text_table_and_refusal_are_one_line_with_levers(llama_70b, capsys, monkeypatch):
    from repspace.compare import plan_core as plan_module

    base, lora = llama_70b
    monkeypatch.setattr(plan_module, "_available_ram", lambda: 64 << 30)
    rc = main(["compare", str(base), str(lora), "--plan", "--layers", "model.layers.79"])
    out, err = capsys.readouterr()
    assert rc == 2
    assert "configs read, no weights loaded" in out and "LlamaForCausalLM" in out
    assert "model.layers.79" in out and "verdict: does not fit" in out
    assert err.startswith("repspace compare: error: --plan: this comparison needs about 133 GiB")
    assert "weights 132 GiB" in err and "but this machine has 64 GiB free" in err
    assert "--dtype bfloat16" not in err  # already bfloat16: not a lever
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setattr(plan_module, "_available_ram", lambda: 1 << 40)
    assert main(["compare", str(lora), "--plan", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "float32" in out and "verdict: fits" in out and "263 GiB" in out


def test_the_route_flips_at_the_break_even_and_tokens_multiply_n(base_dir, lora_dir):
    even = break_even_rows(32, 32, 4)  # tiny BERT: p = q = 32, float32 rows
    kw = dict(available_bytes=1 << 40, layers="blocks")
    below = plan_compare(str(base_dir), [str(lora_dir)], num_samples=even - 1, **kw)
    at = plan_compare(str(base_dir), [str(lora_dir)], num_samples=even, **kw)
    assert [la.route for la in below.layers] == ["rows"] * 3
    assert [la.route for la in at.layers] == ["moments"] * 3
    assert below.layers[0].break_even == even and below.layers[0].itemsize == 4
    assert below.statistics_bytes == 3 * (even - 1) * 64 * 4
    assert at.statistics_bytes == 3 * 8 * 3 * 32 * 32
    tokens = plan_compare(
        str(base_dir), [str(lora_dir)], num_samples=4, pooling="tokens", max_length=16, **kw
    )
    assert tokens.layers[0].n == 4 * 16
    assert any("--pooling tokens: n = 4 samples × tokens" in n for n in tokens.notes)


def test_adapter_count_equals_peft_and_weights_are_never_read(base_dir, lora_dir, tmp_path):
    import shutil

    from peft import PeftModel
    from transformers import AutoModel

    loaded = PeftModel.from_pretrained(AutoModel.from_pretrained(base_dir), lora_dir)
    lora = sum(p.numel() for n, p in loaded.named_parameters() if "lora_" in n)
    plan = plan_compare(str(base_dir), [str(lora_dir)], available_bytes=1 << 40)
    base_plan, tuned_plan = plan.models
    assert tuned_plan.adapter_parameters == lora and tuned_plan.kind == "peft"
    assert base_plan.parameters == sum(p.numel() for p in loaded.parameters()) - lora
    assert plan.base_capture == "adapter_disabled" and tuned_plan.weights_bytes == 0
    # garbage where the weights are: --plan never opens them
    for folder in (base_dir, lora_dir):
        shutil.copytree(folder, tmp_path / folder.name)
    (tmp_path / base_dir.name / "model.safetensors").write_bytes(b"not weights")
    (tmp_path / lora_dir.name / "adapter_model.safetensors").write_bytes(b"not weights")
    again = plan_compare(
        str(tmp_path / base_dir.name), [str(tmp_path / lora_dir.name)], available_bytes=1 << 40
    )
    assert again.weights_bytes == plan.weights_bytes
    two = plan_compare(str(base_dir), [str(lora_dir), str(lora_dir)], available_bytes=1 << 40)
    assert two.models[1].weights_bytes == two.models[0].weights_bytes  # base loaded per adapter
    assert two.held == 2 and two.statistics_bytes == 2 * plan.statistics_bytes


@pytest.mark.parametrize(
    "arch",
    [
        "gpt2",
        "llama",
        "t5",
        "bert",
        "blip",
        "blip2",
        "llava",
        "qwen2_vl",
        "clip",
        "vit",
        "gemma2",
        "phi3",
    ],
)
def test_widths_and_counts_match_the_loaded_models(arch, tmp_path_factory):
    """What --plan says of a layer (width, count) is what compare then captures."""
    from repspace.capture import LayerCapture
    from repspace.checkpoints.loader import load_processor
    from repspace.probe import load_probe, make_batches
    from tests.compat import checks

    root = tmp_path_factory.getbasetemp() / "plan-zoo"
    paths = checks.build(arch, root)
    plan = plan_compare(
        str(paths["base"]),
        [str(paths["lora"])],
        layers=["blocks", "embeddings"],
        available_bytes=1 << 40,
    )
    model = checks.load(paths["base"])
    assert plan.models[0].parameters == sum(p.numel() for p in model.parameters())
    assert plan.models[0].weights_bytes == 4 * plan.models[0].parameters  # float32 on disk
    batch = next(
        make_batches(
            load_probe("builtin", num_samples=2),
            model,
            load_processor(str(paths["base"])),
            batch_size=2,
            max_length=16,
        )
    )
    names = [la.name for la in plan.layers]
    with LayerCapture(model, names) as cap, torch.no_grad():
        states = cap.forward(batch)
    assert {la.name: la.p for la in plan.layers} == {n: s.shape[-1] for n, s in states.items()}
    assert all(la.p == la.q for la in plan.layers)


def test_bad_input_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{not json")
    rc = main(["compare", str(empty), str(empty), "--plan"])
    err = capsys.readouterr().err
    assert rc == 2 and "config.json: not a readable JSON config" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match=r"^compare: unknown option\(s\) num_sample;"):
        plan_compare(str(empty), [str(empty)], num_sample=3)
    with pytest.raises(
        ValueError, match=r"^dtype must be auto, float32, bfloat16, float16.*; got 'int4'"
    ):
        plan_compare(str(empty), [str(empty)], dtype="int4")
    assert Path(empty / "config.json").read_text() == "{not json"


def test_the_plan_predicts_the_routes_and_bytes_compare_then_holds(tmp_path, probe_file):
    """At the break-even n the plan and the comparison itself agree, layer by layer."""
    from repspace.compare import compare
    from tests.compare.conftest import tiny_bert, word_tokenizer

    folders = []
    for seed in (0, 1):  # hidden 16: the break-even (48 rows) is inside the 72-sentence probe
        folder = tmp_path / f"bert16-{seed}"
        tiny_bert(seed=seed, hidden=16).save_pretrained(folder)
        word_tokenizer().save_pretrained(folder)
        folders.append(str(folder))
    even = break_even_rows(16, 16, 4)
    assert even == 48
    for n in (even - 1, even):
        kw = dict(num_samples=n, batch_size=16, probe=str(probe_file))
        plan = plan_compare(folders[0], folders[1:], available_bytes=1 << 40, **kw)
        done = compare(
            folders[0], folders[1:], embedding="none", progress=False, sample_rows=8, **kw
        ).settings["statistics"]
        assert done["routes"] == {la.name: la.route for la in plan.layers}
        assert done["bytes"] == plan.statistics_bytes


def test_calibrate_times_two_real_batches_and_extrapolates_the_capture(
    base_dir, lora_dir, probe_file, capsys
):
    plan = plan_compare(
        str(base_dir),
        [str(lora_dir)],
        num_samples=70,
        batch_size=8,
        probe=str(probe_file),
        available_bytes=1 << 40,
        calibrate=True,
    )
    c = plan.calibration
    assert c["batches"] == 9 and c["batch_size"] == 8
    assert c["forward_per_batch"] > 0 and c["capture"] >= 9 * c["forward_per_batch"]
    assert "estimated capture: ≈" in plan.to_text()
    assert plan_compare(str(base_dir), [str(lora_dir)], available_bytes=1).calibration is None
    rc = main(["compare", str(base_dir), str(lora_dir), "--calibrate"])
    err = capsys.readouterr().err
    assert rc == 2 and "--calibrate: only with --plan" in err
