"""Chunk budgets: split a total into integers proportional to the mixture weights (largest remainder)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fasttok_plugin.errors import SamplingError

__all__ = ["check_total_chunks", "largest_remainder", "starved_entries"]


def largest_remainder(total: int, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` (Hamilton / largest remainder).

    Ties in the remainders go to the lower index, so the result is deterministic.

    Args:
        total: Non-negative integer to split.
        weights: Non-negative finite weights with a positive sum.

    Returns:
        ``(len(weights),)`` int64 summing to ``total``; a zero weight always gets 0.

    Raises:
        ValueError: On a negative ``total`` or invalid weights.
    """
    w = np.asarray(weights, dtype=np.float64)
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if w.size == 0 or not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
        raise ValueError("weights must be finite, non-negative and not all zero")
    # Divide by the largest weight first: the sum of [1e308, 1e308] is inf (every share 0), and the
    # sum of subnormal weights loses their ratios; scaled to (0, 1] the sum is at most len(w).
    w = w / w.max()
    exact = total * (w / w.sum())
    out = np.floor(exact).astype(np.int64)
    left = int(total - out.sum())
    if left > 0:
        remainder = exact - out
        remainder[w == 0] = -1.0  # never hand a leftover to a zero weight
        # stable sort on -remainder: equal remainders keep index order
        order = np.argsort(-remainder, kind="stable")
        out[order[:left]] += 1
    return out


def check_total_chunks(total_chunks: object) -> int:
    """``total_chunks`` as an ``int``, checked before anything else about a budget is looked at.

    Raises:
        SamplingError: ``total_chunks`` is not an integer >= 0.
    """
    if isinstance(total_chunks, bool) or not isinstance(total_chunks, (int, np.integer)):
        raise SamplingError(f"total_chunks must be an integer, got {total_chunks!r}")
    if total_chunks < 0:
        raise SamplingError(f"total_chunks must be >= 0, got {total_chunks}")
    return int(total_chunks)


def starved_entries(budgets: Sequence[int] | np.ndarray, weights: Sequence[float] | np.ndarray) -> list[int]:
    """Indices whose weight is positive but whose budget rounded to 0 chunks (the weight was too small).

    Args:
        budgets: The result of :func:`largest_remainder`.
        weights: The weights it was given.
    """
    b = np.asarray(budgets)
    w = np.asarray(weights, dtype=np.float64)
    return np.flatnonzero((w > 0) & (b == 0)).tolist()
