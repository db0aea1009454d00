"""Stats from the data (DESIGN §12): every pooled statistic equals numpy over the head's concatenated frames.

Datasets are real LeRobot folders written by pyarrow (v2.1 and v3.0 in one head); the expected values are
computed with numpy from the very arrays that were written (``SyntheticDataset.actions``), restricted to
the selected episodes, zero-padded to ``max_action_dim``, without the frames holding NaN/Inf.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fasttok_plugin.stats.compute as compute_module
from fasttok_plugin.errors import DatasetError
from fasttok_plugin.heads import NormHeads, build_norm_heads
from fasttok_plugin.lerobot import DatasetMeta, clear_frames_cache, read_frames
from fasttok_plugin.resolve import ResolvedMixture, resolve_mixture
from fasttok_plugin.stats import (
    QUANTILE_METHOD,
    QUANTILES,
    DataStats,
    StatsError,
    compute_head_stats,
    default_cache_dir,
)
from fasttok_plugin.testing import SyntheticDataset, write_lerobot_dataset, write_mixture

WIDTH = 8
FIELDS = ("min", "max", "q01", "q10", "q50", "q90", "q99")


class SelectColumns:
    """Column selection (``action_index`` style): a transform with a ``key`` naming its settings."""

    def __init__(self, columns: Sequence[int]) -> None:
        self.columns = list(columns)
        self.key = f"select:{','.join(map(str, self.columns))}"

    def __call__(self, actions: np.ndarray, meta: DatasetMeta) -> np.ndarray:
        return actions[:, self.columns]


def _spiky(seed: int, lengths: Sequence[int], dim: int) -> list[np.ndarray]:
    """Hard cases for exact quantiles: ties, a dense cluster in one bin, signed zeros, a wide range."""
    rng = np.random.default_rng(seed)
    episodes = []
    for n in lengths:
        x = rng.normal(size=(n, dim)) * np.array([1e-3, 1.0, 100.0, 1.0, 1.0, 1.0, 1.0][:dim])
        x[:, min(3, dim - 1)] = np.round(x[:, min(3, dim - 1)])  # heavy ties
        if dim > 4:
            x[:, 4] = 1.0 + rng.integers(0, 50, size=n) * np.finfo(np.float32).eps  # one histogram bin
        if dim > 5:
            x[:, 5] = rng.choice([-0.0, 0.0, 1e-30, -1e30], size=n)
        episodes.append(x.astype(np.float32))
    return episodes


@pytest.fixture(scope="module")
def mixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, SyntheticDataset]]:
    """Head ``arm::pos`` (6-dim members: v2.1, v3.0, v3.0 with NaN frames) and head ``base::vel`` (2-dim)."""
    root = tmp_path_factory.mktemp("stats")
    nan_episodes = _spiky(7, (30, 25, 40), 6)
    nan_episodes[1][3, 2] = np.nan
    nan_episodes[2][0, 0] = np.inf
    nan_episodes[2][10] = np.nan
    datasets = {
        "a": write_lerobot_dataset(
            root / "a",
            version="v2.1",
            robot_type="arm",
            control_mode="pos",
            actions=_spiky(1, (50, 70, 20), 6),
        ),
        "b": write_lerobot_dataset(
            root / "b",
            version="v3.0",
            robot_type="arm",
            control_mode="pos",
            actions=_spiky(2, (90, 33, 41, 12), 6),
            episodes_per_file=3,
        ),
        "c": write_lerobot_dataset(
            root / "c", version="v3.0", robot_type="arm", control_mode="pos", actions=nan_episodes
        ),
        "d": write_lerobot_dataset(
            root / "d",
            version="v2.1",
            robot_type="base",
            control_mode="vel",
            action_dim=2,
            episode_lengths=(64, 80),
        ),
    }
    return root, datasets


def _resolve(
    root: Path, entries: Sequence[dict[str, Any]], name: str = "mixture.json"
) -> tuple[ResolvedMixture, NormHeads]:
    path = write_mixture(root / name, {"datasets": list(entries), "max_action_dim": WIDTH})
    resolved = resolve_mixture(path)
    assert not resolved.errors
    return resolved, build_norm_heads(resolved, WIDTH)


def _expected(
    heads: NormHeads,
    parts: dict[int, np.ndarray],
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Per head: the finite, zero-padded float64 frames of its members (``parts``: entry -> raw frames)."""
    pooled = []
    for members in heads.head_members:
        frames = []
        for i in members:
            x = parts[i] if transform is None else transform(parts[i])
            frames.append(np.pad(x, ((0, 0), (0, WIDTH - x.shape[1]))))
        all_frames = np.concatenate(frames).astype(np.float64)
        pooled.append(all_frames[np.isfinite(all_frames).all(axis=1)])
    return pooled


