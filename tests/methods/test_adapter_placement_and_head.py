"""Issue 18, the two options of Tian et al.'s study: the parallel adapter (He et al. 2022:
beside the feed-forward sublayer, reading its input) and "PEFT + head" (``train_head``)."""
import pytest
import torch

from repspace.methods import apply_method, count_parameters, make_config
from tests.methods import family_checks as fc
from tests.methods.conftest import tiny_inputs, tiny_model

D, FFN, LAYERS, W = 32, 37, 2, 4  # tiny models: hidden 32, intermediate 37, 2 layers


@pytest.mark.parametrize("arch", ["blip", "gpt2", "llava", "bert"])
def test_parallel_adapter_counts_identity_names(arch):
    # one adapter per feed-forward sublayer of the text tower: 2 d w + w + d each
    per = 2 * D * W + W + D
    model = apply_method(tiny_model(arch), make_config("adapter", width=W, placement="parallel"))
    n_sites = sum(1 for n, _ in model.named_modules() if n.endswith(".adapter"))
    assert count_parameters(model).trainable == n_sites * per and n_sites >= LAYERS
    fc.check_counts_identity_names("adapter", arch, n_sites * per, width=W, placement="parallel")


def test_parallel_adapter_reads_the_sublayer_input_and_adds_beside_it():
    model = apply_method(tiny_model("gpt2"), make_config("adapter", width=W, placement="parallel",
                                                         parallel_scale=2.5))
    fc.perturb_trainable(model, scale=0.5)
    mlp = model.transformer.h[0].mlp
    seen = {}
    mlp.c_fc.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0]))
    mlp.c_proj.base_layer.register_forward_hook(lambda m, a, o: seen.__setitem__("ffn", o))
    mlp.register_forward_hook(lambda m, a, o: seen.__setitem__("out", o))
    model.eval()
    with torch.no_grad():
        model(**tiny_inputs("gpt2"))
        want = seen["ffn"] + 2.5 * mlp.c_proj.adapter(seen["x"])
        after = seen["ffn"] + mlp.c_proj.adapter(seen["ffn"])  # what the sequential adapter computes
    torch.testing.assert_close(seen["out"], mlp.dropout(want))
    assert not torch.allclose(seen["out"], mlp.dropout(after))


def test_parallel_adapter_trains_and_round_trips():
    fc.check_training("adapter", "llava", width=W, placement="parallel")
    fc.check_roundtrip("adapter", "bert", width=W, placement="parallel")


def test_bad_adapter_options_are_one_line():
    for bad in (dict(placement="beside"), dict(parallel_scale=0), dict(parallel_scale=True)):
        with pytest.raises(ValueError, match="adapter: ") as exc:
            make_config("adapter", **bad)
        assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="train_head must be true or false"):
        apply_method(tiny_model("gpt2"), make_config("lora", train_head="yes"))


@pytest.mark.parametrize("method", ["lora", "prefix", "pt_adapter", "adalink"])
def test_train_head_adds_exactly_the_head(method):
    opts = {"pt_adapter": dict(width=W)}.get(method, {})
    plain = count_parameters(apply_method(tiny_model("bert"), make_config(method, **opts))).trainable
    model = apply_method(tiny_model("bert"), make_config(method, train_head=True, **opts))
    head = sum(p.numel() for p in model.classifier.parameters())
    assert count_parameters(model).trainable == plain + head
    assert all(p.requires_grad for p in model.classifier.parameters())


def test_train_head_on_a_language_model_trains_its_output_embeddings():
    model = apply_method(tiny_model("gpt2"), make_config("lora", r=2, train_head=True))
    assert model.lm_head.weight.requires_grad  # tied to wte: that one matrix trains
    assert not model.transformer.h[0].attn.c_attn.base_layer.weight.requires_grad
