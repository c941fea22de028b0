"""Cached generation equals uncached generation for every method that changes attention, the
KV cache or the input sequence, on every generating architecture; and the evaluation guard
turns a broken cache path into a one-line error instead of a wrong score.

transformers 5.24 renamed the cache argument (``past_key_values`` -> ``cache``); before the
fix BLIP's prefix attention silently dropped the cache and these tests failed for prefix and
PT-PEFT on BLIP captioning."""

import pytest
import torch
import transformers

from repspace.methods import apply_method, generation_kwargs, make_config
from repspace.methods.generation import (
    CachedGenerationMismatch,
    cache_checked,
    compare_cached_generation,
)
from repspace.methods.kv_cache import pop_cache
from tests.methods import family_checks as fc
from tests.methods.conftest import tiny_inputs, tiny_model

METHODS = {"prefix": {}, "prompt": {}, "pt_lora": dict(r=4, alpha=8), "pt_adapter": dict(width=4)}
GENERATING = ["blip", "blip_vqa", "gpt2", "llava"]


def _method(arch, method):
    torch.manual_seed(0)
    model = apply_method(
        tiny_model(arch), make_config(method, num_virtual_tokens=3, **METHODS[method])
    )
    fc.perturb_trainable(model, scale=1.0)  # far from identity: a wrong cache path shows
    return model.eval()


def _generate_kwargs(arch):
    x = tiny_inputs(arch)
    kwargs = dict(max_new_tokens=5, min_new_tokens=5, do_sample=False, num_beams=1)
    if arch != "blip":
        kwargs.update(input_ids=x["input_ids"][:2], attention_mask=x["attention_mask"][:2])
    if arch in ("blip", "blip_vqa", "llava"):
        kwargs["pixel_values"] = x["pixel_values"][:2]
    return kwargs


@pytest.mark.parametrize("arch", GENERATING)
@pytest.mark.parametrize("method", list(METHODS))
def test_cached_equals_uncached(method, arch):
    model = _method(arch, method)
    kwargs = _generate_kwargs(arch)
    with torch.no_grad():
        plain = model.generate(
            **kwargs, use_cache=False, return_dict_in_generate=True, output_logits=True
        )
        try:
            cached = model.generate(
                **kwargs, use_cache=True, return_dict_in_generate=True, output_logits=True
            )
        except ValueError as exc:
            # prompt tuning re-prepends its vectors on every call; where the prompted model
            # itself decodes with a cache it must refuse, and say how to generate instead
            assert method == "prompt" and arch in ("blip", "gpt2", "llava"), exc
            assert "use_cache=False" in str(exc) and "\n" not in str(exc)
            assert generation_kwargs(model) == {"use_cache": False}
            return
    assert plain.sequences.shape[1] >= 5 and len(plain.logits) == 5
    assert torch.equal(cached.sequences, plain.sequences)
    # tokens of a tiny random model can agree by chance; the logits of every step cannot
    for step, (a, b) in enumerate(zip(cached.logits, plain.logits)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"new token {step}")


def _drop_blip_prefix_cache(monkeypatch):
    """Reproduce the transformers 5.24 bug: BLIP's prefix attention never sees the cache."""
    import repspace.methods.prefix.attention as attention

    def lose_it(kwargs):
        pop_cache(kwargs)
        return None

    monkeypatch.setattr(attention, "pop_cache", lose_it)


def test_forced_mismatch_fails_with_one_line(monkeypatch):
    model = _method("blip", "pt_lora")
    kwargs = _generate_kwargs("blip")
    _drop_blip_prefix_cache(monkeypatch)
    with torch.no_grad():
        assert not torch.equal(
            model.generate(**kwargs, use_cache=True), model.generate(**kwargs, use_cache=False)
        )
        with pytest.raises(CachedGenerationMismatch) as exc, cache_checked(model, "pt_lora"):
            model.generate(**kwargs)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"pt_lora on blip with transformers {transformers.__version__}:")
    assert "cached and uncached greedy generation disagree" in msg
    assert "generate" not in model.__dict__  # the wrapper is gone after the block


def test_guard_checks_first_call_only_and_keeps_output_form():
    model = _method("gpt2", "prefix")
    kwargs = _generate_kwargs("gpt2")
    calls = []
    original = model.generate

    def counting(*a, **k):
        calls.append(k.get("use_cache"))
        return original(*a, **k)

    model.generate = counting
    with torch.no_grad(), cache_checked(model, "prefix"):
        first = model.generate(**kwargs)
        second = model.generate(**kwargs)
        skipped = model.generate(**kwargs, use_cache=False)
    assert calls == [True, False, None, False]  # checked twice, then plain calls
    assert torch.is_tensor(first) and torch.equal(first, second) and torch.equal(first, skipped)
    assert model.generate is counting  # an instance attribute set before is restored


def test_guard_accepts_float_noise_not_a_real_difference():
    """Logits that differ by float noise pass; by O(1) they fail -- even with equal tokens."""
    model = _method("gpt2", "prefix")
    kwargs = _generate_kwargs("gpt2")

    def fake(noise):
        def generate(*a, **k):
            out = model.generate(*a, **k)
            if not k["use_cache"]:
                out.logits = tuple(l + noise * l.abs().max() for l in out.logits)
            return out

        return generate

    with torch.no_grad():
        assert torch.is_tensor(compare_cached_generation(fake(1e-7), (), kwargs, "prefix", model))
        with pytest.raises(CachedGenerationMismatch, match="new token 0: logits differ"):
            compare_cached_generation(fake(0.5), (), kwargs, "prefix", model)


def test_without_logits_any_token_difference_is_a_mismatch():
    """A generate() that returns no logits leaves only the tokens: they must be equal."""
    from types import SimpleNamespace

    model = _method("gpt2", "prefix")
    seq = torch.tensor([[1, 2, 3, 4]])

    def fake(other):
        def generate(*a, **k):
            return SimpleNamespace(sequences=seq if k["use_cache"] else other, logits=None)

        return generate

    assert torch.equal(compare_cached_generation(fake(seq.clone()), (), {}, "prefix", model), seq)
    with pytest.raises(CachedGenerationMismatch, match="different tokens"):
        compare_cached_generation(fake(torch.tensor([[1, 2, 3, 5]])), (), {}, "prefix", model)
