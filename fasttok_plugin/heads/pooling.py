"""Pool one head's member stats into the head's stats: pure numpy, no records, no logging.

Inputs are ``(members, width)`` float64 arrays, one row per member, already zero-padded to the head
width. Non-finite values (NaN, ``±Inf``) are masked per member and dim, never propagated: min/max are
taken over the finite values; mean/std are count-weighted over the members whose mean *and* std are both
finite in that dim (pooled population variance). A dim with nothing to pool is filled (``[-1, 1]`` for
min/max, ``0/1`` for mean/std) and flagged, so the caller can report it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["STATS", "PooledStats", "nonfinite_cells", "pool_mean_std", "pool_min_max", "pool_stats"]

#: Order of the four stats in stacked ``(4, members, width)`` arrays.
STATS = ("min", "max", "mean", "std")


@dataclass(frozen=True, slots=True, eq=False)  # arrays: compare fields explicitly
class PooledStats:
    """The pooled stats of one head, each ``(width,)`` float64 and finite.

    Attributes:
        has_range: Per dim, whether some member had a finite min and some a finite max (else filled).
        has_moments: Per dim, whether some member with weight had a finite mean and std (else filled).
        unweighted: True when the members' weights summed to zero and mean/std were pooled unweighted.
    """

    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    has_range: np.ndarray
    has_moments: np.ndarray
    unweighted: bool = False


def nonfinite_cells(stats: np.ndarray) -> list[tuple[str, int, tuple[int, ...]]]:
    """Return ``(stat, dim, member rows)`` for every dim of every stat where some member is not finite.

    Args:
        stats: ``(4, members, width)`` stacked in `STATS` order.
    """
    finite = np.isfinite(stats)
    cells = []
    for stat_i, stat in enumerate(STATS):
        for dim in np.flatnonzero(~finite[stat_i].all(axis=0)):
            rows = np.flatnonzero(~finite[stat_i, :, dim])
            cells.append((stat, int(dim), tuple(int(r) for r in rows)))
    return cells


def pool_min_max(mins: np.ndarray, maxs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(min, max, has_range)``: nanmin/nanmax over members; ``[-1, 1]`` where either has none."""
    finite_min, finite_max = np.isfinite(mins), np.isfinite(maxs)
    has_range = finite_min.any(axis=0) & finite_max.any(axis=0)
    low = np.where(finite_min, mins, np.inf).min(axis=0)
    high = np.where(finite_max, maxs, -np.inf).max(axis=0)
    return np.where(has_range, low, -1.0), np.where(has_range, high, 1.0), has_range


def pool_mean_std(
    means: np.ndarray, stds: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(mean, std, has_moments)``: count-weighted mean and pooled population std.

    ``var = sum_i n_i (std_i^2 + (mean_i - mu)^2) / N`` over the members whose mean and std are both
    finite in that dim; ``0/1`` where no member with weight qualifies.

    Args:
        means: ``(members, width)`` member means.
        stds: ``(members, width)`` member stds.
        weights: ``(members,)`` frame counts (must not all be zero: see `pool_stats`).
    """
    usable = np.isfinite(means) & np.isfinite(stds)
    w = np.where(usable, np.asarray(weights, dtype=np.float64)[:, None], 0.0)
    total = w.sum(axis=0)
    has_moments = total > 0
    denom = np.where(has_moments, total, 1.0)
    safe_means = np.where(usable, means, 0.0)
    safe_stds = np.where(usable, stds, 0.0)
    mu = (w * safe_means).sum(axis=0) / denom
    var = (w * (safe_stds**2 + (safe_means - mu) ** 2)).sum(axis=0) / denom
    mean = np.where(has_moments, mu, 0.0)
    std = np.where(has_moments, np.sqrt(np.maximum(var, 0.0)), 1.0)
    return mean, std, has_moments


def pool_stats(stats: np.ndarray, weights: np.ndarray) -> PooledStats:
    """Pool one head's members.

    Args:
        stats: ``(4, members, width)`` member stats stacked in `STATS` order.
        weights: ``(members,)`` frame counts; when they sum to zero, mean/std are pooled unweighted.
    """
    weights = np.asarray(weights, dtype=np.float64)
    unweighted = bool(weights.sum() <= 0)
    if unweighted:
        weights = np.ones_like(weights)
    low, high, has_range = pool_min_max(stats[0], stats[1])
    mean, std, has_moments = pool_mean_std(stats[2], stats[3], weights)
    return PooledStats(low, high, mean, std, has_range, has_moments, unweighted)
