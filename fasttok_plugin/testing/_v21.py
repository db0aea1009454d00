"""The LeRobot v2.1 layout: one parquet per episode, ``episodes.jsonl`` and ``episodes_stats.jsonl``."""

from __future__ import annotations

import math
from pathlib import Path

from fasttok_plugin.testing._files import write_jsonl, write_parquet
from fasttok_plugin.testing._frames import TASK, Episodes

__all__ = ["V21_DATA_PATH", "write_v21"]

V21_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"


def write_v21(root: Path, episodes: Episodes, *, files_per_chunk: int, write_episode_stats: bool) -> int:
    """Write the data files and episode metadata of a v2.1 dataset; return its ``total_chunks``.

    Args:
        root: Dataset folder.
        episodes: The episodes, in index order.
        files_per_chunk: Episodes per ``chunk-*`` folder (``info.json``'s ``chunks_size``).
        write_episode_stats: Write ``meta/episodes_stats.jsonl``.
    """
    for i in range(len(episodes)):
        rel = V21_DATA_PATH.format(episode_chunk=i // files_per_chunk, episode_index=i)
        write_parquet(root / rel, episodes.table(i))
    meta = root / "meta"
    write_jsonl(
        meta / "episodes.jsonl",
        [{"episode_index": i, "tasks": [TASK], "length": n} for i, n in enumerate(episodes.lengths)],
    )
    write_jsonl(meta / "tasks.jsonl", [{"task_index": 0, "task": TASK}])
    if write_episode_stats:
        rows = [{"episode_index": i, "stats": episodes.stats(i)} for i in range(len(episodes))]
        write_jsonl(meta / "episodes_stats.jsonl", rows)
    return max(1, math.ceil(len(episodes) / files_per_chunk))
