"""Bad input gets a clear one-line ValueError (or a documented NaN with a warning)."""

import math
import warnings

import numpy as np
import pytest
import torch

from repspace._validation import UndefinedMetricWarning
from repspace.metrics import (
    cka_matrix,
    effective_rank,
    frechet_distance,
    linear_cka,
    minibatch_cka,
    mmd,
    mutual_knn_overlap,
    paired_drift,
    principal_angles,
    procrustes_distance,
    rbf_cka,
)
from repspace.statistics import LayerwiseMoments, PairedMoments

PAIRED = [linear_cka, rbf_cka, procrustes_distance, paired_drift, mutual_knn_overlap]


def one_line(excinfo):
    msg = str(excinfo.value)
    assert "\n" not in msg and len(msg) < 400
    return msg


@pytest.mark.parametrize("metric", PAIRED)
def test_mismatched_row_counts(rng, metric):
    with pytest.raises(ValueError, match=r"x has 10 rows but y has 9") as e:
        metric(rng.standard_normal((10, 3)), rng.standard_normal((9, 3)))
    one_line(e)


def test_streaming_mismatched_rows_and_layers(rng):
    acc = PairedMoments()
    with pytest.raises(ValueError, match="x has 5 rows but y has 4"):
        acc.update(rng.standard_normal((5, 2)), rng.standard_normal((4, 2)))
    lw = LayerwiseMoments()
    with pytest.raises(ValueError, match=r"only in base \['b'\]"):
        lw.update({"a": np.ones((4, 2)), "b": np.ones((4, 2))}, {"a": np.ones((4, 2))})
    lw.update({"a": rng.standard_normal((4, 2))}, {"a": rng.standard_normal((4, 2))})
    with pytest.raises(ValueError, match="layers changed between batches"):
        lw.update({"c": np.ones((4, 2))}, {"c": np.ones((4, 2))})
    with pytest.raises(ValueError, match="pairs must be"):
        LayerwiseMoments(pairs="diagonal")


@pytest.mark.parametrize(
    "call",
    [
        lambda x, y: linear_cka(x, y, debiased=True),
        lambda x, y: rbf_cka(x, y, debiased=True),
        lambda x, y: minibatch_cka(x, y, batch_size=4),
        lambda x, y: PairedMoments().update(x, y).linear_cka(debiased=True),
        lambda x, y: cka_matrix([x], [y], debiased=True),
    ],
)
def test_debiased_estimators_need_four_rows(rng, call):
    with pytest.raises(ValueError, match="at least 4 samples") as e:
        call(rng.standard_normal((3, 2)), rng.standard_normal((3, 2)))
    one_line(e)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("metric", [linear_cka, rbf_cka, frechet_distance, mmd, effective_rank])
def test_non_finite_values_are_located(rng, bad, metric):
    x = rng.standard_normal((20, 5))
    x[7, 2] = bad
    x[9, 2] = bad
    x[9, 4] = bad
    args = (x,) if metric is effective_rank else (x, rng.standard_normal((20, 5)))
    with pytest.raises(ValueError) as e:
        metric(*args)
    msg = one_line(e)
    assert "3 non-finite" in msg and "2 row(s)" in msg and "2 column(s)" in msg
    assert "first at row 7, column 2" in msg


def test_non_finite_in_a_later_batch_reports_the_global_row(rng):
    acc = PairedMoments()
    acc.update(rng.standard_normal((8, 2)), rng.standard_normal((8, 2)))
    y = rng.standard_normal((8, 2))
    y[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"^y contains 1 non-finite.*first at row 11"):
        acc.update(rng.standard_normal((8, 2)), y)
    assert acc.n == 8  # the bad batch left no partial update behind


@pytest.mark.parametrize("shape", [(10,), (2, 5, 3), (4, 0)])
@pytest.mark.parametrize("metric", [linear_cka, frechet_distance, procrustes_distance])
def test_wrong_dimensionality(shape, metric):
    good = np.ones((10, 3))
    with pytest.raises(ValueError, match=r"^x (must be 2-D|has no feature)") as e:
        metric(np.ones(shape), good)
    one_line(e)


def test_non_numeric_and_complex_inputs():
    with pytest.raises(ValueError, match="complex"):
        linear_cka(np.ones((5, 2), complex), np.ones((5, 2)))
    with pytest.raises(ValueError, match="dtype"):
        linear_cka(np.array([["a", "b"]] * 5), np.ones((5, 2)))
    assert linear_cka(np.arange(20).reshape(10, 2) ** 2, torch.arange(10.0)[:, None]) > 0.9


def test_zero_variance_representation_is_nan_with_warning(rng):
    const = np.full((12, 4), 3.0)
    other = rng.standard_normal((12, 4))
    for call in (
        lambda: linear_cka(const, other),
        lambda: linear_cka(other, const, debiased=True),
        lambda: rbf_cka(const, other),
        lambda: procrustes_distance(const, other),
    ):
        with pytest.warns(UndefinedMetricWarning, match="(constant|distance of x is 0)"):
            assert math.isnan(call())


def test_single_zero_variance_feature_is_fine(rng):
    x = rng.standard_normal((30, 4))
    x[:, 1] = 5.0  # a dead unit does not make CKA undefined
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert 0 < linear_cka(x, x**2) <= 1


def test_metric_specific_argument_errors(rng):
    x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 4))
    with pytest.raises(ValueError, match="same number of features"):
        frechet_distance(x, y)
    with pytest.raises(ValueError, match="kernel must be"):
        mmd(x, x, kernel="poly")
    with pytest.raises(ValueError, match="permutations"):
        mmd(x, x, permutations=-1)
    with pytest.raises(ValueError, match="k must be"):
        mutual_knn_overlap(x, x, k=20)
    with pytest.raises(ValueError, match="k must be"):
        principal_angles(x, x, k=5)
    with pytest.raises(ValueError, match="sigma_factor"):
        rbf_cka(x, y, sigma_factor=0)
    with pytest.raises(ValueError, match="batch_size"):
        minibatch_cka(x, y, batch_size=2)
    with pytest.raises(ValueError, match="no samples"):
        PairedMoments().linear_cka()
