"""`compare --plan` from config.json alone (repspace.compare.plan_fast) against the meta path.

The fast plan writes down what building the model on the meta device finds; every case here
builds both and asks for the same ``to_dict()`` (parameters, layer names, widths, routes,
bytes, notes).  Where it cannot be sure it must step aside (None), and the meta path plans.
"""

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import transformers

from repspace.compare.api import CompareConfig
from repspace.compare.plan import plan_compare
from repspace.compare.plan_fast import FAMILIES, fast_plan

CONFIGS = {
    "llama": transformers.LlamaConfig,
    "mistral": transformers.MistralConfig,
    "qwen2": transformers.Qwen2Config,
    "qwen3": transformers.Qwen3Config,
    "gemma": transformers.GemmaConfig,
    "phi3": transformers.Phi3Config,
}
TINY = dict(
    vocab_size=50,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
)
BUDGET = 1 << 40
ALL_LINEAR = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "qkv_proj",
    "gate_up_proj",
]  # the last two: Phi-3's fused maps


def save_config(folder, family: str, **kw):
    """A config.json as ``save_pretrained`` writes it (no weights: --plan reads none)."""
    cfg = CONFIGS[family](**{**TINY, "pad_token_id": 0, **kw})
    cfg.architectures = [FAMILIES[family].architecture]
    cfg.save_pretrained(folder)
    return folder


def save_lora(folder, base, **kw):
    """An adapter_config.json as peft writes it."""
    from peft import LoraConfig

    kw.setdefault("target_modules", ["q_proj", "v_proj"])
    LoraConfig(
        r=kw.pop("r", 4), base_model_name_or_path=str(base), task_type="CAUSAL_LM", **kw
    ).save_pretrained(folder)
    return folder


def both(base, tuned, **options):
    """(fast plan, meta plan) of the same comparison."""
    s = replace(CompareConfig(num_samples=64), **options)
    fast = fast_plan(str(base), [str(t) for t in tuned], s, available_bytes=BUDGET)
    meta = plan_compare(str(base), [str(t) for t in tuned], s, available_bytes=BUDGET, fast=False)
    return fast, meta


VARIANTS = {
    "plain": {},
    "tied+bias": dict(tie_word_embeddings=True, attention_bias=True, mlp_bias=True),
    "bf16": dict(dtype="bfloat16"),
    "head_dim": dict(head_dim=16),  # wider than hidden / heads
    "mha": dict(num_key_value_heads=4),
}


@pytest.mark.parametrize("family", sorted(CONFIGS))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_base_against_itself_and_with_lora_equals_the_meta_plan(family, variant, tmp_path):
    # the bias keys go to every family: those whose classes ignore them must ignore them too
    base = save_config(tmp_path / "base", family, **VARIANTS[variant])
    fast, meta = both(base, [base])
    assert fast is not None and fast.to_dict() == meta.to_dict()
    assert [la.name for la in fast.layers] == ["model.layers.0", "model.layers.1"]
    qv = ["qkv_proj"] if family == "phi3" else ["q_proj", "v_proj"]
    for name, kw in {
        "qv": dict(target_modules=qv),
        "all": dict(target_modules="all-linear"),
        "ranks": dict(
            target_modules=ALL_LINEAR, rank_pattern={"v_proj": 2, "model.layers.1.mlp.down_proj": 8}
        ),
        "embed+head": dict(
            target_modules=["embed_tokens", "lm_head", "q_proj"],
            exclude_modules=["model.layers.0.self_attn.q_proj"],
        ),
    }.items():
        lora = save_lora(tmp_path / f"lora-{name}", base, **kw)
        fast, meta = both(base, [lora])
        assert fast is not None, name
        assert fast.to_dict() == meta.to_dict(), name
        assert fast.base_capture == "adapter_disabled" and fast.models[1].adapter_parameters > 0


