"""Effective weights of tuned models, against independent computations: ΔW = B A · scale
from the LoRA factors, and dense subtraction of peft's own merged weights (LoRA on GPT-2's
transposed Conv1D, DoRA, IA³), and of a full fine-tune."""

import copy

import pytest
import torch
from torch import nn

peft = pytest.importorskip("peft")

from repspace.capture.weights import weight_pairs  # noqa: E402
from repspace.compare.weights import weight_space  # noqa: E402
from tests.tiny_models import tiny_model  # noqa: E402


def _perturb_adapter(model, names=("lora_B", "lora_magnitude", "ia3_l")):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if any(k in n for k in names):
                p.add_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def _merged_deltas(base, peft_model):
    """ΔW by dense subtraction of peft's merge (an independent route), as (out, in)."""
    merged = copy.deepcopy(peft_model).merge_and_unload()
    out = {}
    base_params = dict(base.named_parameters())
    for name, p in merged.named_parameters():
        if name.endswith(".weight") and p.ndim == 2 and name in base_params:
            d = p.detach().double() - base_params[name].detach().double()
            if d.abs().max() > 0:
                out[name[: -len(".weight")]] = d
    return out


def test_lora_delta_equals_b_times_a():
    base = tiny_model("bert")
    tuned = peft.get_peft_model(
        copy.deepcopy(base), peft.LoraConfig(r=2, lora_alpha=5, target_modules=["query", "value"])
    )
    _perturb_adapter(tuned)
    pairs = {p.name: p for p in weight_pairs(base, tuned)}
    probed = [n for n, p in pairs.items() if p.route == "probed"]
    assert len(probed) == 4 and all(n.endswith(("query", "value")) for n in probed)
    for name in probed:
        layer = tuned.get_submodule("base_model.model." + name)
        dw = (
            layer.lora_B["default"].weight.double()
            @ layer.lora_A["default"].weight.double()
            * layer.scaling["default"]
        )
        torch.testing.assert_close(pairs[name].tuned - pairs[name].base, dw, rtol=0, atol=1e-12)
    untouched = [p for p in pairs.values() if p.route == "weights"]
    assert untouched and all(torch.equal(p.base, p.tuned) for p in untouched)


@pytest.mark.parametrize(
    "arch,config",
    [
        ("gpt2", dict(kind="lora", target_modules=["c_attn"], fan_in_fan_out=True)),
        ("bert", dict(kind="lora", target_modules=["query", "dense"], use_dora=True)),
        (
            "bert",
            dict(
                kind="ia3",
                target_modules=["key", "value", "output.dense"],
                feedforward_modules=["output.dense"],
            ),
        ),
    ],
)
def test_probed_weights_equal_peft_merge(arch, config):
    config = dict(config)
    kind = config.pop("kind")
    cfg = (
        peft.LoraConfig(r=2, lora_alpha=4, **config) if kind == "lora" else peft.IA3Config(**config)
    )
    base = tiny_model(arch)
    tuned = _perturb_adapter(peft.get_peft_model(copy.deepcopy(base), cfg))
    want = _merged_deltas(base, tuned)
    pairs = {p.name: p for p in weight_pairs(base, tuned)}
    got = {n: p.tuned - p.base for n, p in pairs.items() if not torch.equal(p.tuned, p.base)}
    assert set(got) == set(want) and want
    for name, d in want.items():
        if arch == "gpt2":  # Conv1D stores (in, out); repspace compares (out, in)
            d = d.T
        torch.testing.assert_close(got[name], d, rtol=1e-5, atol=1e-6)  # peft merges in float32


def test_full_finetune_is_read_directly():
    base = tiny_model("gpt2")
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        tuned.transformer.h[1].mlp.c_fc.weight.add_(0.01)
    pairs = {p.name: p for p in weight_pairs(base, tuned)}
    changed = [n for n, p in pairs.items() if not torch.equal(p.base, p.tuned)]
    assert changed == ["transformer.h.1.mlp.c_fc"]
    p = pairs["transformer.h.1.mlp.c_fc"]
    assert p.route == "weights" and p.eps == torch.finfo(torch.float32).eps
    torch.testing.assert_close(p.tuned - p.base, torch.full_like(p.base, 0.01), rtol=0, atol=1e-8)
    ws = weight_space(base, tuned)
    row = ws.matrices["transformer.h.1.mlp.c_fc"]
    assert row["delta_numerical_rank"] == 1  # a constant shift is rank one, float32 noise below tol
    assert list(ws.blocks) == ["transformer.h.1"] and ws.blocks["transformer.h.1"]["matrices"] == 1


class _Bottleneck(nn.Module):
    def __init__(self, inner: nn.Linear):
        super().__init__()
        self.base_layer, self.up = inner, nn.Linear(inner.out_features, inner.out_features)

    def forward(self, x):
        h = self.base_layer(x)
        return h + self.up(torch.tanh(h))


def test_nonlinear_wrapper_has_no_weight_update():
    base = tiny_model("bert")
    tuned = copy.deepcopy(base)
    att = tuned.bert.encoder.layer[0].attention.self
    att.query = _Bottleneck(att.query)
    pairs = {p.name: p for p in weight_pairs(base, tuned)}
    q = pairs["bert.encoder.layer.0.attention.self.query"]
    assert q.route == "nonlinear" and q.tuned is None and "not a linear map" in q.note
    ws = weight_space(base, tuned)
    assert "bert.encoder.layer.0.attention.self.query" in ws.skipped and not ws.matrices


def test_lora_adds_intruders_full_rank_noise_does_not():
    """The paper's qualitative finding on a toy: a strong low-rank update brings new
    dominant directions; a small dense perturbation keeps the old ones."""
    base = tiny_model("bert")
    lora = peft.get_peft_model(
        copy.deepcopy(base), peft.LoraConfig(r=1, lora_alpha=64, target_modules=["query"])
    )
    _perturb_adapter(lora)
    full = copy.deepcopy(base)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in full.bert.encoder.layer:
            w = layer.attention.self.query.weight
            w.add_(torch.randn(w.shape, generator=g) * 1e-4)
    k = dict(k=3, threshold=0.5)
    lo, fu = weight_space(base, lora, **k), weight_space(base, full, **k)
    assert sum(r["intruder_dimensions"] for r in lo.matrices.values()) >= 1
    assert sum(r["intruder_dimensions"] for r in fu.matrices.values()) == 0
    assert all(r["delta_numerical_rank"] == 1 for r in lo.matrices.values())
