"""One model for base and tuned (issue 19.1): the base captured from the adapter's model with
the adapter disabled equals the separately loaded base, and every case where disabling is
not the base falls back to two models with the reason recorded."""

import copy
import json

import numpy as np
import pytest
import torch

peft = pytest.importorskip("peft")

from repspace.capture.runner import AdapterDisabled, capture_sides  # noqa: E402
from repspace.capture.selection import resolve_layers  # noqa: E402
from repspace.capture.sinks import MemorySink  # noqa: E402
from repspace.compare.api import compare  # noqa: E402
from repspace.compare.shared_base import disabled_base_reason  # noqa: E402
from tests.compare.conftest import tiny_bert, word_tokenizer  # noqa: E402
from tests.tiny_models import tiny_inputs, tiny_model  # noqa: E402


def _randomise_adapter(model, scale=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:  # every trained tensor, LoRA B included (zero at init)
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model


def _peft_bert(dtype=torch.float64, **cfg):
    torch.manual_seed(0)
    base = copy.deepcopy(tiny_model("bert")).to(dtype)
    model = peft.get_peft_model(
        copy.deepcopy(base),
        peft.LoraConfig(r=2, lora_alpha=4, target_modules=["query", "value"], **cfg),
    )
    return base.eval(), _randomise_adapter(model).eval()


def _capture(models, batch):
    names = resolve_layers(models["tuned"] if "tuned" in models else models["base"], "blocks")
    sink, _ = capture_sides(
        models,
        [batch],
        names,
        pooling="mean",
        sink=MemorySink(),
        batch_size=8,
        device=None,
        progress=False,
        early_stop=True,
    )
    return sink


def test_disabled_adapter_side_is_the_base_bit_for_bit():
    base, model = _peft_bert()
    x = tiny_inputs("bert", n=4)
    batch = {"input_ids": x["input_ids"], "attention_mask": x["attention_mask"]}
    two = _capture({"base": base, "tuned": model}, batch)
    one = _capture({"base": AdapterDisabled(model, model), "tuned": model}, batch)
    assert set(one.tensors["base"]) == set(two.tensors["base"]) and len(one.tensors["base"]) == 2
    for layer, states in two.tensors["base"].items():
        assert states.dtype == torch.float64
        assert torch.equal(one.tensors["base"][layer], states)
        assert torch.equal(one.tensors["tuned"][layer], two.tensors["tuned"][layer])
        assert not torch.equal(states, two.tensors["tuned"][layer])  # the adapter acts
    assert model.active_adapters and not model._adapters_disabled  # switched back on


def _save_adapter(tmp_path, base_dir, name, **cfg):
    from transformers import AutoModel

    torch.manual_seed(0)
    model = peft.get_peft_model(
        AutoModel.from_pretrained(base_dir, local_files_only=True),
        peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], **cfg),
    )
    _randomise_adapter(model, scale=0.1)
    out = tmp_path / name
    model.save_pretrained(out)
    conf = json.loads((out / "adapter_config.json").read_text())
    conf["base_model_name_or_path"] = str(base_dir)
    (out / "adapter_config.json").write_text(json.dumps(conf))
    return out


@pytest.fixture(scope="module")
def base64_dir(tmp_path_factory):
    """A float64 tiny BERT on disk: the equality below is then a float64 statement."""
    d = tmp_path_factory.mktemp("models64") / "tiny-bert64"
    tiny_bert().double().save_pretrained(d)
    word_tokenizer().save_pretrained(d)
    return d


def _run(base, adapter, probe, **kw):
    return compare(
        str(base),
        [str(adapter)],
        probe=str(probe),
        num_samples=48,
        batch_size=16,
        embedding="none",
        progress=False,
        distributed=False,
        dtype="float64",
        **kw,
    )


