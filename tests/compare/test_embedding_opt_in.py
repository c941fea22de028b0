"""The 2-D embedding is opt in, its method is checked when the settings are made, and a
fallback from UMAP to PCA is never silent (issues 27 and 30)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from repspace._constraints import SettingError
from repspace._validation import RepspaceWarning
from repspace.compare import CompareConfig, CompareOptions
from repspace.compare.engine import embed_2d


def test_off_by_default():
    assert CompareOptions().embedding == "none" and CompareConfig().embedding == "none"


@pytest.mark.parametrize("field, value", [("embedding", "tsne"), ("pooling", "avg")])
def test_a_bad_choice_fails_when_the_settings_are_made(field, value):
    with pytest.raises(SettingError, match=rf"^{field} must be one of .*; got '{value}'$"):
        CompareConfig(**{field: value})


def test_umap_falling_back_to_pca_says_so():
    points = {
        "base": np.random.default_rng(0).normal(size=(6, 4)),
        "lora": np.random.default_rng(1).normal(size=(6, 4)),
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        used, coords = embed_2d(points, "umap")
    assert used == "pca" and coords["lora"].shape == (6, 2)
    assert any(
        issubclass(w.category, RepspaceWarning) and "uses PCA" in str(w.message) for w in caught
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert embed_2d(points, "pca")[0] == "pca"
    assert not [w for w in caught if "uses PCA" in str(w.message)]
