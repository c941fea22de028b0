"""`--metrics linear_cka_null`: the permutation null of linear CKA on the compare row sample."""

import math

import pytest

from repspace.compare import compare_models, engine
from repspace.compare.options import check_metrics
from repspace.metrics.permutation import cka_permutation_test
from tests.compare.test_compare_engine import FAST, batches, cks  # noqa: F401 (fixtures)


def test_null_is_opt_in_and_computed_on_the_row_sample(cks, batches, monkeypatch):  # noqa: F811
    base, tuned = cks
    plain = compare_models(base, tuned[:1], batches, metrics=["linear_cka"], **FAST)
    assert not any("linear_cka_null_p" in m for m in plain.metrics["t1"].values())
    default = compare_models(base, tuned[:1], batches, **{**FAST, "sample_rows": 8})
    assert not any("linear_cka_null_p" in m for m in default.metrics["t1"].values())
    seen = []
    real = cka_permutation_test

    def spy(x, y, **kw):
        seen.append((x.clone(), y.clone()))
        return real(x, y, **kw)

    monkeypatch.setattr("repspace.metrics.permutation.cka_permutation_test", spy)
    res = compare_models(
        base, tuned[:1], batches, metrics=["linear_cka", "linear_cka_null"], **FAST
    )
    rows = res.metrics["t1"]
    assert len(seen) == len(rows)
    for (x, y), layer in zip(seen, rows):
        want = real(x, y, n_permutations=engine.NULL_PERMUTATIONS, seed=FAST["seed"])
        got = rows[layer]
        assert got["linear_cka_null_p"] == want.p_value
        assert got["linear_cka_null_z"] == pytest.approx(want.z_score, rel=1e-12)
        assert 1 / (engine.NULL_PERMUTATIONS + 1) <= got["linear_cka_null_p"] <= 1
        assert math.isfinite(got["linear_cka_null_z"])
        assert x.shape[0] == FAST["sample_rows"]


def test_metric_name_is_known():
    check_metrics(["linear_cka_null"])
    with pytest.raises(ValueError, match="unknown metric"):
        check_metrics(["linear_cka_nul"])
