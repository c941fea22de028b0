"""Checks shared by the LoRA / IA3 / adapter / AdaLink family tests (not a test module)."""

import torch

from repspace.layer_table import layer_names
from repspace.methods import (
    apply_method,
    count_parameters,
    load_trainable_state_dict,
    make_config,
    trainable_state_dict,
)
from tests.methods.conftest import tiny_inputs, tiny_model

# Tiny models: intra-op threads only add contention (a 2-core machine shared by several
# processes made one BLIP backward 300x slower with 2 threads than with 1).
torch.set_num_threads(1)


def outputs(model, arch):
    """Every tensor the model returns on the tiny inputs (loss, logits, hidden states...)."""
    with torch.no_grad():
        out = model(**tiny_inputs(arch))
    return {k: v for k, v in out.items() if torch.is_tensor(v)}


def assert_same_outputs(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def backbone(model):
    """Frozen parameters by their pre-injection name (wrappers' ``.base_layer`` removed)."""
    return {
        n.replace(".base_layer", ""): p.detach().clone()
        for n, p in model.named_parameters()
        if not p.requires_grad
    }


def perturb_trainable(model, seed=1, scale=0.1):
    """Random trainable weights, so outputs move away from the base (deterministic)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters(), key=lambda t: t[0]):
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def check_counts_identity_names(method, arch, expected, **options):
    """Exact trainable count, nothing of the backbone trainable or changed, outputs and
    capture layer names equal to the base's."""
    base = tiny_model(arch)
    model = apply_method(tiny_model(arch), make_config(method, **options))
    assert count_parameters(model).trainable == expected
    assert count_parameters(model).total == count_parameters(base).total + expected
    frozen = backbone(model)
    assert frozen.keys() == dict(base.named_parameters()).keys()
    assert all(torch.equal(frozen[n], p) for n, p in base.named_parameters())
    assert_same_outputs(outputs(model, arch), outputs(base, arch))
    assert layer_names(model) == layer_names(base)
    return model


def check_training(method, arch, steps=6, lr=1e-2, **options):
    """AdamW on the method's parameters lowers the loss; the backbone stays bit-identical."""
    torch.manual_seed(0)
    model = apply_method(tiny_model(arch), make_config(method, **options))
    before = backbone(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = model(**tiny_inputs(arch)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    after = backbone(model)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[n], before[n]) for n in before)


def check_roundtrip(method, arch, **options):
    """trainable_state_dict -> fresh model -> apply_method -> load: identical outputs."""
    model = apply_method(tiny_model(arch), make_config(method, **options))
    perturb_trainable(model)
    state = trainable_state_dict(model)
    fresh = apply_method(tiny_model(arch), make_config(method, **options))
    load_trainable_state_dict(fresh, state, "test")
    ref = outputs(model, arch)
    assert_same_outputs(outputs(fresh, arch), ref)
    assert not torch.equal(ref["loss"], outputs(tiny_model(arch), arch)["loss"])  # it did matter


def check_generate(method, arch, **options):
    """generate() runs after injection and (identity init) gives the base's tokens."""
    base = tiny_model(arch)
    model = apply_method(tiny_model(arch), make_config(method, **options))
    inputs = tiny_inputs(arch)
    if arch == "blip":
        kwargs = dict(pixel_values=inputs["pixel_values"], max_new_tokens=3)
    else:
        kwargs = dict(input_ids=inputs["input_ids"][:1], max_new_tokens=3, do_sample=False)
    with torch.no_grad():
        got, want = model.generate(**kwargs), base.generate(**kwargs)
    assert torch.equal(got, want)
    perturb_trainable(model)
    with torch.no_grad():
        assert model.generate(**kwargs).shape[0] == want.shape[0]


def check_keeps_trainable(method, arch, apply, **options):
    """Applying on top of an earlier stage (PT-PEFT) leaves that stage's parameters trainable
    and does not unfreeze anything else."""
    from repspace.methods import architecture_of

    model = tiny_model(arch)
    for p in model.parameters():
        p.requires_grad_(False)
    earlier = next(p for n, p in model.named_parameters() if "embeddings" in n or "wte" in n)
    earlier.requires_grad_(True)
    model = apply(model, make_config(method, **options), architecture_of(model), 1)
    assert earlier.requires_grad
    expected = apply_method(tiny_model(arch), make_config(method, **options))
    assert (
        count_parameters(model).trainable == count_parameters(expected).trainable + earlier.numel()
    )
