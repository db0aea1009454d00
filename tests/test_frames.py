"""The one frame reader (`read_frames`): what the sampler trains on and `read_episode_frames` returns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.lerobot import (
    DatasetError,
    clear_frames_cache,
    read_dataset_meta,
    read_episode_frames,
    read_frames,
)
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.sampling import ChunkSampler
from fasttok_plugin.testing import SyntheticDataset

VERSIONS = ["v2.1", "v3.0"]


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    clear_frames_cache()


@pytest.mark.parametrize("version", VERSIONS)
def test_frames_hold_the_selected_episodes_in_index_order(
    make_dataset: Callable[..., SyntheticDataset], version: str
) -> None:
    ds = make_dataset("sel", version=version, episode_lengths=(5, 6, 7, 8), fps=20.0, episodes_per_file=3)
    meta = read_dataset_meta(ds.root, episodes=[3, 0, 2])
    frames = read_frames(meta)
    assert frames.episodes.tolist() == [0, 2, 3]
    assert frames.offsets.tolist() == [0, 5, 12, 20]
    assert frames.lengths.tolist() == [5, 7, 8]
    assert frames.ts.dtype == np.float64
    assert frames.actions.dtype == np.float32
    np.testing.assert_array_equal(frames.actions, ds.concatenated([0, 2, 3]))
    assert frames.grid_fps == 20.0
    assert frames.all_finite
    for position, episode in enumerate(meta.episodes):
        rows = slice(int(frames.offsets[position]), int(frames.offsets[position + 1]))
        timestamps, actions = read_episode_frames(meta, episode)
        np.testing.assert_array_equal(timestamps, frames.ts[rows])
        np.testing.assert_array_equal(actions, frames.actions[rows])


def test_one_dataset_is_cached_until_cleared(make_dataset: Callable[..., SyntheticDataset]) -> None:
    meta = read_dataset_meta(make_dataset("cached").root)
    first = read_frames(meta)
    assert read_frames(meta) is first
    assert read_frames(meta, cache=False) is not first
    read_episode_frames(meta, meta.episodes[0])  # uncached: leaves the cached dataset in place
    assert read_frames(meta) is first
    clear_frames_cache()
    assert read_frames(meta) is not first


def test_a_missing_data_file_is_data_missing_naming_its_episodes(
    make_dataset: Callable[..., SyntheticDataset],
) -> None:
    ds = make_dataset("gone", version="v3.0", episode_lengths=(4, 5, 6), episodes_per_file=2)
    meta = read_dataset_meta(ds.root, name="entry 1 (lab/gone)")
    meta.episodes[0].data_file.unlink()
    with pytest.raises(DatasetError) as info:
        read_frames(meta)
    error = info.value
    assert error.reason == "data_missing"
    assert error.path == meta.episodes[0].data_file
    assert "episodes [0, 1]" in str(error)
    assert "entry 1 (lab/gone)" in str(error)


def test_timestamps_going_backwards_are_data_invalid(make_dataset: Callable[..., SyntheticDataset]) -> None:
    ds = make_dataset("back", version="v2.1", episode_lengths=(4, 5))
    path = ds.root / "data/chunk-000/episode_000001.parquet"
    table = pq.read_table(path)
    column = table.schema.get_field_index("timestamp")
    pq.write_table(
        table.set_column(column, "timestamp", pa.array([0.0, 0.1, 0.1, 0.2, 0.3], pa.float32())), path
    )
    meta = read_dataset_meta(ds.root)
    with pytest.raises(
        DatasetError, match=r"timestamps of episode 1 are not strictly increasing \(frame 1\)"
    ) as info:
        read_frames(meta)
    assert info.value.reason == "data_invalid"
    assert info.value.path == path


def test_the_sampler_reports_the_readers_error(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    ds = make_dataset("short", version="v2.1", episode_lengths=(20, 20))
    (ds.root / "data/chunk-000/episode_000001.parquet").unlink()
    mixture = write_mixture_file({"datasets": [{"repo_id": "lab/short", "root": str(ds.root)}]})
    resolved = resolve_mixture(mixture)
    sampler = ChunkSampler(resolved, build_norm_heads(resolved, 32), chunk_size=5)
    assert list(sampler.sample(10)) == []
    meta = resolved.entries[0].meta
    with pytest.raises(DatasetError) as info:
        read_frames(meta, resolved.entries[0].name)
    assert sampler.report[0].error == str(info.value)
    assert "lab/short" in str(info.value)
