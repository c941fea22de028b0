"""Input validation shared by the statistics and metrics layers.

Every public function validates at the boundary (scikit-learn style) and fails with a
one-line ``ValueError`` that names the argument and says what to do.  Quantities that
are mathematically undefined for valid input (e.g. CKA of a constant representation)
are returned as NaN together with a :class:`RepspaceWarning`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

__all__ = [
    "RepspaceWarning",
    "UndefinedMetricWarning",
    "as_matrix",
    "check_finite",
    "check_paired",
    "check_min_rows",
    "warn_undefined",
]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class RepspaceWarning(UserWarning):
    """Base class of repspace warnings."""


class UndefinedMetricWarning(RepspaceWarning):
    """A metric is mathematically undefined for the given data and was returned as NaN."""


def warn_undefined(message: str) -> float:
    """Emit an :class:`UndefinedMetricWarning` and return NaN (for ``return warn_undefined(...)``)."""
    warnings.warn(message, UndefinedMetricWarning, stacklevel=3)
    return float("nan")


def as_matrix(a: Any, name: str) -> torch.Tensor:
    """Return ``a`` as a 2-D floating torch tensor (no copy where possible).

    Accepts numpy arrays, torch tensors (any device) and nested sequences.  float16 and
    bfloat16 are upcast to float32; integer and boolean data to float64.  Finiteness is
    *not* checked here (see :func:`check_finite`), so callers can report row offsets.
    """
    if isinstance(a, torch.Tensor):
        t = a.detach()
    elif isinstance(a, np.ndarray):
        if a.dtype.kind == "c":
            raise ValueError(f"{name} is complex ({a.dtype}); pass real-valued features")
        if a.dtype.kind not in "biuf":
            raise ValueError(
                f"{name} has dtype {a.dtype}; pass a numeric array or tensor of features"
            )
        t = torch.from_numpy(np.ascontiguousarray(a))
    else:
        try:
            t = torch.as_tensor(np.asarray(a, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must be a numpy array or torch tensor of shape (n_samples, n_features); "
                f"got {type(a).__name__} ({exc})"
            ) from None
    if t.is_complex():
        raise ValueError(f"{name} is complex ({t.dtype}); pass real-valued features")
    if t.ndim != 2:
        hint = (
            "reshape to (n_samples, 1) for a single feature or (1, n_features) for one sample"
            if t.ndim == 1
            else "pool or flatten the token axis first (e.g. pooling='mean') "
            "so that each row is one sample"
        )
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features); got {t.ndim}-D with shape "
            f"{tuple(t.shape)}: {hint}"
        )
    if t.shape[1] == 0:
        raise ValueError(f"{name} has no feature columns (shape {tuple(t.shape)})")
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    elif t.dtype not in _FLOAT_DTYPES:
        t = t.double()
    return t


def check_finite(t: torch.Tensor, name: str, row_offset: int = 0) -> None:
    """Raise ``ValueError`` if ``t`` holds NaN or Inf, saying how many rows/columns and where."""
    # Fast path: NaN/Inf propagate into the sum; only a non-finite sum (or an overflow of
    # finite values) needs the element-wise scan.
    if bool(torch.isfinite(t.sum())):
        return
    finite = torch.isfinite(t)
    if bool(finite.all()):
        return
    bad = ~finite
    bad_rows = torch.nonzero(bad.any(dim=1)).flatten()
    bad_cols = torch.nonzero(bad.any(dim=0)).flatten()
    n_bad = int(bad.sum())
    first_row = int(bad_rows[0]) + row_offset
    first_col = int(bad_cols[0])
    raise ValueError(
        f"{name} contains {n_bad} non-finite value(s) (NaN/Inf) in {len(bad_rows)} row(s) "
        f"and {len(bad_cols)} column(s), first at row {first_row}, column {first_col}; "
        "drop or impute those samples (a NaN often means an overflow in float16 - "
        "capture in float32)"
    )


def check_min_rows(n: int, minimum: int, what: str) -> None:
    if n < minimum:
        raise ValueError(f"{what} needs at least {minimum} samples (rows); got {n}")


def check_paired(x: torch.Tensor, y: torch.Tensor, x_name: str = "x", y_name: str = "y") -> None:
    """Paired metrics need the same samples (rows) in the same order on both sides."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{x_name} has {x.shape[0]} rows but {y_name} has {y.shape[0]}; paired metrics "
            "need the same samples, in the same order, through both models"
        )
