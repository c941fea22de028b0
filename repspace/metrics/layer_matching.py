"""Layer matching when depth changes: which base layer does each tuned layer correspond to?

Block expansion (LLaMA-Pro: identity-initialised blocks inserted and trained), peft's
``layer_replication`` and layer pruning change the number of layers, so "layer ℓ of the
base against layer ℓ of the tuned model" stops making sense.  Given the cross-layer CKA
matrix C (C[i, j] = CKA(base layer i, tuned layer j), :func:`repspace.metrics.cka_matrix`),
the matching m assigns every tuned layer j a base layer m(j):

* ``monotone=True`` (default): m non-decreasing (depth order is kept; several tuned layers
  may share a base layer, base layers may be skipped), maximising Σⱼ C[m(j), j].  Dynamic
  programming over (tuned layer, base layer): F[j, i] = C[i, j] + max_{i' ≤ i} F[j − 1, i'],
  O(L_base · L_tuned) time, exact (ties go to the smaller base index);
* ``monotone=False``: m(j) = argmaxᵢ C[i, j], each tuned layer on its own.

NaN entries (a constant layer) are never chosen; a tuned layer whose whole column is NaN is
an error naming it.  The total and per-pair CKA of the matching are reported with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["LayerMatching", "match_layers"]


@dataclass(frozen=True)
class LayerMatching:
    """``mapping[j]``: the base index matched to tuned layer j; ``scores[j]`` its CKA."""

    base_names: list[str]
    tuned_names: list[str]
    matrix: np.ndarray
    mapping: list[int]
    scores: list[float]
    total: float
    monotone: bool

    def pairs(self) -> list[tuple[str, str, float]]:
        """``[(tuned layer, matched base layer, CKA)]`` in tuned-layer order."""
        return [
            (t, self.base_names[i], s)
            for t, i, s in zip(self.tuned_names, self.mapping, self.scores)
        ]

    @property
    def unmatched_base(self) -> list[str]:
        """Base layers no tuned layer was matched to (e.g. pruned ones)."""
        used = set(self.mapping)
        return [b for i, b in enumerate(self.base_names) if i not in used]

    def as_dict(self) -> dict:
        return {
            "monotone": self.monotone,
            "total": self.total,
            "pairs": [{"tuned": t, "base": b, "cka": s} for t, b, s in self.pairs()],
            "unmatched_base": self.unmatched_base,
        }


def _names(names, n: int, what: str) -> list[str]:
    if names is None:
        return [str(i) for i in range(n)]
    names = [str(x) for x in names]
    if len(names) != n:
        raise ValueError(
            f"{what} has {len(names)} names for {n} matrix {'rows' if what == 'base_names' else 'columns'}; "
            "give one name per layer"
        )
    return names


def match_layers(
    matrix,
    base_names: Sequence[str] | None = None,
    tuned_names: Sequence[str] | None = None,
    monotone: bool = True,
) -> LayerMatching:
    """Match tuned layers (columns of ``matrix``) to base layers (rows); see the module doc.

    ``matrix`` may be the ``(matrix, base_names, tuned_names)`` tuple that
    :func:`repspace.metrics.cka_matrix` returns (then leave the names out).
    """
    if (
        isinstance(matrix, tuple)
        and len(matrix) == 3
        and base_names is None
        and tuned_names is None
    ):
        matrix, base_names, tuned_names = matrix
    c = np.asarray(matrix, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(
            f"matrix must be a non-empty 2-D (base layers × tuned layers) array; got "
            f"shape {c.shape}"
        )
    if np.isinf(c).any():
        raise ValueError("matrix holds ±Inf; CKA values are finite (NaN marks an undefined one)")
    nb, nt = c.shape
    bn, tn = _names(base_names, nb, "base_names"), _names(tuned_names, nt, "tuned_names")
    dead = [tn[j] for j in range(nt) if np.isnan(c[:, j]).all()]
    if dead:
        raise ValueError(
            f"tuned layer {dead[0]!r} has an undefined CKA with every base layer (a "
            "constant layer?); leave it out of the matching"
        )
    score = np.where(np.isnan(c), -np.inf, c)
    if not monotone:
        mapping = [int(np.argmax(score[:, j])) for j in range(nt)]
    else:
        f = np.empty((nt, nb))
        arg = np.zeros((nt, nb), dtype=np.int64)  # best predecessor i' ≤ i for (j, i)
        f[0] = score[:, 0]
        for j in range(1, nt):
            best, where = -np.inf, 0
            for i in range(nb):
                if f[j - 1, i] > best:  # strict: ties keep the smaller index
                    best, where = f[j - 1, i], i
                f[j, i] = score[i, j] + best
                arg[j, i] = where
        if not np.isfinite(f[-1]).any():
            raise ValueError(
                "no monotone matching avoids the undefined (NaN) entries; try monotone=False"
            )
        i = int(np.argmax(f[-1]))
        mapping = [0] * nt
        for j in range(nt - 1, -1, -1):
            mapping[j] = i
            i = int(arg[j, i])
    scores = [float(c[i, j]) for j, i in enumerate(mapping)]
    return LayerMatching(bn, tn, c, mapping, scores, float(sum(scores)), monotone)
