"""Rows or moments: which exact statistics a layer keeps, and what each costs.

Every metric of a compare is a function of the pooled rows X (n × p) and Y (n × q).  Two
exact ways to hold them:

    moments  Σxxᵀ, Σyyᵀ, Σxyᵀ (+ O(p + q)) in float64: (p² + q² + pq) · 8 bytes, flat in n;
             the metrics then decompose p × p / p × q matrices (cost O(d³) per layer).
    rows     the rows themselves, in the capture dtype: n · (p + q) · itemsize bytes;
             the metrics go through n × n Grams and thin SVDs (cost O(n² d) per layer).

A layer keeps its rows while they are smaller than its moments and is converted to
moments, exactly (the same batches replayed in order), the moment n crosses the
break-even.  A big model probed with a few hundred samples (n ≪ d) therefore never forms a
d × d matrix; a long probe (n ≫ d) streams in memory flat in n.
"""

from __future__ import annotations

__all__ = ["ROUTES", "moments_bytes", "rows_bytes", "keeps_rows", "break_even_rows"]

ROUTES = ("rows", "moments")
FLOAT64 = 8


def moments_bytes(p: int, q: int) -> int:
    """Bytes of one layer pair's moments: Σxxᵀ (p²), Σyyᵀ (q²) and Σxyᵀ (pq), float64."""
    return FLOAT64 * (p * p + q * q + p * q)


def rows_bytes(n: int, p: int, q: int, itemsize: int) -> int:
    """Bytes of one layer pair's rows: n rows of p + q values of ``itemsize`` bytes."""
    return n * (p + q) * itemsize


def keeps_rows(n: int, p: int, q: int, itemsize: int) -> bool:
    """True while n rows of widths p and q are smaller than their moments."""
    return rows_bytes(n, p, q, itemsize) < moments_bytes(p, q)


def break_even_rows(p: int, q: int, itemsize: int) -> int:
    """The smallest n at which a layer pair of widths p, q is held as moments."""
    return -(-moments_bytes(p, q) // ((p + q) * itemsize))
