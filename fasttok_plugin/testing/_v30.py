"""The LeRobot v3.0 layout: several episodes per data file, episode tables with ``stats/...`` columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from fasttok_plugin.testing._files import write_parquet
from fasttok_plugin.testing._frames import TASK, Episodes

__all__ = ["V30_DATA_PATH", "V30_EPISODES_PATH", "write_v30"]

V30_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V30_EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"


def _episode_columns(
    episodes: Episodes, groups: list[list[int]], *, files_per_chunk: int, write_episode_stats: bool
) -> dict[str, list[Any]]:
    """Columns of the episode tables; row ``i`` is episode ``i`` (episodes are written in index order)."""
    starts = episodes.starts
    columns: dict[str, list[Any]] = {
        "episode_index": [],
        "tasks": [],
        "length": [],
        "data/chunk_index": [],
        "data/file_index": [],
        "dataset_from_index": [],
        "dataset_to_index": [],
    }
    stat_columns: dict[str, list[Any]] = {}
    for file_number, group in enumerate(groups):
        chunk_index, file_index = divmod(file_number, files_per_chunk)
        for i in group:
            columns["episode_index"].append(i)
            columns["tasks"].append([TASK])
            columns["length"].append(episodes.lengths[i])
            columns["data/chunk_index"].append(chunk_index)
            columns["data/file_index"].append(file_index)
            columns["dataset_from_index"].append(int(starts[i]))
            columns["dataset_to_index"].append(int(starts[i + 1]))
            if write_episode_stats:
                for feature, stats in episodes.stats(i).items():
                    for stat, value in stats.items():
                        stat_columns.setdefault(f"stats/{feature}/{stat}", []).append(value)
    return {**columns, **stat_columns}


def write_v30(
    root: Path, episodes: Episodes, *, files_per_chunk: int, episodes_per_file: int, write_episode_stats: bool
) -> None:
    """Write the data files, episode tables and tasks of a v3.0 dataset.

    Args:
        root: Dataset folder.
        episodes: The episodes, in index order.
        files_per_chunk: Files per ``chunk-*`` folder (``info.json``'s ``chunks_size``).
        episodes_per_file: Episodes packed into each data file and each episodes table.
        write_episode_stats: Add the ``stats/<feature>/<stat>`` columns to the episode tables.
    """
    n = len(episodes)
    groups = [list(range(s, min(s + episodes_per_file, n))) for s in range(0, n, episodes_per_file)]
    for file_number, group in enumerate(groups):
        chunk_index, file_index = divmod(file_number, files_per_chunk)
        rel = V30_DATA_PATH.format(chunk_index=chunk_index, file_index=file_index)
        write_parquet(root / rel, pa.concat_tables([episodes.table(i) for i in group]))
    columns = _episode_columns(
        episodes, groups, files_per_chunk=files_per_chunk, write_episode_stats=write_episode_stats
    )
    # Episode tables are split like the data files: one episodes parquet per group of episodes.
    for file_number, rows in enumerate(groups):
        chunk_index, file_index = divmod(file_number, files_per_chunk)
        table = pa.table(
            {
                **{name: pa.array([values[r] for r in rows]) for name, values in columns.items()},
                "meta/episodes/chunk_index": pa.array([chunk_index] * len(rows), type=pa.int64()),
                "meta/episodes/file_index": pa.array([file_index] * len(rows), type=pa.int64()),
            }
        )
        rel = V30_EPISODES_PATH.format(chunk_index=chunk_index, file_index=file_index)
        write_parquet(root / rel, table)
    write_parquet(
        root / "meta" / "tasks.parquet",
        pa.table({"task_index": pa.array([0], type=pa.int64()), "task": pa.array([TASK])}),
    )
