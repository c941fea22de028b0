"""Centered kernel alignment (CKA): linear (exact, streaming), minibatch and RBF.

Shapes: ``x`` is (n, p) features of the base model, ``y`` is (n, q) features of the
tuned model for the *same* n inputs in the same order.

References
----------
Kornblith, Norouzi, Lee, Hinton. Similarity of Neural Network Representations
Revisited. ICML 2019.  Song, Smola, Gretton, Bedo, Borgwardt. Feature Selection via
Dependence Maximization. JMLR 2012 (unbiased HSIC₁).  Nguyen, Raghu, Kornblith. Do Wide
and Deep Networks Learn the Same Things? ICLR 2021 (minibatch CKA).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from repspace._validation import (
    as_matrix,
    check_finite,
    check_min_rows,
    check_paired,
    warn_undefined,
)
from repspace.closed_forms.cka import linear_cka_from_moments
from repspace.closed_forms.kernels import (
    cka_from_hsic,
    hsic_from_sums,
    median_distance,
    rbf_gram_sums,
)
from repspace.statistics.base import Accumulator
from repspace.statistics.layerwise import LayerwiseMoments
from repspace.statistics.moments import CrossMoments, FeatureMoments, gemm_dtype

# The one-call linear CKA shifts its rows into one scratch buffer per side, a chunk at a
# time.  A buffer above glibc's largest mmap threshold (32 MiB) is mapped fresh on every
# call and page-faults on first touch -- 13 ms for 16384 × 768 float32, half the cost of
# the subtraction it holds; below it the heap reuses the memory.  So a chunk is sized in
# bytes, and the GEMMs still see thousands of rows (as fast per flop as the whole matrix).
ONE_CALL_CHUNK_BYTES = 12 << 20
ONE_CALL_CHUNK_ROWS = (1024, 16384)  # bounds on the rows per chunk


def one_call_chunk_rows(width: int, itemsize: int) -> int:
    """Rows per chunk of the one-call linear CKA for the wider side's width and item size."""
    lo, hi = ONE_CALL_CHUNK_ROWS
    return max(lo, min(hi, ONE_CALL_CHUNK_BYTES // max(1, width * itemsize)))


__all__ = [
    "linear_cka",
    "minibatch_cka",
    "MinibatchCKA",
    "rbf_cka",
    "cka_matrix",
    "linear_cka_from_moments",
]


def linear_cka(x, y, debiased: bool = False, precision: str = "auto") -> float:
    """Linear CKA between paired representations, computed exactly in feature space.

    Biased (Kornblith et al. 2019)::

        CKA(X, Y) = ‖Ycᵀ Xc‖²_F / (‖Xcᵀ Xc‖_F · ‖Ycᵀ Yc‖_F)

    Debiased: the same ratio with Song et al.'s unbiased HSIC₁ of the linear Grams in the
    numerator *and* both self terms (Nguyen et al. 2021).  The debiased value can be
    negative and is not clamped.

    Parameters
    ----------
    x : array or tensor, shape (n, p)
    y : array or tensor, shape (n, q)
    debiased : bool
        Use HSIC₁ (needs n ≥ 4).
    precision : {"auto", "float64"}
        GEMM precision; see :class:`~repspace.statistics.FeatureMoments`.

    Returns
    -------
    float in [0, 1] (biased), or a real number ≤ 1 (debiased); NaN with an
    ``UndefinedMetricWarning`` when either side is constant.

    Notes
    -----
    Time O(n·(p² + q² + pq)), memory O(p² + q² + pq) beyond the inputs (rows are
    processed in chunks of about 12 MiB, see ``one_call_chunk_rows``).  Identical (to round-off) to
    streaming the rows in batches through :class:`~repspace.statistics.PairedMoments`.
    Invariant to orthogonal transforms, isotropic scaling and translation of either side.
    """
    xt, yt = as_matrix(x, "x"), as_matrix(y, "y")
    check_paired(xt, yt)
    check_min_rows(
        xt.shape[0], 4 if debiased else 2, "debiased linear CKA" if debiased else "linear CKA"
    )
    fx, fy = FeatureMoments(precision, name="x"), FeatureMoments(precision, name="y")
    cross = CrossMoments()
    # Row chunks keep the extra memory (the shifted copies) flat in n and reuse one scratch
    # buffer per side (see ONE_CALL_CHUNK_BYTES for the size).
    dtypes = [gemm_dtype(t.dtype, precision) for t in (xt, yt)]
    width = max(xt.shape[1], yt.shape[1])
    itemsize = max(torch.empty(0, dtype=d).element_size() for d in dtypes)
    n = xt.shape[0]
    chunk = min(n, one_call_chunk_rows(width, itemsize))
    scratch = [
        torch.empty(chunk, t.shape[1], dtype=d, device=t.device) for t, d in zip((xt, yt), dtypes)
    ]
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        xs = fx.shifted(xt[start : start + rows], row_offset=start, out=scratch[0][:rows])
        ys = fy.shifted(yt[start : start + rows], row_offset=start, out=scratch[1][:rows])
        cross.update_shifted(xs, ys, fx.update_shifted(xs), fy.update_shifted(ys))
    return linear_cka_from_moments(fx.centred(), fy.centred(), cross.centred(fx, fy), debiased)


def _gram_hsic(k: torch.Tensor, l: torch.Tensor, debiased: bool) -> float:
    n = k.shape[0]
    return hsic_from_sums(
        float((k * l).sum()),
        k.sum(1).cpu().numpy(),
        l.sum(1).cpu().numpy(),
        torch.diagonal(k).cpu().numpy(),
        torch.diagonal(l).cpu().numpy(),
        n,
        debiased,
    )


class MinibatchCKA(Accumulator):
    """Streaming minibatch CKA (Nguyen et al. 2021) — a *different estimator* from CKA.

    Each ``update(x_batch, y_batch)`` computes linear-kernel HSIC(K,L), HSIC(K,K) and
    HSIC(L,L) on that minibatch alone; ``compute()`` returns
    mean(HSIC_KL) / √(mean(HSIC_KK)·mean(HSIC_LL)).  With debiased HSIC₁ this is an
    unbiased-per-batch estimate that does not depend on the batch size in expectation,
    but it is *not* equal to :func:`linear_cka` on the full data, which also uses pairs
    of samples that never share a batch.  Report it as "minibatch CKA (batch size b)".
    """

    # per-batch HSIC sums add across processes like everything else (all_reduce from the table)
    reductions = {"sums": "sum", "batches": "sum", "n": "sum"}
    defaults = {"sums": lambda self: np.zeros(3), "batches": 0, "n": 0}

    def __init__(self, debiased: bool = True):
        self.debiased = debiased
        self.reset()

    def update(self, x_batch, y_batch) -> "MinibatchCKA":
        x = as_matrix(x_batch, "x_batch").double()
        y = as_matrix(y_batch, "y_batch").double()
        check_paired(x, y, "x_batch", "y_batch")
        check_finite(x, "x_batch", self.n)
        check_finite(y, "y_batch", self.n)
        check_min_rows(x.shape[0], 4 if self.debiased else 2, "a minibatch of minibatch CKA")
        k, l = x @ x.T, y @ y.T
        self.sums += [
            _gram_hsic(k, l, self.debiased),
            _gram_hsic(k, k, self.debiased),
            _gram_hsic(l, l, self.debiased),
        ]
        self.batches += 1
        self.n += x.shape[0]
        return self

    def merge(self, other: "MinibatchCKA") -> "MinibatchCKA":
        if not isinstance(other, MinibatchCKA) or other.debiased != self.debiased:
            raise ValueError("can only merge MinibatchCKA accumulators with the same `debiased`")
        self.sums += other.sums
        self.batches += other.batches
        self.n += other.n
        return self

    def compute(self) -> float:
        if self.batches == 0:
            raise ValueError("no minibatches were accumulated; call update() first")
        hxy, hxx, hyy = self.sums / self.batches
        return cka_from_hsic(hxy, hxx, hyy, "minibatch CKA")


def minibatch_cka(x, y, batch_size: int = 256, debiased: bool = True) -> float:
    """Minibatch CKA (Nguyen et al. 2021) over consecutive row batches of ``batch_size``.

    A different estimator from :func:`linear_cka` — see :class:`MinibatchCKA`.  A final
    partial batch is used if it has at least 4 rows (2 when ``debiased=False``) and
    dropped otherwise.
    """
    xt, yt = as_matrix(x, "x"), as_matrix(y, "y")
    check_paired(xt, yt)
    minimum = 4 if debiased else 2
    if not isinstance(batch_size, int) or batch_size < minimum:
        raise ValueError(f"batch_size must be an integer ≥ {minimum}; got {batch_size!r}")
    check_min_rows(xt.shape[0], minimum, "minibatch CKA")
    acc = MinibatchCKA(debiased=debiased)
    for i in range(0, xt.shape[0], batch_size):
        if xt.shape[0] - i >= minimum:
            acc.update(xt[i : i + batch_size], yt[i : i + batch_size])
    return acc.compute()


def rbf_cka(
    x,
    y,
    sigma_factor: float = 0.8,
    debiased: bool = False,
    *,
    sigma_x: float | None = None,
    sigma_y: float | None = None,
    tile_size: int = 1024,
    seed: int = 0,
) -> float:
    """CKA with Gaussian RBF kernels k(a, b) = exp(−‖a − b‖² / (2σ²)).

    The bandwidth of each side is ``sigma_factor`` × the median pairwise distance of
    that side's samples (Kornblith et al. use factors 0.2–0.8), unless ``sigma_x`` /
    ``sigma_y`` are given.  The n² kernel sums are accumulated in float64 tiles of
    ``tile_size``², so memory is O(n + tile_size²) and time O(n²(p + q)).

    See :func:`~repspace.closed_forms.kernels.median_distance` for how the median is taken
    and :func:`~repspace.closed_forms.kernels.hsic_from_sums` for the HSIC estimators.
    """
    xt, yt = as_matrix(x, "x"), as_matrix(y, "y")
    check_paired(xt, yt)
    check_finite(xt, "x")
    check_finite(yt, "y")
    what = "debiased RBF CKA" if debiased else "RBF CKA"
    check_min_rows(xt.shape[0], 4 if debiased else 2, what)
    if not sigma_factor > 0:
        raise ValueError(f"sigma_factor must be > 0; got {sigma_factor!r}")
    if not isinstance(tile_size, int) or tile_size < 1:
        raise ValueError(f"tile_size must be a positive integer; got {tile_size!r}")
    sig = {}
    for name, t, given in (("x", xt, sigma_x), ("y", yt, sigma_y)):
        if given is not None:
            if not given > 0:
                raise ValueError(f"sigma_{name} must be > 0; got {given!r}")
            sig[name] = float(given)
            continue
        med = median_distance(t, seed=seed)
        if med == 0.0:
            return warn_undefined(
                f"{what} is undefined: the median pairwise distance of {name} "
                "is 0 (more than half of the samples are identical)"
            )
        sig[name] = sigma_factor * med
    s = rbf_gram_sums(xt, yt, sig["x"], sig["y"], tile_size=tile_size)
    hxy = hsic_from_sums(s.kl, s.k_rows, s.l_rows, s.k_diag, s.l_diag, s.n, debiased)
    hxx = hsic_from_sums(s.kk, s.k_rows, s.k_rows, s.k_diag, s.k_diag, s.n, debiased)
    hyy = hsic_from_sums(s.ll, s.l_rows, s.l_rows, s.l_diag, s.l_diag, s.n, debiased)
    return cka_from_hsic(hxy, hxx, hyy, what)


def cka_matrix(xs, ys=None, debiased: bool = False, precision: str = "auto"):
    """Cross-layer linear CKA between every base layer and every tuned layer.

    Parameters
    ----------
    xs : mapping ``{layer: (n, p_l)}``, sequence of arrays, or a
        :class:`~repspace.statistics.LayerwiseMoments` built with ``pairs="all"``
        (then ``ys`` must be None).
    ys : mapping or sequence of (n, q_l) arrays, the tuned model's layers; defaults to
        ``xs`` (self-similarity across layers of one model).

    Returns
    -------
    (matrix, base_names, tuned_names) with ``matrix[i, j] = CKA(xs[i], ys[j])``.
    """
    if isinstance(xs, LayerwiseMoments):
        if ys is not None:
            raise ValueError("pass either a LayerwiseMoments accumulator or two sets of layers")
        return xs.cka_matrix(debiased=debiased)
    xd = _as_layer_dict(xs, "xs")
    yd = xd if ys is None else _as_layer_dict(ys, "ys")
    acc = LayerwiseMoments(pairs="all", precision=precision, paired_drift=False)
    acc.update(xd, yd)
    return acc.cka_matrix(debiased=debiased)


def _as_layer_dict(layers, name: str) -> dict:
    if isinstance(layers, Mapping):
        out = dict(layers)
    elif isinstance(layers, Sequence) and not isinstance(layers, (str, bytes)):
        out = {str(i): v for i, v in enumerate(layers)}
    else:
        raise ValueError(
            f"{name} must be a mapping {{layer: array}} or a list of arrays; "
            f"got {type(layers).__name__}"
        )
    if not out:
        raise ValueError(f"{name} has no layers")
    return {k: as_matrix(v, f"{name}[{k}]") for k, v in out.items()}
