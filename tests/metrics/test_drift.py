"""Drift metrics against scipy and naive reference formulas."""

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from repspace.metrics import (
    frechet_distance,
    mmd,
    mutual_knn_overlap,
    paired_drift,
    principal_angles,
    procrustes_distance,
    subspace_overlap,
)
from repspace.statistics import FeatureMoments
from tests.metrics import reference as ref


def frechet_sqrtm(x, y):
    """The textbook formula (pytorch-fid) with scipy's sqrtm — only for well-conditioned tests."""
    mx, my = x.mean(0), y.mean(0)
    cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(cx @ cy).real
    return float(((mx - my) ** 2).sum() + np.trace(cx + cy - 2 * covmean))


@pytest.mark.parametrize("nx,ny,p", [(400, 300, 6), (200, 200, 20)])
def test_frechet_equals_sqrtm_formula_on_well_conditioned_covariances(rng, nx, ny, p):
    x = rng.standard_normal((nx, p)) @ rng.standard_normal((p, p)) * 0.3 + 1.0
    y = rng.standard_normal((ny, p)) * np.linspace(0.5, 2, p) - 0.5
    assert frechet_distance(x, y) == pytest.approx(frechet_sqrtm(x, y), rel=1e-6)
    fx, fy = FeatureMoments(precision="float64"), FeatureMoments(precision="float64")
    fx.update(x)
    fy.update(y)
    assert frechet_distance(fx, fy) == pytest.approx(frechet_sqrtm(x, y), rel=1e-6)


def test_frechet_nuclear_norm_route_when_n_below_p(rng):
    x, y = rng.standard_normal((15, 40)), rng.standard_normal((12, 40)) + 0.3
    fx, fy = FeatureMoments(precision="float64"), FeatureMoments(precision="float64")
    fx.update(x)
    fy.update(y)
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(fx, fy), rel=1e-8)


def test_frechet_of_identical_samples_is_zero(rng):
    x = rng.standard_normal((100, 5))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-10)
    assert frechet_distance(x, x + 2.0) == pytest.approx(5 * 4.0, rel=1e-10)


@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("tile", [3, 1024])
def test_mmd_rbf_equals_naive_double_loop(rng, unbiased, tile):
    x, y = rng.standard_normal((12, 3)), rng.standard_normal((9, 3)) + 0.5
    sigma = 1.3
    kern = lambda a, b: math.exp(-((a - b) ** 2).sum() / (2 * sigma**2))  # noqa: E731
    got = mmd(x, y, kernel="rbf", sigma=sigma, unbiased=unbiased, tile_size=tile)
    assert got.mmd2 == pytest.approx(ref.mmd2_naive(x, y, kern, unbiased), rel=1e-10)
    assert got.p_value is None and got.sigma == sigma


@pytest.mark.parametrize("unbiased", [True, False])
def test_mmd_linear_equals_naive_double_loop(rng, unbiased):
    x, y = rng.standard_normal((10, 4)) + 3, rng.standard_normal((7, 4)) + 3.2
    got = mmd(x, y, kernel="linear", unbiased=unbiased).mmd2
    assert got == pytest.approx(ref.mmd2_naive(x, y, lambda a, b: a @ b, unbiased), rel=1e-9)
    if not unbiased:
        assert got == pytest.approx(((x.mean(0) - y.mean(0)) ** 2).sum(), rel=1e-9)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_paired_mmd_equals_naive_h_statistic(rng, kernel):
    x = rng.standard_normal((11, 3))
    y = x + 0.3 * rng.standard_normal((11, 3)) + 0.2
    sigma = 1.1
    kern = (
        (lambda a, b: a @ b)
        if kernel == "linear"  # noqa: E731
        else (lambda a, b: math.exp(-((a - b) ** 2).sum() / (2 * sigma**2)))
    )
    got = mmd(x, y, kernel=kernel, sigma=sigma, paired=True, tile_size=4).mmd2
    assert got == pytest.approx(ref.mmd2_paired_naive(x, y, kern), rel=1e-9)
    assert mmd(x, x, kernel=kernel, sigma=sigma, paired=True).mmd2 == pytest.approx(0, abs=1e-12)
    assert mmd(x, x, kernel=kernel, sigma=sigma).mmd2 < 0  # the unpaired estimator is not 0
    with pytest.raises(ValueError, match="rows"):
        mmd(x, y[:-1], paired=True)


def test_paired_mmd_from_moments_matches(rng):
    from repspace.metrics.drift import mmd_linear_from_moments
    from repspace.statistics import PairedMoments

    x = rng.standard_normal((40, 5))
    y = 1.5 * x + rng.standard_normal((40, 5))
    acc = PairedMoments(precision="float64").update(x, y)
    got = mmd_linear_from_moments(acc.x.centred(), acc.y.centred(), acc.xy.centred(acc.x, acc.y))
    assert got == pytest.approx(mmd(x, y, kernel="linear", paired=True).mmd2, rel=1e-10)


