"""Issue 18, the two options of Tian et al.'s study: the parallel adapter (He et al. 2022:
beside the feed-forward sublayer, reading its input) and "PEFT + head" (``train_head``)."""

import pytest
import torch

from repspace._constraints import SettingError
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
    model = apply_method(
        tiny_model("gpt2"),
        make_config("adapter", width=W, placement="parallel", parallel_scale=2.5),
    )
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
        after = seen["ffn"] + mlp.c_proj.adapter(
            seen["ffn"]
        )  # what the sequential adapter computes
    torch.testing.assert_close(seen["out"], mlp.dropout(want))
    assert not torch.allclose(seen["out"], mlp.dropout(after))


def test_parallel_adapter_trains_and_round_trips():
    fc.check_training("adapter", "llava", width=W, placement="parallel")
    fc.check_roundtrip("adapter", "bert", width=W, placement="parallel")


def test_bad_adapter_options_are_one_line():
    for bad in (dict(placement="beside"), dict(parallel_scale=0), dict(parallel_scale=True)):
        (name,) = bad
        with pytest.raises(SettingError, match=f"^{name} must be ") as exc:
            make_config("adapter", **bad)
        assert "\n" not in str(exc.value) and exc.value.field == name
    with pytest.raises(SettingError, match="^train_head must be true or false; got 'yes'$"):
        apply_method(tiny_model("gpt2"), make_config("lora", train_head="yes"))


@pytest.mark.parametrize("method", ["lora", "prefix", "pt_adapter", "adalink"])
def test_train_head_adds_exactly_the_head(method):
    opts = {"pt_adapter": dict(width=W)}.get(method, {})
    plain = count_parameters(
        apply_method(tiny_model("bert"), make_config(method, **opts))
    ).trainable
    model = apply_method(tiny_model("bert"), make_config(method, train_head=True, **opts))
    head = sum(p.numel() for p in model.classifier.parameters())
    assert count_parameters(model).trainable == plain + head
    assert all(p.requires_grad for p in model.classifier.parameters())


def test_train_head_on_a_language_model_trains_its_output_embeddings():
    model = apply_method(tiny_model("gpt2"), make_config("lora", r=2, train_head=True))
    assert model.lm_head.weight.requires_grad  # tied to wte: that one matrix trains
    assert not model.transformer.h[0].attn.c_attn.base_layer.weight.requires_grad


@pytest.mark.parametrize("arch", ["blip", "gpt2", "llava", "bert"])
def test_parallel_adapter_beside_attention_and_ffn_counts_identity_names(arch):
    # one per attention sublayer (query input d -> output d) and one per feed-forward sublayer
    per = 2 * D * W + W + D
    ffn_only = apply_method(tiny_model(arch), make_config("adapter", width=W, placement="parallel"))
    n_ffn = sum(1 for n, _ in ffn_only.named_modules() if n.endswith(".adapter"))
    opts = dict(width=W, placement="parallel", parallel_sites=("attention", "ffn"))
    model = apply_method(tiny_model(arch), make_config("adapter", **opts))
    n_all = sum(1 for n, _ in model.named_modules() if n.endswith(".adapter"))
    assert n_all == 2 * n_ffn  # every block with a feed-forward sublayer has one attention sublayer
    fc.check_counts_identity_names("adapter", arch, n_all * per, **opts)


def test_parallel_adapter_beside_attention_reads_the_query_input():
    """GPT-2 (fused c_attn): the attention sublayer's output projection gets
    ``c_proj(z) + s * adapter(x)`` with ``x`` the input of ``c_attn`` (the normalised hidden state)."""
    model = apply_method(
        tiny_model("gpt2"),
        make_config(
            "adapter", width=W, placement="parallel", parallel_scale=2.5, parallel_sites="attention"
        ),
    )
    fc.perturb_trainable(model, scale=0.5)
    attn = model.transformer.h[1].attn
    seen = {}
    attn.c_attn.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0]))
    attn.c_proj.base_layer.register_forward_hook(lambda m, a, o: seen.__setitem__("proj", o))
    attn.c_proj.register_forward_hook(lambda m, a, o: seen.__setitem__("out", o))
    model.eval()
    with torch.no_grad():
        model(**tiny_inputs("gpt2"))
    torch.testing.assert_close(seen["out"], seen["proj"] + 2.5 * attn.c_proj.adapter(seen["x"]))
    assert not any(n.endswith("mlp.c_proj.adapter") for n, _ in model.named_modules())


def test_parallel_attention_adapter_on_t5_reads_queries_not_the_encoder_states():
    """T5's decoder cross-attention: its keys/values read the encoder output (another length);
    the adapter must read the query input, or the sum would not even have the right shape."""
    from tests.compat import zoo

    torch.manual_seed(0)
    base, _ = zoo.t5()
    model = apply_method(
        zoo.t5()[0],
        make_config("adapter", width=W, placement="parallel", parallel_sites=["attention"]),
    )
    n = sum(1 for name, _ in model.named_modules() if name.endswith(".adapter"))
    assert n == 6  # 2 encoder self-attentions, 2 decoder self- and 2 cross-attentions
    assert count_parameters(model).trainable == 6 * (2 * 32 * W + W + 32)
    fc.perturb_trainable(model, scale=0.5)
    x = dict(
        input_ids=torch.tensor([[20, 21, 22, 23, 24, 25, 26]]),
        decoder_input_ids=torch.tensor([[20, 21, 22]]),
    )
    out = model(**x).logits
    assert out.shape == base(**x).logits.shape and torch.isfinite(out).all()


def test_parallel_sites_options_are_checked_in_one_line():
    for bad in (
        dict(placement="parallel", parallel_sites=()),
        dict(placement="parallel", parallel_sites=["mlp"]),
        dict(placement="parallel", parallel_sites=["ffn", "ffn"]),
        dict(parallel_sites=["attention"]),
    ):
        with pytest.raises(SettingError, match="^parallel_sites must be ") as exc:
            make_config("adapter", **bad)
        assert "\n" not in str(exc.value)
    cfg = make_config("adapter", placement="parallel", parallel_sites=["attention", "ffn"])
    assert cfg.parallel_sites == ("attention", "ffn")