def _assert_matches_numpy(stats: DataStats, pooled: list[np.ndarray]) -> None:
    assert stats.quantile_method == QUANTILE_METHOD == "linear"
    for h, values in enumerate(pooled):
        assert stats.counts[h] == values.shape[0]
        want = dict(zip(FIELDS[2:], np.quantile(values, QUANTILES, axis=0, method="linear"), strict=True))
        want.update(min=values.min(axis=0), max=values.max(axis=0))
        for field in FIELDS:
            # Exact: bit for bit what numpy gives over the concatenated frames.
            np.testing.assert_array_equal(getattr(stats, field)[h], want[field], err_msg=f"head {h} {field}")
        scale = np.abs(values).max(axis=0) + 1e-300
        np.testing.assert_allclose(stats.mean[h], values.mean(axis=0), rtol=1e-12, atol=0)
        assert (np.abs(stats.std[h] - values.std(axis=0)) <= 1e-12 * scale).all()


def _entries(**selection: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"repo_id": f"lab/{n}", "root": n, **selection.get(n, {})} for n in ("a", "b", "c", "d")]


def _parts(
    datasets: dict[str, SyntheticDataset], selected: dict[str, Sequence[int]]
) -> dict[int, np.ndarray]:
    return {i: datasets[n].concatenated(selected.get(n)) for i, n in enumerate(("a", "b", "c", "d"))}


def test_every_statistic_equals_numpy_over_the_heads_frames(mixture, tmp_path: Path) -> None:
    root, datasets = mixture
    resolved, heads = _resolve(root, _entries())
    assert heads.head_members == ((0, 1, 2), (3,))
    stats = compute_head_stats(resolved, heads, cache_dir=tmp_path)
    _assert_matches_numpy(stats, _expected(heads, _parts(datasets, {})))
    assert stats.min.shape == (2, WIDTH)
    assert stats.counts.dtype == np.int64
    # Dims past the native width hold the zeros of the padding: 0 in every statistic, std 0.
    for field in (*FIELDS, "mean", "std"):
        assert not getattr(stats, field)[0, 6:].any()
        assert not getattr(stats, field)[1, 2:].any()


def test_episode_selection_counts_only_the_selected_episodes(mixture, tmp_path: Path) -> None:
    root, datasets = mixture
    entries = _entries(a={"episodes": [0, 2]}, b={"excluded_episodes": [1, 3]}, d={"episodes": [1]})
    resolved, heads = _resolve(root, entries, "selected.json")
    stats = compute_head_stats(resolved, heads, cache_dir=tmp_path)
    _assert_matches_numpy(stats, _expected(heads, _parts(datasets, {"a": [0, 2], "b": [0, 2], "d": [1]})))
    assert stats.entry_counts[:2] == (70, 131)
    assert stats.entry_counts[3] == 80


def test_nan_frames_are_counted_and_left_out(mixture, tmp_path: Path) -> None:
    root, _ = mixture
    resolved, heads = _resolve(root, _entries())
    stats = compute_head_stats(resolved, heads, cache_dir=tmp_path)
    assert stats.nonfinite.tolist() == [3, 0]
    assert stats.entry_nonfinite == (0, 0, 3, 0)
    assert stats.entry_counts[2] == 95 - 3
    assert np.isfinite(stats.q99).all()
    (line,) = stats.problems()
    assert "head 0 (arm::pos): 3 frame(s) hold NaN/Inf" in line


def test_a_column_selection_transform_is_applied_before_pooling(mixture, tmp_path: Path) -> None:
    root, datasets = mixture
    resolved, heads = _resolve(root, _entries())
    transform = SelectColumns([1])  # every entry keeps column 1 (the 2-dim base too)
    stats = compute_head_stats(resolved, heads, cache_dir=tmp_path, transform=transform)
    _assert_matches_numpy(stats, _expected(heads, _parts(datasets, {}), lambda x: x[:, [1]]))
    # Entry c's NaN in column 2 is not selected any more: only its frames with NaN/Inf in column 1 drop out.
    assert stats.nonfinite.tolist() == [1, 0]


def test_exact_across_many_blocks_and_compactions(mixture, tmp_path: Path, monkeypatch) -> None:
    root, datasets = mixture
    monkeypatch.setattr("fasttok_plugin.stats._accumulate.BLOCK_VALUES", 13)
    monkeypatch.setattr("fasttok_plugin.stats._accumulate._COMPACT_AT", 5)
    resolved, heads = _resolve(root, _entries())
    stats = compute_head_stats(resolved, heads, cache=False)
    _assert_matches_numpy(stats, _expected(heads, _parts(datasets, {})))


