"""The pure pooling functions of the norm heads, on hand-made member stats."""

from __future__ import annotations

import numpy as np
import pytest

from fasttok_plugin.heads.pooling import nonfinite_cells, pool_mean_std, pool_min_max, pool_stats

NAN, INF = float("nan"), float("inf")


def test_min_max_ignore_non_finite_members_and_fill_empty_dims() -> None:
    mins = np.array([[0.0, NAN, -INF], [-2.0, NAN, 1.0]])
    maxs = np.array([[INF, 3.0, 5.0], [1.0, 4.0, NAN]])
    low, high, has_range = pool_min_max(mins, maxs)

    assert has_range.tolist() == [True, False, True]
    assert low.tolist() == [-2.0, -1.0, 1.0]
    assert high.tolist() == [1.0, 1.0, 5.0]


def test_mean_std_are_count_weighted_pooled_population_moments() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (30, 2)), rng.normal(3, 2, (10, 2))
    means = np.stack([a.mean(0), b.mean(0)])
    stds = np.stack([a.std(0), b.std(0)])
    mean, std, has_moments = pool_mean_std(means, stds, np.array([30, 10]))

    both = np.concatenate([a, b])
    np.testing.assert_allclose(mean, both.mean(0), atol=1e-12)
    np.testing.assert_allclose(std, both.std(0), atol=1e-12)
    assert has_moments.all()


def test_a_member_with_a_non_finite_mean_or_std_is_left_out_of_that_dim() -> None:
    means = np.array([[1.0, NAN], [3.0, 2.0]])
    stds = np.array([[0.0, 1.0], [0.0, INF]])
    mean, std, has_moments = pool_mean_std(means, stds, np.array([1, 3]))

    assert mean.tolist() == [2.5, 0.0]  # dim 0 weighted 1:3; dim 1 has no usable member: filled
    assert std[0] == pytest.approx(np.sqrt((1 * 1.5**2 + 3 * 0.5**2) / 4))  # the spread of the means counts
    assert std[1] == 1.0
    assert has_moments.tolist() == [True, False]


def test_members_without_frames_pool_unweighted() -> None:
    stats = np.array([[[0.0]], [[1.0]], [[0.0]], [[1.0]]]).repeat(2, axis=1)  # (4, 2 members, 1 dim)
    stats[2, 1, 0] = 2.0
    pooled = pool_stats(stats, np.array([0, 0]))

    assert pooled.unweighted
    assert pooled.mean.tolist() == [1.0]
    assert not pool_stats(stats, np.array([1, 3])).unweighted


def test_nonfinite_cells_name_the_stat_dim_and_members() -> None:
    stats = np.zeros((4, 3, 2))
    stats[1, 2, 0] = INF
    stats[2, 0, 1] = NAN
    stats[2, 2, 1] = NAN
    assert nonfinite_cells(stats) == [("max", 0, (2,)), ("mean", 1, (0, 2))]