def test_paired_permutation_test_detects_a_shift(rng):
    x = rng.standard_normal((50, 3))
    assert mmd(x, x + 0.5, paired=True, permutations=99).p_value == pytest.approx(0.01)
    noisy = mmd(x, x + 0.01 * rng.standard_normal(x.shape), paired=True, permutations=99)
    assert noisy.p_value > 0.05


def test_mmd_median_heuristic_bandwidth(rng):
    x, y = rng.standard_normal((20, 3)), rng.standard_normal((15, 3))
    res = mmd(x, y, sigma_factor=0.5)
    assert res.sigma == pytest.approx(0.5 * ref.median_offdiag_distance(np.vstack([x, y])))


def test_mmd_permutation_test(rng):
    same = mmd(rng.standard_normal((60, 3)), rng.standard_normal((60, 3)), permutations=199)
    shifted = mmd(
        rng.standard_normal((60, 3)), rng.standard_normal((60, 3)) + 1.0, permutations=199
    )
    assert shifted.p_value == pytest.approx(1 / 200)
    assert same.p_value > 0.05
    again = mmd(
        rng.standard_normal((60, 3)), rng.standard_normal((60, 3)) + 1.0, permutations=199, seed=3
    )
    assert again.permutations == 199 and 0 < again.p_value <= 1


def test_mmd_permutation_statistics_are_the_statistic_on_relabelled_data(rng):
    # With one permutation the reused-tile statistic must equal MMD² on the permuted split.
    import torch

    x, y = rng.standard_normal((7, 2)), rng.standard_normal((5, 2)) + 1
    z = np.vstack([x, y])
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(12, generator=gen)[:7].numpy()
    mask = np.zeros(12, bool)
    mask[perm] = True
    expected = mmd(z[mask], z[~mask], sigma=1.0).mmd2
    observed = mmd(x, y, sigma=1.0).mmd2
    res = mmd(x, y, sigma=1.0, permutations=1)
    assert res.p_value == (1.0 if expected >= observed else 0.5)


def test_paired_drift_exact(rng):
    x = rng.standard_normal((50, 4))
    y = 2 * x  # same direction, twice as long
    d = paired_drift(x, y)
    assert d["cosine_similarity"]["mean"] == pytest.approx(1.0)
    assert d["relative_shift"]["q50"] == pytest.approx(1.0)
    z = -x
    assert paired_drift(x, z)["cosine_similarity"]["max"] == pytest.approx(-1.0)
    x[0] = 0.0
    assert paired_drift(x, y)["relative_shift"]["n_undefined"] == 1


def test_procrustes_matches_scipy_orthogonal_procrustes(rng):
    x, y = ref.correlated_pair(rng, 60, 5, 5)
    xc, yc = x - x.mean(0), y - y.mean(0)
    xc, yc = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
    r, _ = scipy.linalg.orthogonal_procrustes(yc, xc)
    expected = np.linalg.norm(xc - yc @ r) ** 2
    assert procrustes_distance(x, y) == pytest.approx(expected, rel=1e-9)


def test_procrustes_wide_route_matches_tall_route(rng):
    x, y = rng.standard_normal((6, 30)), rng.standard_normal((6, 25))
    xc, yc = x - x.mean(0), y - y.mean(0)
    nuc = np.linalg.svd(xc.T @ yc, compute_uv=False).sum()
    expected = 2 - 2 * nuc / (np.linalg.norm(xc) * np.linalg.norm(yc))
    assert procrustes_distance(x, y) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_mutual_knn_overlap_equals_brute_force(rng, metric):
    x, y = rng.standard_normal((40, 5)), rng.standard_normal((40, 5))
    y[:20] = x[:20] + 0.01 * y[:20]
    k = 4

    def knn(a):
        if metric == "cosine":
            a = a / np.linalg.norm(a, axis=1, keepdims=True)
            d = -(a @ a.T)
        else:
            d = ((a[:, None] - a[None]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        return [set(np.argsort(row, kind="stable")[:k]) for row in d]

    nx, ny = knn(x), knn(y)
    expected = np.mean([len(a & b) / k for a, b in zip(nx, ny)])
    assert mutual_knn_overlap(x, y, k=k, metric=metric, tile_size=7) == pytest.approx(expected)
    assert mutual_knn_overlap(x, x, k=k, metric=metric) == 1.0


def test_principal_angles_match_scipy_subspace_angles(rng):
    x = rng.standard_normal((300, 8)) * np.geomspace(5, 0.1, 8)
    y = x @ ref.random_orthogonal(8, rng) * 0.3 + x
    k = 3
    ux = np.linalg.svd(x - x.mean(0), full_matrices=False)[2][:k].T
    uy = np.linalg.svd(y - y.mean(0), full_matrices=False)[2][:k].T
    expected = np.sort(scipy.linalg.subspace_angles(ux, uy))
    np.testing.assert_allclose(principal_angles(x, y, k=k), expected, atol=1e-8)
    fx, fy = FeatureMoments(precision="float64"), FeatureMoments(precision="float64")
    fx.update(x)
    fy.update(y)
    np.testing.assert_allclose(principal_angles(fx, fy, k=k), expected, atol=1e-7)
    assert subspace_overlap(x, x, k=k) == pytest.approx(1.0)
