"""Where the adapter acts: ‖Δh‖/‖h‖ per adapted module and sample, against two explicit
forwards of each wrapped module on the input it saw (frozen path and wrapper)."""

import copy

import numpy as np
import pytest
import torch

peft = pytest.importorskip("peft")

from repspace.compare.adapter_effect import adapted_modules, adapter_effect  # noqa: E402
from tests.tiny_models import tiny_inputs, tiny_model  # noqa: E402


def _lora_bert(r=2, scale=0.3):
    torch.manual_seed(0)  # peft draws A at random
    model = peft.get_peft_model(
        copy.deepcopy(tiny_model("bert")),
        peft.LoraConfig(r=r, lora_alpha=2 * r, target_modules=["query", "value"]),
    )
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def test_ratio_equals_explicit_forwards():
    model = _lora_bert()
    x = tiny_inputs("bert", n=4)
    batch = {"input_ids": x["input_ids"], "attention_mask": x["attention_mask"]}
    got = adapter_effect(model, [batch])
    assert set(got) == set(adapted_modules(model)) and len(got) == 4
    inputs = {}
    hooks = [
        m.register_forward_pre_hook(lambda mod, a, name=name: inputs.__setitem__(name, a[0]))
        for name, m in adapted_modules(model).items()
    ]
    with torch.no_grad():
        model(**batch)
    for h in hooks:
        h.remove()
    mask = batch["attention_mask"].double()
    for name, m in adapted_modules(model).items():
        with torch.no_grad():
            h = m.base_layer(inputs[name]).double()
            y = m(inputs[name]).double()
        num = (((y - h) ** 2).sum(-1) * mask).sum(1).sqrt()
        den = ((h**2).sum(-1) * mask).sum(1).sqrt()
        want = (num / den).numpy()
        s = got[name]
        assert s["n"] == 4 and s["n_undefined"] == 0
        assert s["mean"] == pytest.approx(want.mean(), rel=1e-9)
        assert s["min"] == pytest.approx(want.min(), rel=1e-9)
        assert s["max"] == pytest.approx(want.max(), rel=1e-9)


def test_scales_with_the_adapter_and_is_zero_at_init():
    x = tiny_inputs("bert", n=3)
    batch = [{"input_ids": x["input_ids"], "attention_mask": x["attention_mask"]}]
    small = adapter_effect(_lora_bert(scale=0.01), batch)
    large = adapter_effect(_lora_bert(scale=1.0), batch)
    first = [n for n in small if ".layer.0." in n]  # their inputs do not depend on any adapter
    assert len(first) == 2
    for name in first:
        assert large[name]["mean"] == pytest.approx(100 * small[name]["mean"], rel=1e-6)
    zero = adapter_effect(_lora_bert(scale=0.0), batch)  # B = 0: the adapter does nothing yet
    assert all(s["max"] == 0.0 for s in zero.values())


def test_a_model_without_adapters_is_refused():
    with pytest.raises(ValueError, match="no adapted module"):
        adapter_effect(tiny_model("bert"), [])


def test_unreached_module_reports_no_data_not_a_number():
    model = peft.get_peft_model(
        copy.deepcopy(tiny_model("blip")),
        peft.LoraConfig(r=2, target_modules=r".*vision_model.*\.qkv"),
    )
    x = tiny_inputs("blip", n=2)
    got = adapter_effect(
        model,
        [
            {
                "input_ids": x["input_ids"],
                "attention_mask": x["attention_mask"],
                "pixel_values": x["pixel_values"],
            }
        ],
    )
    assert got and all(s["n"] == 2 for s in got.values())
    assert all(np.isfinite(s["mean"]) for s in got.values())