@pytest.mark.parametrize("seed", range(6))
def test_quantiles_are_exact_on_random_shapes(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = [int(n) for n in rng.integers(1, 40, size=int(rng.integers(1, 5)))]
    scale = 10.0 ** rng.integers(-8, 8)
    episodes = [(rng.standard_cauchy(size=(n, 3)) * scale).astype(np.float32) for n in lengths]
    data = write_lerobot_dataset(tmp_path / "r", version="v3.0" if seed % 2 else "v2.1", actions=episodes)
    resolved, heads = _resolve(tmp_path, [{"repo_id": "lab/r", "root": "r"}])
    stats = compute_head_stats(resolved, heads, cache=False)
    _assert_matches_numpy(stats, _expected(heads, {0: data.concatenated()}))


# ------------------------------------------------------------------------------------------------ cache


@pytest.fixture
def counted_reads(monkeypatch) -> list[str]:
    """Every call of the frame reader made by the stats pass."""
    calls: list[str] = []

    def counting(meta: DatasetMeta, name: str | None = None, **kwargs: Any):
        calls.append(str(name))
        return read_frames(meta, name, **kwargs)

    monkeypatch.setattr(compute_module, "read_frames", counting)
    return calls


def test_a_second_run_reads_no_frame(mixture, tmp_path: Path, counted_reads: list[str]) -> None:
    root, _ = mixture
    resolved, heads = _resolve(root, _entries())
    first = compute_head_stats(resolved, heads, cache_dir=tmp_path)
    assert len(counted_reads) == 2 * 4  # two passes over every member
    assert [p.name for p in tmp_path.iterdir()] == [f"{first.key}.json"]
    counted_reads.clear()
    second = compute_head_stats(resolve_mixture(root / "mixture.json"), heads, cache_dir=tmp_path)
    assert counted_reads == []
    assert second.same_values(first)


def test_the_key_follows_selection_transform_and_width(mixture, tmp_path: Path) -> None:
    root, _ = mixture
    resolved, heads = _resolve(root, _entries())
    base = compute_head_stats(resolved, heads, cache_dir=tmp_path).key
    selected, selected_heads = _resolve(root, _entries(a={"episodes": [0]}), "one.json")
    keys = {
        base,
        compute_head_stats(selected, selected_heads, cache_dir=tmp_path).key,
        compute_head_stats(resolved, heads, cache_dir=tmp_path, transform=SelectColumns([0])).key,
        compute_head_stats(resolved, heads, cache_dir=tmp_path, transform=SelectColumns([1])).key,
        compute_head_stats(resolved, build_norm_heads(resolved, WIDTH + 1), cache_dir=tmp_path).key,
    }
    assert len(keys) == 5
    assert len(list(tmp_path.iterdir())) == 5


def test_touching_or_rewriting_a_data_file_invalidates_the_cache(
    tmp_path: Path, counted_reads: list[str]
) -> None:
    write_lerobot_dataset(tmp_path / "x", version="v2.1", action_dim=3, episode_lengths=(40, 30), seed=1)
    resolved, heads = _resolve(tmp_path, [{"repo_id": "lab/x", "root": "x"}])
    cache = tmp_path / "cache"
    first = compute_head_stats(resolved, heads, cache_dir=cache)
    data_file = resolved.entries[0].meta.episodes[0].data_file
    st = os.stat(data_file)
    os.utime(data_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched: same bytes
    counted_reads.clear()
    touched = compute_head_stats(resolved, heads, cache_dir=cache)
    assert counted_reads
    assert touched.key != first.key
    assert touched.min.tobytes() == first.min.tobytes()
    # Rewritten with other values: the new stats are the new data's.
    clear_frames_cache()
    data = write_lerobot_dataset(
        tmp_path / "x", version="v2.1", action_dim=3, episode_lengths=(40, 30), seed=2
    )
    resolved, heads = _resolve(tmp_path, [{"repo_id": "lab/x", "root": "x"}])
    counted_reads.clear()
    rewritten = compute_head_stats(resolved, heads, cache_dir=cache)
    assert counted_reads
    assert rewritten.key not in (first.key, touched.key)
    _assert_matches_numpy(rewritten, _expected(heads, {0: data.concatenated()}))


@pytest.mark.parametrize(
    "content", [b"{not json", b'{"format": "other"}', b"[]", b'{"format": "fasttok_plugin.data_stats/1"}']
)
def test_a_corrupt_cache_file_is_ignored_with_a_warning(
    mixture, tmp_path: Path, caplog: pytest.LogCaptureFixture, counted_reads: list[str], content: bytes
) -> None:
    root, _ = mixture
    resolved, heads = _resolve(root, _entries())
    good = compute_head_stats(resolved, heads, cache_dir=tmp_path)
    path = tmp_path / f"{good.key}.json"
    path.write_bytes(content)
    counted_reads.clear()
    with caplog.at_level(logging.WARNING, logger="fasttok_plugin.stats"):
        again = compute_head_stats(resolved, heads, cache_dir=tmp_path)
    assert counted_reads, "recomputed"
    assert again.same_values(good)
    assert any(
        "ignoring the corrupt stats cache file" in r.getMessage() and str(path) in r.getMessage()
        for r in caplog.records
    )
    assert DataStats.from_json(json.loads(path.read_text())).same_values(good)  # rewritten


def test_json_round_trip_keeps_every_value_and_nan(tmp_path: Path) -> None:
    episodes = [np.full((5, 2), np.nan, dtype=np.float32)]  # a head without any finite frame
    write_lerobot_dataset(tmp_path / "n", actions=episodes)
    write_lerobot_dataset(tmp_path / "m", robot_type="other", action_dim=2, episode_lengths=(9,))
    resolved, heads = _resolve(
        tmp_path, [{"repo_id": "lab/n", "root": "n"}, {"repo_id": "lab/m", "root": "m"}]
    )
    stats = compute_head_stats(resolved, heads, cache=False)
    empty = heads.dataset_to_head[0]
    assert empty >= 0
    assert stats.counts[empty] == 0
    assert stats.nonfinite[empty] == 5
    assert np.isnan(stats.q50[empty]).all()
    assert any("no finite frame" in line for line in stats.problems())
    text = json.dumps(stats.to_json(), allow_nan=False)  # strict JSON: NaN as null
    assert DataStats.from_json(json.loads(text)).same_values(stats)
    np.testing.assert_array_equal(stats.quantile(0.5), stats.q50)


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "fasttok_plugin" / "stats"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert default_cache_dir() == Path.home() / ".cache" / "fasttok_plugin" / "stats"


def test_progress_bar_over_the_datasets(mixture, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = mixture
    resolved, heads = _resolve(root, _entries())
    compute_head_stats(resolved, heads, cache=False)
    assert "data stats" not in capsys.readouterr().err
    compute_head_stats(resolved, heads, cache=False, progress=True)
    assert "data stats: 100%" in capsys.readouterr().err


def test_bad_transforms_are_refused_with_the_fix(mixture, tmp_path: Path) -> None:
    root, _ = mixture
    resolved, heads = _resolve(root, _entries())
    with pytest.raises(StatsError, match="needs a non-empty string attribute 'key'"):
        compute_head_stats(resolved, heads, cache_dir=tmp_path, transform=lambda a, m: a)
    wide = SelectColumns([0] * (WIDTH + 1))
    with pytest.raises(StatsError, match=r"entry 0 \(lab/a\).*shape \(140, 9\).*d <= max_action_dim \(8\)"):
        compute_head_stats(resolved, heads, cache_dir=tmp_path, transform=wide)


def test_a_missing_data_file_names_the_entry(tmp_path: Path) -> None:
    write_lerobot_dataset(tmp_path / "x", version="v2.1", action_dim=3, episode_lengths=(10, 12))
    resolved, heads = _resolve(tmp_path, [{"repo_id": "lab/x", "root": "x"}])
    resolved.entries[0].meta.episodes[1].data_file.unlink()
    clear_frames_cache()
    message = r"dataset entry 0 \(lab/x\): data file of episodes \[1\] is missing"
    with pytest.raises(DatasetError, match=message):
        compute_head_stats(resolved, heads, cache=False)


def test_candidate_memory_is_bounded_by_distinct_values_not_frames() -> None:
    """200k frames piled into one histogram bin: pass 2 keeps distinct values with counts, not frames."""
    from fasttok_plugin.stats._accumulate import HeadAccumulator

    rng = np.random.default_rng(3)
    x = (1.0 + rng.integers(0, 100, size=(200_000, 2)) * np.finfo(np.float32).eps).astype(np.float32)
    acc = HeadAccumulator(4, np.array(QUANTILES))
    for part in np.array_split(x, 7):
        acc.add(part)
    assert acc.plan()
    for part in np.array_split(x, 7):
        acc.collect(part)
    result = acc.result()
    assert acc.candidate_bytes <= 2 * (100 + 1) * 16  # <= 100 distinct values per dim (+ the padded zero)
    padded = np.pad(x, ((0, 0), (0, 2))).astype(np.float64)
    np.testing.assert_array_equal(result.quantiles, np.quantile(padded, QUANTILES, axis=0))


def test_frames_changing_between_the_passes_are_refused(mixture, tmp_path: Path) -> None:
    root, _ = mixture
    resolved, heads = _resolve(root, _entries())

    class Drifting:
        key = "drifting"
        calls = 0

        def __call__(self, actions: np.ndarray, meta: DatasetMeta) -> np.ndarray:
            Drifting.calls += 1  # the second pass sees other values than the first
            return actions + (Drifting.calls > 4) * 0.5

    with pytest.raises(StatsError, match=r"head 0 \(arm::pos\): its frames changed between the two passes"):
        compute_head_stats(resolved, heads, cache=False, transform=Drifting())