def test_compare_one_model_equals_two_models(tmp_path, base64_dir, probe_file):
    adapter = _save_adapter(tmp_path, base64_dir, "lora")
    one = _run(base64_dir, adapter, probe_file)
    two = _run(base64_dir, adapter, probe_file, two_models=True)
    assert one.settings["base_capture"] == {"mode": "adapter_disabled"}
    assert two.settings["base_capture"]["mode"] == "separate"
    assert "--two-models" in two.settings["base_capture"]["reason"]
    assert one.layers == two.layers and len(one.layers) == 3
    name = one.tuned_names[0]
    for layer in one.layers:
        a, b = one.metrics[name][layer], two.metrics[name][layer]
        assert set(a) == set(b) and len(a) > 20
        for key in a:
            if np.isnan(b[key]):
                assert np.isnan(a[key]), key
            else:
                assert abs(a[key] - b[key]) <= 1e-12 * max(1.0, abs(b[key])), (layer, key)
        assert a["linear_cka"] < 1 - 1e-6  # the adapter moved something
    for layer, sv in two.spectra[two.base.name].items():
        np.testing.assert_array_equal(one.spectra[one.base.name][layer], sv)
    assert one.base.name == two.base.name and one.base.sha256 == two.base.sha256


@pytest.mark.parametrize(
    "cfg, words",
    [
        ({"bias": "all"}, "trainable biases"),
        ({"modules_to_save": ["pooler"]}, "modules_to_save"),
    ],
)
def test_unsafe_adapters_fall_back_to_two_models_with_the_reason(
    tmp_path, base_dir, probe_file, cfg, words
):
    adapter = _save_adapter(tmp_path, base_dir, "unsafe", **cfg)
    res = compare(
        str(base_dir),
        [str(adapter)],
        probe=str(probe_file),
        num_samples=24,
        batch_size=12,
        embedding="none",
        progress=False,
        distributed=False,
        layers="encoder.layer.0",
        metrics=["linear_cka"],
    )
    assert res.settings["base_capture"]["mode"] == "separate"
    assert words in res.settings["base_capture"]["reason"]


def test_the_fallbacks_are_needed_disabling_is_not_the_base():
    """Without the fallback the numbers would be wrong: with trained biases the disabled
    adapter's forward differs from the real base."""
    base, model = _peft_bert(bias="all")
    assert "trainable biases" in disabled_base_reason(model)
    x = tiny_inputs("bert", n=3)
    batch = {"input_ids": x["input_ids"], "attention_mask": x["attention_mask"]}
    with torch.no_grad(), model.disable_adapter():
        off = model(**batch).logits
    with torch.no_grad():
        real = base(**batch).logits
    assert (off - real).abs().max() > 1e-3


def test_reasons_for_models_that_are_not_plain_adapters():
    base, model = _peft_bert()
    assert disabled_base_reason(model) is None
    assert "not a PEFT model" in disabled_base_reason(base)
    model.merge_adapter()
    assert "merged" in disabled_base_reason(model)
    model.unmerge_adapter()
    assert disabled_base_reason(model) is None
    _, ms = _peft_bert(modules_to_save=["pooler"])
    assert "modules_to_save" in disabled_base_reason(ms)
    torch.manual_seed(0)
    prompt = peft.get_peft_model(
        copy.deepcopy(tiny_model("bert")),
        peft.PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=3),
    )
    assert "prompt learning" in disabled_base_reason(prompt)


def test_engine_refuses_the_same_model_when_disabling_is_not_the_base(base_dir):
    from repspace.checkpoints import LoadedCheckpoint
    from repspace.compare.engine import compare_models

    _, model = _peft_bert(dtype=torch.float32, bias="all")
    ck = LoadedCheckpoint("x", "x", "peft", model)
    x = tiny_inputs("bert", n=4)
    batch = {"input_ids": x["input_ids"], "attention_mask": x["attention_mask"]}
    with pytest.raises(ValueError, match="trainable biases"):
        compare_models(ck, [ck], lambda: iter([batch]), progress=False, embedding="none")
