"""Chunk budgets: split a total into integers proportional to the mixture weights (largest remainder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from fasttok_plugin.errors import SamplingError
from fasttok_plugin.mixture.weights import check_weights

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.resolve import ResolvedEntry, ResolvedMixture

__all__ = ["check_total_chunks", "largest_remainder", "sampling_weights", "starved_entries"]


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


def sampling_weights(resolved: ResolvedMixture, heads: NormHeads) -> np.ndarray:
    """The mixture's per-entry weights, validated; entries the heads skipped weigh 0.

    Raises:
        SamplingError: The weights do not match the entries, a weight is invalid (naming its pointer), or
            no usable entry has a positive weight.
    """
    config = resolved.config
    entries = resolved.entries
    weights = tuple(config.weights)
    if len(weights) != len(entries):
        raise SamplingError(
            f"{config.weights_pointer}: {len(weights)} weights for {len(entries)} datasets; give one "
            f"weight per dataset"
        )
    # The mixture's one weight rule; the sampler adds only what needs the heads: skipped entries
    # weigh 0, and at least one usable entry must have a positive weight.
    labels = [
        f"entry {e.index} ({e.name}): weight at {_weight_pointer(resolved, p, e)}"
        for p, e in enumerate(entries)
    ]
    problems = [p for p in check_weights(weights, labels) if p.index is not None]
    if problems:
        raise SamplingError("invalid mixture weights:\n" + "\n".join(f"  - {p}" for p in problems))
    usable = np.array([head >= 0 for head in heads.dataset_to_head], dtype=bool)
    out = np.where(usable, np.asarray(weights, dtype=np.float64), 0.0)
    if not (out > 0).any():  # not ``sum() <= 0``: [1e308, 1e308] sums to inf (and warns)
        raise SamplingError(
            f"no dataset can be sampled: every usable entry has weight 0 ({config.weights_pointer}); "
            f"give at least one usable entry a positive weight"
        )
    return out


def _weight_pointer(resolved: ResolvedMixture, position: int, entry: ResolvedEntry) -> str:
    """Where the weight of the entry at ``position`` is written in the mixture file."""
    pointer = resolved.config.weights_pointer
    return f"{pointer}/{position}" if pointer.endswith("/weights") else f"{entry.entry.pointer}/weight"
