"""Independent reference implementations, written from the papers' Gram-matrix formulas.

They share no code with repspace: plain numpy, explicit n × n matrices, explicit loops.
"""

import numpy as np


def centering(n):
    return np.eye(n) - np.ones((n, n)) / n


def hsic_biased(k, l):
    """Kornblith et al. 2019: HSIC = tr(K H L H) / (n − 1)²."""
    h = centering(k.shape[0])
    return np.trace(k @ h @ l @ h) / (k.shape[0] - 1) ** 2


def hsic_unbiased(k, l):
    """Song et al. 2012, eq. (5), written literally."""
    n = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    term1 = np.trace(kt @ lt)
    term2 = (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return (term1 + term2 - term3) / (n * (n - 3))


def cka_gram(k, l, debiased=False):
    f = hsic_unbiased if debiased else hsic_biased
    return f(k, l) / np.sqrt(f(k, k) * f(l, l))


def linear_gram(x):
    return x @ x.T


def rbf_gram(x, sigma):
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.exp(-sq / (2 * sigma**2))


def median_offdiag_distance(x):
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    iu = np.triu_indices(x.shape[0], 1)
    return np.median(d[iu])


def mmd2_naive(x, y, kern, unbiased=True):
    """Gretton et al. 2012, eq. (3) (unbiased) / eq. (5) (biased), as double loops."""
    m, n = len(x), len(y)
    sxx = sum(kern(x[i], x[j]) for i in range(m) for j in range(m) if (i != j or not unbiased))
    syy = sum(kern(y[i], y[j]) for i in range(n) for j in range(n) if (i != j or not unbiased))
    sxy = sum(kern(x[i], y[j]) for i in range(m) for j in range(n))
    if unbiased:
        return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)
    return sxx / m**2 + syy / n**2 - 2 * sxy / (m * n)


def random_orthogonal(p, rng):
    q, r = np.linalg.qr(rng.standard_normal((p, p)))
    return q * np.sign(np.diag(r))


def correlated_pair(rng, n=200, p=12, q=9, noise=0.5):
    x = rng.standard_normal((n, p)) @ rng.standard_normal((p, p))
    y = x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))
    return x, y


def mmd2_paired_naive(x, y, kern):
    """Gretton et al. 2012, Lemma 6: U-statistic of h over pairs i ≠ j (m = n)."""
    n = len(x)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                total += kern(x[i], x[j]) + kern(y[i], y[j]) - kern(x[i], y[j]) - kern(x[j], y[i])
    return total / (n * (n - 1))