def test_settings_that_change_the_plan_agree_too(tmp_path):
    base = save_config(tmp_path / "base", "qwen2", dtype="bfloat16")
    other = save_config(tmp_path / "other", "qwen2", hidden_size=48)  # p ≠ q
    lora = save_lora(tmp_path / "lora", base, target_modules="all-linear")
    biased = save_lora(tmp_path / "biased", base, bias="all")  # separate base: a reason
    cases = [
        ([lora], dict(pooling="tokens", max_length=16)),
        ([lora], dict(dtype="float32", batch_size=3)),
        ([lora], dict(two_models=True)),
        ([lora], dict(weight_space=True)),
        ([lora, lora], dict(tuned_per_pass=1)),
        ([lora, other], {}),
        ([biased], {}),
        ([other], dict(num_samples=20000, sample_rows=0)),
    ]  # moments route
    for tuned, options in cases:
        fast, meta = both(base, tuned, **options)
        assert fast is not None, options
        assert fast.to_dict() == meta.to_dict(), (tuned, options)
    assert {la.route for la in both(base, [other], num_samples=20000)[0].layers} == {"moments"}


def test_minimal_configs_take_each_class_default(tmp_path):
    """Only the sizes given: every optional key (KV heads, head_dim, tying, biases, padding
    index) is the config class's default, which differs by family (Mistral 8 KV heads, Qwen
    32, Gemma 16; Qwen3 head_dim 128, Gemma 256; Gemma ties its head; Phi-3 pads with
    32000, so its vocabulary must hold that index)."""
    for family in CONFIGS:
        folder = tmp_path / family
        folder.mkdir()
        (folder / "config.json").write_text(
            json.dumps(
                {
                    "model_type": family,
                    "architectures": [FAMILIES[family].architecture],
                    "vocab_size": 32064 if family == "phi3" else 50,
                    "hidden_size": 64,
                    "intermediate_size": 96,
                    "num_hidden_layers": 2,
                    "num_attention_heads": 32,
                }
            )
        )
        fast, meta = both(folder, [folder])
        assert fast is not None and fast.to_dict() == meta.to_dict(), family


def test_a_real_llama_and_peft_adapter_count_what_peft_builds(tmp_path):
    """Independent of both plans: the parameters of the saved model and of peft's adapter."""
    from peft import LoraConfig, get_peft_model

    cfg = transformers.LlamaConfig(**TINY)
    model = transformers.LlamaForCausalLM(cfg)
    model.save_pretrained(tmp_path / "base")
    peft_model = get_peft_model(
        model, LoraConfig(r=4, target_modules="all-linear", rank_pattern={"o_proj": 2})
    )
    peft_model.save_pretrained(tmp_path / "lora")
    lora = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    fast, meta = both(tmp_path / "base", [tmp_path / "lora"])
    assert fast is not None and fast.to_dict() == meta.to_dict()
    assert fast.models[0].parameters == sum(p.numel() for p in model.parameters()) - lora
    assert fast.models[1].adapter_parameters == lora


def test_70b_config_fast_equals_meta_and_weights_are_parameters_times_two(tmp_path):
    from tests.compare.test_plan import LLAMA_70B, llama_70b_parameters

    base = tmp_path / "llama-70b"
    base.mkdir()
    (base / "config.json").write_text(json.dumps(LLAMA_70B))
    lora = save_lora(tmp_path / "lora", base, r=16, target_modules=ALL_LINEAR)
    for tuned in ([base], [lora]):
        fast, meta = both(base, tuned)
        assert fast is not None and fast.to_dict() == meta.to_dict()
        assert fast.models[0].parameters == llama_70b_parameters()
        assert fast.models[0].weights_bytes == 2 * llama_70b_parameters()  # bfloat16


REFUSED_LORA = {
    "regex target": dict(target_modules=r".*\.(q|v)_proj"),
    "layers_to_transform": dict(layers_to_transform=[1]),
    "modules_to_save": dict(modules_to_save=["lm_head"]),
    "dora": dict(use_dora=True),
    "lora_bias": dict(lora_bias=True),
    "regex exclude": dict(target_modules=ALL_LINEAR, exclude_modules=r".*0\..*"),
    "no match": dict(target_modules=["query"]),  # the meta path names the mismatch
}


