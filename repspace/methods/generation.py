"""Guard against silently wrong cached generation.

Methods that change attention (prefix-tuning, PT-PEFT) or the input sequence (prompt tuning)
hook into the model's forward; a transformers release that moves the KV cache (5.24 renamed
``past_key_values`` to ``cache``) can make those hooks miss it, and cached greedy decoding
then differs from uncached decoding without any error -- the task scores are wrong.

:func:`cache_checked` wraps ``model.generate`` for one evaluation: its first call runs twice,
with and without the cache, and compares the per-step logits.  Greedy decoding must agree up
to float noise; a real mismatch raises :class:`CachedGenerationMismatch` naming the method,
the architecture and the transformers version.  Only a first differing token whose logits
agree within tolerance (an arg-max near-tie, float noise between the two paths) is accepted.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

__all__ = ["CachedGenerationMismatch", "cache_checked", "compare_cached_generation"]

# float32 logits of the cached and the uncached path differ by ~1e-6 relative (different GEMM
# shapes); a dropped cache or a misaligned mask moves them by O(1).
RTOL, ATOL = 1e-3, 1e-4


class CachedGenerationMismatch(ValueError):
    """Cached and uncached greedy generation disagree beyond float noise."""


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def _architecture(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) or type(model).__name__


def compare_cached_generation(generate, args: tuple, kwargs: dict, label: str, model: nn.Module):
    """Run ``generate(*args, **kwargs)`` with and without the KV cache; return the cached
    output (in the form the caller asked for) or raise :class:`CachedGenerationMismatch`."""
    want_dict = bool(kwargs.get("return_dict_in_generate"))
    probe = dict(kwargs, return_dict_in_generate=True, output_logits=True)
    cached = generate(*args, **dict(probe, use_cache=True))
    plain = generate(*args, **dict(probe, use_cache=False))
    problem = _disagreement(cached, plain)
    if problem:
        raise CachedGenerationMismatch(
            f"{label} on {_architecture(model)} with transformers {_transformers_version()}: cached and "
            f"uncached greedy generation disagree ({problem}); the task scores would be wrong -- "
            "report this at repspace, or evaluate with use_cache=False"
        )
    return cached if want_dict else cached.sequences


def _disagreement(cached, plain) -> str:
    """Empty when the two greedy runs agree (up to an arg-max near-tie), else a description."""
    a, b = cached.sequences, plain.sequences
    width = min(a.shape[1], b.shape[1])
    differs = (a[:, :width] != b[:, :width]).any(0).nonzero()
    steps_a, steps_b = cached.logits or (), plain.logits or ()
    if not steps_a or not steps_b:  # no logits to tell a near-tie from a bug: tokens must agree
        if a.shape != b.shape or len(differs):
            return "different tokens (no logits were returned to compare)"
        return ""
    prompt_len = a.shape[1] - len(steps_a)
    # logits up to and including the first differing token come from identical prefixes
    last = len(steps_a) if not len(differs) else int(differs[0]) - prompt_len + 1
    for step in range(max(0, min(last, len(steps_a), len(steps_b)))):
        la, lb = steps_a[step].double(), steps_b[step].double()
        if la.shape != lb.shape or not torch.allclose(
            la, lb, rtol=RTOL, atol=ATOL * max(1.0, lb.abs().max().item())
        ):
            gap = (la - lb).abs().max().item() if la.shape == lb.shape else float("nan")
            return f"new token {step}: logits differ by up to {gap:.3g}"
    if a.shape[1] != b.shape[1] and not len(differs):
        return f"{a.shape[1]} vs {b.shape[1]} tokens"
    return ""


@contextlib.contextmanager
def cache_checked(model: nn.Module, label: str, enabled: bool = True) -> Iterator[nn.Module]:
    """Within the block, the first ``model.generate`` call that may use the KV cache is
    checked by :func:`compare_cached_generation`; later calls run unchanged.

    Calls with ``use_cache=False`` (prompt tuning's own setting) are not checked: they do
    not touch the cache.  ``label`` names the method in the error."""
    if not enabled or not callable(getattr(model, "generate", None)):  # classifiers do not generate
        yield model
        return
    original = model.generate
    had_own = "generate" in model.__dict__
    state = {"checked": False}

    def generate(*args: Any, **kwargs: Any):
        if state["checked"] or kwargs.get("use_cache") is False:
            return original(*args, **kwargs)
        state["checked"] = True
        return compare_cached_generation(original, args, kwargs, label, model)

    model.generate = generate
    try:
        yield model
    finally:
        if had_own:
            model.generate = original
        else:
            del model.generate
