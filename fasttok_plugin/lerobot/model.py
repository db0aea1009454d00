"""What the package knows about a dataset: its action stats, its episodes and its metadata as a whole."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fasttok_plugin.errors import DatasetError

__all__ = ["ActionStats", "DatasetMeta", "EpisodeInfo"]


@dataclass(frozen=True, slots=True)
class ActionStats:
    """Stats of the action feature.

    Attributes:
        min, max, mean, std: float64 arrays of shape ``(d,)``; may hold NaN/±Inf as found on disk.
        count: Frames the stats cover (the selected episodes when re-aggregated).
        source: ``meta/stats.json``, ``meta/episodes_stats.jsonl`` or ``meta/episodes (stats columns)``.
    """

    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    count: int
    source: str


@dataclass(frozen=True, slots=True)
class EpisodeInfo:
    """One episode.

    Attributes:
        index: ``episode_index``.
        length: Frames.
        data_file: Parquet file holding its frames.
        from_index: v3.0 ``dataset_from_index`` (global ``index`` of the first frame); ``None`` for v2.x.
        to_index: v3.0 ``dataset_to_index`` (exclusive); ``None`` for v2.x.
        file_row_start: Row of the first frame inside ``data_file`` (0 for v2.x; v3.0 assumes the episodes
            of a file are stored contiguously in index order, as LeRobot writes them).
        time_span: ``max - min`` of the episode's timestamps from the v3.0 episode table's
            ``stats/timestamp`` columns (read with the table, no extra I/O); ``None`` when absent.
    """

    index: int
    length: int
    data_file: Path
    from_index: int | None
    to_index: int | None
    file_row_start: int = 0
    time_span: float | None = None


@dataclass(frozen=True, slots=True)
class DatasetMeta:
    """Everything the package needs from a dataset, read from metadata only.

    Attributes:
        root: Dataset folder.
        version: ``codebase_version``.
        fps: Frames per second.
        robot_type: Raw ``robot_type`` from ``info.json`` (no override applied).
        control_mode: Raw ``control_mode`` from ``info.json`` (``None`` when absent).
        total_frames: ``info.json``'s ``total_frames`` (all episodes).
        total_episodes: ``info.json``'s ``total_episodes`` (all episodes).
        features: ``info.json``'s ``features``.
        action_key: The action column.
        action_dim: Native action dim (from the feature's shape).
        episodes: The *selected* episodes, sorted by index.
        stats: Action stats (of the selected episodes), ``None`` when unusable.
        stats_error: Why ``stats`` is ``None`` (or unusable); reported by the preflight, never raised here.
        selected_frames: Frames of the selected episodes.
        selection_active: ``True`` when ``episodes``/``excluded_episodes`` restricted the episodes.
        name: The dataset name used in messages.
    """

    root: Path
    version: str
    fps: float
    robot_type: str | None
    control_mode: str | None
    total_frames: int
    total_episodes: int
    features: Mapping[str, Any]
    action_key: str
    action_dim: int
    episodes: tuple[EpisodeInfo, ...]
    stats: ActionStats | None
    stats_error: DatasetError | None
    selected_frames: int = 0
    selection_active: bool = False
    name: str | None = None

    def data_identity(self) -> dict[str, Any]:
        """What the sampled frames depend on, from metadata and ``stat`` alone (no data is read).

        The resolved root, every selected episode's index, length and position in its data file, and the
        size and ``mtime_ns`` of every data file those episodes read (each file stat'ed once). Rewriting a
        parquet (truncating or reversing an episode) changes its size or mtime; a file that cannot be
        stat'ed is recorded as missing, so it changes the identity too (the sampler reports the error).

        Returns:
            JSON-able ``{"root", "episodes", "frames", "data_files", "sha256"}``: the root, the counts, and
            one digest of the per-episode and per-file records (so a large dataset stays small in reports).
        """
        root = os.path.realpath(self.root)
        digest = hashlib.sha256()
        files: dict[Path, str] = {}
        for ep in self.episodes:
            if ep.data_file not in files:
                files[ep.data_file] = _file_identity(ep.data_file, self.root)
            digest.update(
                f"e {ep.index} {ep.length} {ep.from_index} {ep.to_index} {ep.file_row_start} "
                f"{files[ep.data_file]}\n".encode("utf-8", "surrogateescape")
            )
        for record in sorted(files.values()):
            digest.update(f"f {record}\n".encode("utf-8", "surrogateescape"))
        return {
            "root": root,
            "episodes": len(self.episodes),
            "frames": sum(ep.length for ep in self.episodes),
            "data_files": len(files),
            "sha256": digest.hexdigest(),
        }


def _file_identity(path: Path, root: Path) -> str:
    """``<path relative to root> <size> <mtime_ns>`` of a data file (``missing``: cannot be stat'ed)."""
    text = str(path)
    prefix = str(root) + os.sep
    shown = text[len(prefix) :] if text.startswith(prefix) else text  # no syscalls: one stat per file
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"{shown} missing {type(exc).__name__}"
    return f"{shown} {st.st_size} {st.st_mtime_ns}"