@pytest.mark.parametrize("case", sorted(REFUSED_LORA))
def test_adapters_it_cannot_count_exactly_go_to_the_meta_path(case, tmp_path):
    base = save_config(tmp_path / "base", "llama")
    lora = save_lora(tmp_path / "lora", base, **REFUSED_LORA[case])
    s = CompareConfig(num_samples=64)
    assert fast_plan(str(base), [str(lora)], s) is None
    if case == "no match":
        with pytest.raises(ValueError, match="match no module"):
            plan_compare(str(base), [str(lora)], s, available_bytes=BUDGET)
    else:  # plan_compare still plans, on the meta device
        assert plan_compare(str(base), [str(lora)], s, available_bytes=BUDGET).models[1].adapter


def _edit(folder, name, **changes):
    path = folder / name
    obj = json.loads(path.read_text())
    obj.update(changes)
    for k in [k for k, v in changes.items() if v is _DROP]:
        del obj[k]
    path.write_text(json.dumps(obj))


_DROP = "__drop__"
REFUSED_CONFIG = {
    "another family": dict(model_type="gemma2", architectures=["Gemma2ForCausalLM"]),
    "pad beyond vocab": dict(pad_token_id=50),
    "another class": dict(architectures=["LlamaForSequenceClassification"]),
    "no architectures": dict(architectures=_DROP),
    "quantized": dict(quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True}),
    "remote code": dict(auto_map={"AutoModel": "x.Y"}),
    "missing size": dict(intermediate_size=_DROP),
    "null head_dim": dict(head_dim=None),
    "float size": dict(hidden_size=32.0),
    "multimodal": dict(image_token_id=3),
    "moe": dict(num_local_experts=4),
    "heads not divisible": dict(num_key_value_heads=3),
}


@pytest.mark.parametrize("case", sorted(REFUSED_CONFIG))
def test_configs_it_cannot_count_exactly_go_to_the_meta_path(case, tmp_path):
    base = save_config(tmp_path / "base", "llama")
    _edit(base, "config.json", **REFUSED_CONFIG[case])
    assert fast_plan(str(base), [str(base)], CompareConfig(num_samples=64)) is None


def test_settings_and_checkpoints_it_leaves_to_the_meta_path(tmp_path):
    base = save_config(tmp_path / "base", "llama")
    deeper = save_config(tmp_path / "deeper", "llama", num_hidden_layers=3)
    lora = save_lora(tmp_path / "lora", base)
    qlora = save_lora(tmp_path / "qlora", base)
    _edit(qlora, "adapter_config.json", base_model_name_or_path="org/llama-bnb-4bit")
    ia3 = tmp_path / "ia3"
    ia3.mkdir()
    (ia3 / "adapter_config.json").write_text(
        json.dumps(
            {"peft_type": "IA3", "target_modules": ["k_proj"], "base_model_name_or_path": str(base)}
        )
    )
    weights = tmp_path / "tuned.safetensors"
    weights.write_bytes(b"")
    s = CompareConfig(num_samples=64)
    cases = {
        "4-bit": ([lora], dict(load_in_4bit=True)),
        "base override": ([lora], dict(base_override=str(base))),
        "config": ([lora], dict(config=str(base))),
        "all samples": ([lora], dict(num_samples=None)),
        "other layers": ([lora], dict(layers="embeddings")),
        "layer names": ([lora], dict(layers=["model.layers.1"])),
        "other depth": ([deeper], {}),
        "QLoRA": ([qlora], {}),
        "IA3": ([ia3], {}),
        "weights file": ([weights], {}),
        "hub id": (["org/model"], {}),
    }
    for case, (tuned, options) in cases.items():
        assert fast_plan(str(base), [str(t) for t in tuned], replace(s, **options)) is None, case
    assert fast_plan("org/model", [str(lora)], s) is None  # a hub id as the base
    assert fast_plan(str(tmp_path / "nowhere"), [str(lora)], s) is None
    (base / "config.json").write_text("{not json")
    assert fast_plan(str(base), [str(lora)], s) is None


def test_capture_itemsize_table_is_the_hooks_rule():
    from repspace.compare import plan_fast
    from repspace.compare.plan_models import capture_itemsize

    for dtype, size in plan_fast._CAPTURE_ITEMSIZE.items():
        assert capture_itemsize(dtype) == size, dtype


