"""Delete-one-block jackknife intervals for every closed-form metric of a held pair of rows.

The rows X (n × p) and Y (n × q) of a layer on the rows route are split into B blocks of
⌊n/B⌋ rows by row number (row i in block i mod B; the last n mod B rows stay in every
replicate: the same blocks for every checkpoint, so differences between checkpoints are
paired).  Replicate b recomputes the metric on the n − |block b|
other rows, re-centred.  Everything goes through three n × n Grams computed once per
pair, K = XXᵀ, L = YYᵀ, M = XYᵀ (uncentred, float64); a replicate only centres their
sub-matrices, H·K_II·H with H = I − 11ᵀ/m, and decomposes m × m matrices:

    CKA         ⟨Kc, Lc⟩, ‖Kc‖², ‖Lc‖², diag(Kc), diag(Lc)       (as linear_cka_from_sums)
    spectrum    σᵢ² = λᵢ(Kc)                                       (ranks as the full sample)
    Procrustes  ‖XcᵀYc‖_* = ‖FxᵀFy‖_*,  Kc = FxFxᵀ, Lc = FyFyᵀ    (eigenvector factors)
    Fréchet     tr((ΣxΣy)^½) = ‖Mc‖_* / (m − 1)
    MMD         traces of Kc, Lc, Mc
    angles      VxᵀVy = Sx⁻¹ Uxᵀ Mc Uy Sy⁻¹ from the eigenvectors of Kc, Lc
    drift       per-sample cos and relative shift from diag(K), diag(L), diag(M)

The jackknife standard error is  se = √((B − 1)/B · Σ_b (θ₋b − θ̄)²)  and the interval
θ̂ ± t_{B−1, (1+level)/2} · se (Tukey 1958; Efron & Stein 1981 for its variance bias; the
delete-d form with d = n/B is consistent for quantiles too, Shao & Wu 1989).  The point
estimate stays the full-sample value: no bias correction is applied, so a report's number
does not depend on B.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import stdtrit  # the t quantile; scipy.stats costs 0.4 s to import

from repspace.closed_forms.cka import linear_cka_from_sums
from repspace.closed_forms.drift import overlap_of_angles, resolved_count
from repspace.closed_forms.spectrum import Spectrum
from repspace.closed_forms.summary import RANKS, spectrum_summary

__all__ = [
    "DEFAULT_BLOCKS",
    "LEVEL",
    "Interval",
    "block_ids",
    "default_blocks",
    "grams_affordable",
    "jackknife_interval",
    "rows_replicates",
]

DEFAULT_BLOCKS = 20
LEVEL = 0.95
#: the n × n jackknife's working set (about eight n × n float64 matrices: K, L, M, one
#: replicate's three centred sub-matrices, temporaries) is affordable up to this size (n ≤ 1448)
GRAM_FLOOR_BYTES = 128 * 2**20
GRAM_COPIES = 8


def grams_affordable(n: int, p: int, q: int) -> bool:
    """Whether the replicates may go through n × n Grams: while n is no larger than the wider
    side (the n × n forms are then no larger than the d × d ones the rows route avoids) or
    their working set is small in absolute terms (:data:`GRAM_FLOOR_BYTES`).  Past that, a
    replicate's eigendecompositions cost O(n³) where the width-space ones cost O(d³), and the
    working set outgrows the rows: a 2048-wide layer at n = 6000 would hold 2.3 GB and
    decompose forty 5700² matrices per layer."""
    return n <= max(p, q) or GRAM_COPIES * 8 * n * n <= GRAM_FLOOR_BYTES


@dataclass(frozen=True)
class Interval:
    """A metric's interval: ``estimate`` (the full-sample value), jackknife ``se``, and
    ``low`` / ``high`` at ``level`` from ``blocks`` replicates."""

    estimate: float
    se: float
    low: float
    high: float
    level: float
    blocks: int
    method: str = "jackknife"

    def to_dict(self) -> dict:
        return {"se": self.se, "low": self.low, "high": self.high}


def default_blocks(n: int, blocks: int = DEFAULT_BLOCKS) -> int:
    """B = min(blocks, n): delete-one-row jackknife on fewer rows than blocks."""
    return max(0, min(blocks, n))


def block_ids(n: int, blocks: int) -> np.ndarray:
    """Block of each row: row i in block i mod B, for the first B·⌊n/B⌋ rows; the last
    n mod B rows are in every replicate (-1), so every replicate has the same m = n − ⌊n/B⌋
    rows: a rank bounded by m does not vary with the size of the deleted block."""
    ids = np.arange(n) % blocks
    ids[blocks * (n // blocks) :] = -1
    return ids


def jackknife_interval(estimate: float, replicates: np.ndarray, level: float = LEVEL) -> Interval:
    """The jackknife interval of ``estimate`` from its delete-one-block ``replicates``;
    NaN bounds when the estimate or any replicate is undefined."""
    reps = np.asarray(replicates, dtype=np.float64)
    b = reps.size
    if b < 2 or not math.isfinite(estimate) or not np.isfinite(reps).all():
        return Interval(estimate, math.nan, math.nan, math.nan, level, b)
    se = math.sqrt((b - 1) / b * float(((reps - reps.mean()) ** 2).sum()))
    half = float(stdtrit(b - 1, (1 + level) / 2)) * se
    return Interval(estimate, se, estimate - half, estimate + half, level, b)


@dataclass
class _Grams:
    x: torch.Tensor  # raw rows (n × p), float64
    y: torch.Tensor
    k: torch.Tensor  # XXᵀ
    l: torch.Tensor  # YYᵀ
    m: torch.Tensor | None  # XYᵀ, when a metric needs it (p = q)


def _centre(g: torch.Tensor) -> torch.Tensor:
    r = g.mean(1, keepdim=True)
    return g - r - g.mean(0, keepdim=True) + r.mean()


def _eig_desc(kc: torch.Tensor):
    w, u = torch.linalg.eigh((kc + kc.T) / 2)
    return w.flip(0).clamp_min(0.0), u.flip(1)


def _replicate(
    g: _Grams,
    keep: torch.Tensor,
    want: Callable[[str], bool],
    top_k: int,
    eps: tuple[float, float],
    ranks: dict[str, tuple[str, ...]],
) -> dict[str, float]:
    m = int(keep.numel())
    kc, lc = _centre(g.k[keep][:, keep]), _centre(g.l[keep][:, keep])
    same_width = g.x.shape[1] == g.y.shape[1]
    out: dict[str, float] = {}
    kd, ld = kc.diagonal(), lc.diagonal()
    sums = (
        float((kc * lc).sum()),
        float((kc * kc).sum()),
        float((lc * lc).sum()),
        float(kd @ ld),
        float(kd @ kd),
        float(ld @ ld),
        float(kd.sum()),
        float(ld.sum()),
        m,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an undefined replicate is NaN; the interval says so
        if want("linear_cka"):
            out["linear_cka"] = linear_cka_from_sums(*sums)
        if want("linear_cka_debiased"):
            out["linear_cka_debiased"] = linear_cka_from_sums(*sums, debiased=True)
    need_eig = (
        want("procrustes_distance")
        or ranks["base"]
        or ranks["tuned"]
        or (same_width and want("subspace_overlap"))
    )
    if need_eig:
        (wx, ux), (wy, uy) = _eig_desc(kc), _eig_desc(lc)
    if want("procrustes_distance"):
        norm = math.sqrt(float(kd.sum()) * float(ld.sum()))
        fx, fy = ux * wx.sqrt(), uy * wy.sqrt()
        out["procrustes_distance"] = (
            2.0 - 2.0 * float(torch.linalg.svdvals(fx.T @ fy).sum()) / norm
            if norm > 0
            else math.nan
        )
    for side, w, width, e in (
        ("base", wx if need_eig else None, g.x.shape[1], eps[0]),
        ("tuned", wy if need_eig else None, g.y.shape[1], eps[1]),
    ):
        if ranks[side]:
            sp = Spectrum(w.sqrt().cpu().numpy()[: min(m, width)], m, width, "rows", e)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out.update({f"{r}_{side}": v for r, v in spectrum_summary(sp, ranks[side]).items()})
    if g.m is not None:
        mc = _centre(g.m[keep][:, keep])
        mx, my = g.x[keep].mean(0), g.y[keep].mean(0)
        diff = float((mx - my) @ (mx - my))
        if want("frechet_distance"):
            out["frechet_distance"] = diff + (
                float(kd.sum()) + float(ld.sum()) - 2.0 * float(torch.linalg.svdvals(mc).sum())
            ) / (m - 1)
        if want("mmd_linear"):
            out["mmd_linear"] = diff - float(kd.sum() + ld.sum() - 2 * mc.diagonal().sum()) / (
                m * (m - 1)
            )
        if want("subspace_overlap"):
            k = min(top_k, g.x.shape[1], m - 1)
            rx = resolved_count(wx.sqrt().cpu().numpy(), g.x.shape[1], eps[0])
            ry = resolved_count(wy.sqrt().cpu().numpy(), g.y.shape[1], eps[1])
            if min(rx, ry) < k:
                out["subspace_overlap"] = math.nan
            else:
                sx, sy = wx[:k].sqrt(), wy[:k].sqrt()
                cross = (ux[:, :k].T @ mc @ uy[:, :k]) / sx[:, None] / sy[None, :]  # V_xᵀV_y
                cos = np.minimum(np.linalg.svd(cross.cpu().numpy(), compute_uv=False), 1.0)
                out["subspace_overlap"] = overlap_of_angles(np.arccos(cos))
    if same_width and any(
        want(f"{a}_{b}") for a in ("cosine_similarity", "relative_shift") for b in ("mean", "q50")
    ):
        kk, ll = g.k.diagonal()[keep], g.l.diagonal()[keep]
        mm = (g.x[keep] * g.y[keep]).sum(1)
        cos = mm / (kk * ll).sqrt()
        rel = (kk + ll - 2 * mm).clamp_min(0.0).sqrt() / kk.sqrt()
        for name, values in (("cosine_similarity", cos), ("relative_shift", rel)):
            finite = values[torch.isfinite(values)]
            if want(f"{name}_mean"):
                out[f"{name}_mean"] = float(finite.mean()) if finite.numel() else math.nan
            if want(f"{name}_q50"):
                out[f"{name}_q50"] = float(finite.median()) if finite.numel() else math.nan
    return out


def rows_replicates(
    x: torch.Tensor,
    y: torch.Tensor,
    blocks: int,
    metrics: Collection[str] | None = None,
    top_k: int = 10,
    eps: tuple[float, float] = (0.0, 0.0),
) -> dict[str, np.ndarray]:
    """``{metric: (B,) replicates}``: each metric of :func:`layerwise_summary` recomputed
    without each block of rows (``x``, ``y``: the raw rows, n × p and n × q, in order).

    ``eps``: the moments route's resolution of each side (for the ranks and the angles).
    """

    def want(key: str) -> bool:
        return metrics is None or any(key.startswith(m) for m in metrics)

    ranks = {side: tuple(r for r in RANKS if want(f"{r}_{side}")) for side in ("base", "tuned")}
    x, y = x.double(), y.double()
    cross = x.shape[1] == y.shape[1] and any(
        want(k) for k in ("frechet_distance", "mmd_linear", "subspace_overlap")
    )
    g = _Grams(x, y, x @ x.T, y @ y.T, x @ y.T if cross else None)
    ids = torch.as_tensor(block_ids(x.shape[0], blocks))
    out: dict[str, list[float]] = {}
    for b in range(blocks):
        keep = torch.nonzero(ids != b).flatten()
        for key, value in _replicate(g, keep, want, top_k, eps, ranks).items():
            out.setdefault(key, []).append(value)
    return {k: np.asarray(v) for k, v in out.items()}
