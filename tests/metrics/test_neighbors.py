"""CKNNA and Jaccard k-NN (issue 29): against platonic-rep's and ReSi's definitions written
independently (dense n × n, sklearn's neighbours), invariances and non-invariances."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.neighbors import NearestNeighbors

from repspace._validation import UndefinedMetricWarning
from repspace.metrics.drift import mutual_knn_overlap
from repspace.metrics.neighbors import cknna, jaccard_knn
from tests.metrics import reference as ref


def hsic_unbiased_as_platonic(k, l):
    """platonic-rep's hsic_unbiased: Song et al.'s eq. 5 with Σ K̃ ∘ L̃ᵀ as the trace term."""
    m = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    return (
        (kt * lt.T).sum()
        + kt.sum() * lt.sum() / ((m - 1) * (m - 2))
        - 2 * (kt @ lt).sum() / (m - 2)
    ) / (m * (m - 3))


def cknna_dense(a, b, k):
    """platonic-rep's AlignmentMetrics.cknna(topk=k, unbiased=True) on unit-norm rows (their
    compute_score normalises), dense masks, without their +1e-6 in the denominator."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    kk, ll = a @ a.T, b @ b.T
    n = len(a)

    def mask(g):
        h = g.copy()
        np.fill_diagonal(h, -np.inf)
        m = np.zeros((n, n))
        np.put_along_axis(m, np.argsort(-h, axis=1, kind="stable")[:, :k], 1.0, axis=1)
        return m

    def sim(g1, g2):
        m = mask(g1) * mask(g2)
        return hsic_unbiased_as_platonic(m * g1, m * g2)

    return sim(kk, ll) / np.sqrt(sim(kk, kk) * sim(ll, ll))


def jaccard_as_resi(a, b, k, metric="cosine"):
    """ReSi's jaccard_similarity: sklearn's k + 1 neighbours minus the point itself."""

    def nn(r):
        return NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(r).kneighbors(r)[1][:, 1:]

    na, nb = nn(a), nn(b)
    return float(np.mean([len(set(i) & set(j)) / len(set(i) | set(j)) for i, j in zip(na, nb)]))


def related(rng, n=40, p=6, q=5, noise=0.5):
    x = rng.standard_normal((n, p))
    return x, x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))


@pytest.mark.parametrize("k", [2, 5, 10, 20])
def test_cknna_matches_platonic_reps_definition(k):
    rng = np.random.default_rng(k)
    worst = 0.0
    for n, p, q in ((40, 6, 5), (60, 3, 12), (25, 8, 8)):
        x, y = related(rng, n, p, q)
        if k < n:
            worst = max(worst, abs(cknna(x, y, k) - cknna_dense(x, y, k)))
    assert worst < 1e-12, worst


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_jaccard_matches_resi(metric):
    rng = np.random.default_rng(1)
    for n, k in ((40, 5), (30, 10), (12, 1)):
        x, y = related(rng, n)
        assert jaccard_knn(x, y, k, metric) == pytest.approx(
            jaccard_as_resi(x, y, k, metric), abs=1e-12
        )


def test_jaccard_and_mutual_knn_count_the_same_shared_neighbours():
    """Per sample, Jaccard = s/(2k − s) and overlap = s/k: equal at 0 and 1, Jaccard below."""
    rng = np.random.default_rng(2)
    x, y = related(rng, 50)
    j, o = jaccard_knn(x, y, 5), mutual_knn_overlap(x, y, 5)
    assert 0 < j < o < 1
    assert jaccard_knn(x, x, 5) == mutual_knn_overlap(x, x, 5) == 1.0
    assert cknna(x, x, 5) == pytest.approx(1.0, abs=1e-12)


@st.composite
def pair(draw):
    n = draw(st.integers(12, 40))
    p, q = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x, y = ref.correlated_pair(rng, n, p, q, noise=1.0)
    return x, y, rng, draw(st.integers(2, min(8, n - 1)))


@settings(max_examples=15, deadline=None)
@given(pair())
def test_invariant_to_rotation_scale_and_sample_order(data):
    """Exact neighbour ties are measure-zero for continuous draws; the values must agree."""
    x, y, rng, k = data
    q = ref.random_orthogonal(x.shape[1], rng)
    perm = rng.permutation(len(x))
    for f in (cknna, jaccard_knn):
        base = f(x, y, k)
        assert f(4.0 * x @ q, y, k) == pytest.approx(base, abs=1e-9)
        assert f(x[perm], y[perm], k) == pytest.approx(base, abs=1e-9)
    # Jaccard is symmetric; CKNNA is not (1ᵀAB1 ≠ 1ᵀBA1 for the non-symmetric masked kernels)
    assert jaccard_knn(y, x, k) == pytest.approx(jaccard_knn(x, y, k), abs=1e-12)
    assert jaccard_knn(x + 5.0, y, k, "euclidean") == pytest.approx(
        jaccard_knn(x, y, k, "euclidean"), abs=1e-12
    )


def test_not_invariant_to_translation_nor_to_breaking_the_pairing():
    rng = np.random.default_rng(3)
    x, y = related(rng, 60, 4, 4, noise=0.2)
    for f in (cknna, jaccard_knn):
        base = f(x, y, 5)
        assert abs(f(x + 2.0, y, 5) - base) > 1e-3  # cosine neighbourhoods move
        assert f(x, y[rng.permutation(60)], 5) < base - 0.2


def test_arguments_and_undefined():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match=r"k must be an integer in \[2, n_samples − 1\]"):
        cknna(x, x, 1)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, n_samples − 1\] = \[1, 9"):
        jaccard_knn(x, x, 10)
    with pytest.raises(ValueError, match="metric must be one of cosine, euclidean"):
        jaccard_knn(x, x, 3, "inner")
    with pytest.raises(ValueError, match="cosine neighbours need non-zero rows; 1 row"):
        cknna(np.vstack([x, np.zeros((1, 3))]), rng.standard_normal((11, 3)), 3)
    with pytest.raises(ValueError, match="CKNNA needs at least 4 samples"):
        cknna(x[:3], x[:3], 2)
    simplex = np.eye(5) - 0.2  # 5 centred vertices: every off-diagonal Kᵢⱼ the same
    with pytest.warns(UndefinedMetricWarning, match="CKNNA is undefined"):
        # k = n − 1 keeps every pair; unbiased HSIC of a constant kernel is 0
        assert math.isnan(cknna(simplex, rng.standard_normal((5, 3)), 4))