def test_the_fast_plan_imports_neither_torch_nor_transformers(tmp_path):
    base = save_config(tmp_path / "base", "llama", dtype="bfloat16")
    lora = save_lora(tmp_path / "lora", base, target_modules="all-linear")
    code = f"""
import argparse, sys
from repspace.compare.cli import add_parser, settings_from_args
from repspace.compare.plan_fast import plan_from_args
parser = argparse.ArgumentParser()
add_parser(parser.add_subparsers())
args = parser.parse_args(["compare", {str(base)!r}, {str(lora)!r}, "--plan"])
plan = plan_from_args(args, settings_from_args(args))
assert plan is not None and plan.models[1].adapter_parameters > 0
plan.to_text(), plan.to_dict()
heavy = sorted(m for m in ("torch", "transformers", "peft") if m in sys.modules)
assert not heavy, heavy
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_the_recorded_base_of_an_adapter_is_the_loaders(tmp_path):
    from repspace.checkpoints import CheckpointError
    from repspace.checkpoints.loader import recorded_base
    from repspace.compare.plan_fast import recorded_adapter_base

    base = save_config(tmp_path / "base", "llama")
    lora = save_lora(tmp_path / "lora", base)
    assert recorded_adapter_base(str(lora)) == recorded_base(str(lora)) == str(base)
    hub = save_lora(tmp_path / "hub", "org/llama")
    assert recorded_adapter_base(str(hub)) == recorded_base(str(hub)) == "org/llama"
    assert recorded_adapter_base(str(base)) is None and recorded_base(str(base)) is None
    for record in ("", str(tmp_path / "gone")):  # the loader's one-line errors, not guessed
        _edit(lora, "adapter_config.json", base_model_name_or_path=record)
        assert recorded_adapter_base(str(lora)) is None
        with pytest.raises(CheckpointError):
            recorded_base(str(lora))


def _hook_applied() -> bool:
    import inspect

    from repspace.compare import cli

    return "plan_from_args" in inspect.getsource(cli._plan)


@pytest.mark.skipif(
    not _hook_applied(),
    reason="compare/cli.py does not try plan_fast yet (/tmp/helpers/plan_hook.patch)",
)
@pytest.mark.parametrize("form", ["base tuned", "adapter"])
def test_the_whole_command_imports_neither_torch_nor_transformers(form, tmp_path):
    base = save_config(tmp_path / "base", "qwen2", dtype="bfloat16")
    lora = save_lora(tmp_path / "lora", base, target_modules="all-linear")
    specs = [str(base), str(lora)] if form == "base tuned" else [str(lora)]
    code = f"""
import sys
from repspace.cli import main
rc = main(["compare", *{specs!r}, "--plan", "--json"])
heavy = sorted(m for m in ("torch", "transformers", "peft") if m in sys.modules)
assert rc in (0, 2) and not heavy, (rc, heavy)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    plan = json.loads(run.stdout)
    assert plan["models"][1]["adapter"].startswith("LoRA r=4 on ")


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2", "phi3"])
def test_zoo_checkpoints_are_counted_as_the_loaded_models_hold_them(arch, tmp_path_factory):
    """The zoo's saved models (real tokenizers, their pad ids, save_pretrained's config.json)
    and LoRA adapters: parameters as loaded, the blocks' outputs as wide as planned."""
    import torch

    from repspace.capture import LayerCapture
    from tests.compat import checks

    root = tmp_path_factory.getbasetemp() / "plan-zoo"
    paths = checks.build(arch, root)
    s = CompareConfig(num_samples=64)
    plan = fast_plan(str(paths["base"]), [str(paths["lora"]), str(paths["full"])], s)
    assert plan is not None
    model = checks.load(paths["base"])
    assert plan.models[0].parameters == sum(p.numel() for p in model.parameters())
    assert plan.models[2].parameters == plan.models[0].parameters  # the full fine-tune
    ids = torch.tensor([[1, 2, 3]])
    with LayerCapture(model, [la.name for la in plan.layers]) as cap, torch.no_grad():
        states = cap.forward({"input_ids": ids})
    assert {la.name: la.p for la in plan.layers} == {n: s.shape[-1] for n, s in states.items()}
    from peft import PeftModel

    lora = PeftModel.from_pretrained(model, paths["lora"])
    assert plan.models[1].adapter_parameters == sum(
        p.numel() for n, p in lora.named_parameters() if "lora_" in n
    )
