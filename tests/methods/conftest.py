"""Tiny models of every architecture family repspace trains (hidden 32, 2 layers), built
from transformers configs, offline, with a fixed seed; function-scoped copies because
methods inject in place.  The models live in tests/tiny_models.py (shared with
tests/capture); the names are re-exported here for the test modules that import them."""

import pytest

pytest.importorskip("transformers")

from tests.tiny_models import (  # noqa: E402  (after the skip)
    ARCHS,
    IMAGE_TOKEN,
    VOCAB,
    blip_config,
    llava_config,
    quiet_library_deprecations,
    tiny_inputs,
    tiny_model,
)

__all__ = [
    "ARCHS",
    "IMAGE_TOKEN",
    "VOCAB",
    "blip_config",
    "llava_config",
    "tiny_inputs",
    "tiny_model",
]


@pytest.fixture(autouse=True)
def _quiet_library_deprecations():
    with quiet_library_deprecations():
        yield
