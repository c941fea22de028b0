"""The training evaluation guard end to end: a run whose cached decoding is wrong fails at
evaluation with one line naming the method, instead of writing a wrong score."""

import pytest

from repspace.methods.generation import CachedGenerationMismatch
from repspace.training import train
from tests.methods.test_generation_cache import _drop_blip_prefix_cache

from conftest import small_config


def test_training_evaluation_refuses_a_broken_cache(tiny_base, tmp_path, monkeypatch):
    """End to end: a run whose cached decoding is wrong fails at evaluation, naming the method."""
    _drop_blip_prefix_cache(monkeypatch)
    cfg = small_config(tiny_base("blip"), tmp_path, method="prefix", steps=1, lr=0.5)
    with pytest.raises(CachedGenerationMismatch, match=r"^prefix on blip with transformers "):
        train(cfg, progress=False)
