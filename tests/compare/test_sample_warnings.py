"""A sample-based measure that is undefined on the row sample is NaN *with its reason*,
recorded once and naming the checkpoint and layer (it used to be silenced)."""

from __future__ import annotations

import math
import warnings

import torch

from repspace.compare.engine import _sample_metrics


def test_an_undefined_sample_measure_warns_naming_where():
    x = torch.ones(32, 6, dtype=torch.float64)  # every row the same: no bandwidth, no kernel
    y = x.clone()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _sample_metrics(x, y, {"rbf_cka", "mmd_rbf"}, seed=0, where="lora, layer l0")
    assert math.isnan(out["rbf_cka"]) and math.isnan(out["mmd_rbf"])
    texts = [str(w.message) for w in caught]
    assert any(t.startswith("lora, layer l0: ") and "mmd_rbf" in t for t in texts), texts
    assert sum(t.startswith("lora, layer l0: ") for t in texts) == len(set(texts))  # once each
    assert len(texts) >= 2  # rbf_cka's reason too


def test_defined_measures_stay_quiet():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    y = x @ torch.randn(5, 5, generator=g, dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _sample_metrics(
            x, y, {"rbf_cka", "mmd_rbf", "mutual_knn_overlap"}, seed=0, where="lora, layer l0"
        )
    assert all(math.isfinite(v) for v in out.values())
    assert not [w for w in caught if "layer l0" in str(w.message)]
