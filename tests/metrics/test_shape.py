"""Generalized shape metrics (Williams et al. 2021; issue 29): against netrep's formula
written independently, Procrustes and CCA at the ends, moments == rows == array, metric
axioms and invariances."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import orthogonal_procrustes

from repspace._validation import RepspaceWarning, UndefinedMetricWarning
from repspace.closed_forms.shape import shape_metric_from_moments, shape_metric_from_rows
from repspace.metrics.cca import cca
from repspace.metrics.drift import procrustes_distance
from repspace.metrics.shape import shape_metric
from tests.metrics import reference as ref
from tests.metrics.test_cca import streamed, well_conditioned_pair


def netrep_linear_metric(x, y, alpha, score="angular"):
    """netrep's ``LinearMetric(alpha, center_columns=True, zero_pad=True)`` written from its
    description (netrep is not on PyPI): centre, zero-pad to a common width, partially
    whiten each side with Z = V diag(α + (1 − α) λ^{-½}) Vᵀ (λ the eigenvalues of XᵀX,
    clipped at 1e-7) rescaled to keep tr(XᵀX), align by orthogonal Procrustes, score."""
    width = max(x.shape[1], y.shape[1])
    sides = []
    for a in (x, y):
        a = a - a.mean(0)
        a = np.pad(a, ((0, 0), (0, width - a.shape[1])))
        if alpha < 1 - 1e-7:
            lam, v = np.linalg.eigh(a.T @ a)
            lam = np.maximum(lam, 1e-7)
            d = alpha + (1 - alpha) * lam**-0.5
            new_var = np.sum(alpha**2 * lam + 2 * alpha * (1 - alpha) * lam**0.5 + (1 - alpha) ** 2)
            d *= np.sqrt(lam.sum() / new_var)
            a = a @ (v * d) @ v.T
        sides.append(a)
    xw, yw = sides
    r, _ = orthogonal_procrustes(yw, xw)  # yw @ r ≈ xw
    if score == "angular":
        c = np.sum(xw * (yw @ r)) / (np.linalg.norm(xw) * np.linalg.norm(yw))
        return float(np.arccos(np.clip(c, -1, 1)))
    return float(np.linalg.norm(xw - yw @ r))


def unit(a):
    a = a - a.mean(0)
    return a / np.linalg.norm(a)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_matches_netreps_linear_metric_on_unit_norm_inputs(alpha):
    rng = np.random.default_rng(int(alpha * 100))
    worst = 0.0
    for n, p, q in ((200, 5, 5), (120, 6, 4), (80, 3, 3)):
        x, y = ref.correlated_pair(rng, n, p, q, noise=0.7)
        x, y = unit(x), unit(y)
        got = shape_metric(x, y, alpha)
        worst = max(worst, abs(got.angular - netrep_linear_metric(x, y, alpha)))
        if p == q or alpha == 1.0:
            # p ≠ q: netrep's variance-preserving rescale also counts the zero-padded
            # directions (eigenvalue clipped to 1e-7), which moves its Euclidean form only
            worst = max(worst, abs(got.euclidean - netrep_linear_metric(x, y, alpha, "euclidean")))
        assert got.alpha == alpha and (got.rank_x, got.rank_y, got.ridge) == (p, q, 0.0)
    assert worst < 1e-9, worst


def test_netrep_differs_off_the_ends_on_raw_units_which_repspace_ignores():
    """netrep whitens the raw XᵀX, so its 0 < α < 1 values move with the units of x;
    repspace normalises first and does not move."""
    rng = np.random.default_rng(1)
    x, y = ref.correlated_pair(rng, 100, 4, 4, noise=0.5)
    assert abs(netrep_linear_metric(x, y, 0.5) - netrep_linear_metric(100 * x, y, 0.5)) > 1e-3
    assert shape_metric(x, y, 0.5).angular == pytest.approx(
        shape_metric(100 * x, y, 0.5).angular, abs=1e-12
    )
    # at the ends the angular forms agree whatever the units
    for alpha in (0.0, 1.0):
        assert shape_metric(x, y, alpha).angular == pytest.approx(
            netrep_linear_metric(x, y, alpha), abs=1e-9
        )


def test_alpha_one_is_procrustes_and_alpha_zero_is_mean_cca():
    rng = np.random.default_rng(2)
    for n, p, q in ((150, 6, 6), (40, 10, 7), (12, 30, 30)):
        x, y = ref.correlated_pair(rng, n, p, q, noise=0.5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RepspaceWarning)
            proc = shape_metric(x, y, 1.0)
            assert proc.euclidean**2 == pytest.approx(procrustes_distance(x, y), abs=1e-12)
            full = shape_metric(x, y, 0.0)
            res = cca(x, y)
        assert full.cosine == pytest.approx(
            res.correlations.sum() / math.sqrt(res.rank_x * res.rank_y), abs=1e-12
        )
        if p == q:
            assert full.cosine == pytest.approx(res.mean, abs=1e-12)
        assert full.euclidean == pytest.approx(2 * math.sin(full.angular / 2), abs=1e-12)


@st.composite
def pairs(draw):
    n = draw(st.integers(5, 40))
    p, q = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x, y = well_conditioned_pair(
        rng,
        n,
        p,
        q,
        noise=draw(st.sampled_from([0.1, 1.0])),
        offset=draw(st.sampled_from([0.0, -300.0])),
    )
    cuts = sorted({0, n, *rng.integers(1, n, size=draw(st.integers(0, 3))).tolist()})
    return x, y, cuts, draw(st.sampled_from([0.0, 0.3, 1.0])), draw(st.sampled_from([0.0, 0.1]))


@settings(max_examples=12, deadline=None)
@given(pairs())
def test_moments_rows_array_and_streaming_agree(data):
    x, y, cuts, alpha, ridge = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepspaceWarning)
        mx, my, mxy = streamed(x, y, "moments", cuts)
        rx, ry, _ = streamed(x, y, "rows", cuts)
        got = (
            shape_metric_from_moments(mx, my, mxy, alpha=alpha, ridge=ridge),
            shape_metric_from_rows(rx, ry, alpha=alpha, ridge=ridge),
            shape_metric(x, y, alpha, ridge=ridge),
        )
    cos = [g.cosine for g in got]
    assert max(cos) - min(cos) <= 1e-10, cos
    euc = [g.euclidean**2 for g in got]
    assert max(euc) - min(euc) <= 2e-10, euc


@st.composite
def triple(draw):
    n = draw(st.integers(20, 50))
    p = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x = rng.standard_normal((n, p))
    y = x @ rng.standard_normal((p, p)) + rng.standard_normal((n, p))
    z = y @ rng.standard_normal((p, p)) + rng.standard_normal((n, p))
    return x, y, z, rng, draw(st.sampled_from([0.0, 0.5, 1.0]))


@settings(max_examples=12, deadline=None)
@given(triple())
def test_metric_axioms_and_invariances(data):
    x, y, z, rng, alpha = data
    d = {
        k: shape_metric(a, b, alpha)
        for k, (a, b) in {"xy": (x, y), "yz": (y, z), "xz": (x, z), "yx": (y, x)}.items()
    }
    for form in ("angular", "euclidean"):
        f = {k: getattr(v, form) for k, v in d.items()}
        assert f["xz"] <= f["xy"] + f["yz"] + 1e-9  # triangle inequality
        assert f["xy"] == pytest.approx(f["yx"], abs=1e-9)  # symmetry
    assert shape_metric(x, x, alpha).cosine == pytest.approx(1.0, abs=1e-12)
    assert 0.0 <= d["xy"].angular <= math.pi / 2 and 0.0 <= d["xy"].euclidean <= math.sqrt(2)
    # orthogonal maps, isotropic scaling and translation, for every α
    q = ref.random_orthogonal(x.shape[1], rng)
    moved = shape_metric(0.01 * x @ q + 5.0, y, alpha)
    assert moved.cosine == pytest.approx(d["xy"].cosine, abs=1e-10)


def test_invertible_maps_only_at_alpha_zero():
    rng = np.random.default_rng(3)
    x, y = ref.correlated_pair(rng, 200, 4, 4, noise=0.5)
    a = np.diag([10.0, 1.0, 0.1, 3.0]) @ ref.random_orthogonal(4, rng)
    assert shape_metric(x @ a, y, 0.0).cosine == pytest.approx(
        shape_metric(x, y, 0.0).cosine, abs=1e-10
    )
    for alpha in (0.5, 1.0):
        assert abs(shape_metric(x @ a, y, alpha).angular - shape_metric(x, y, alpha).angular) > 1e-3


def test_ridge_and_rank_are_recorded_and_constant_is_undefined():
    rng = np.random.default_rng(4)
    x, y = ref.correlated_pair(rng, 100, 6, 5, noise=0.5)
    res = shape_metric(x, y, 0.0, ridge=0.5, rank=3)
    assert (res.rank_x, res.rank_y, res.ridge) == (3, 3, 0.5)
    with pytest.warns(UndefinedMetricWarning, match="shape metric is undefined: y"):
        bad = shape_metric(x, np.full((100, 2), 4.0), 0.5)
    assert math.isnan(bad.angular) and math.isnan(bad.euclidean)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        shape_metric(x, y, 1.5)
