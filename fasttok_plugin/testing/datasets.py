"""`write_lerobot_dataset`: a small, real LeRobot dataset (v2.1 or v3.0) written with pyarrow.

The files follow the layout LeRobot itself writes (``meta/info.json``, ``meta/stats.json``, per-episode
stats, ``data/...`` parquet with a ``fixed_size_list<float32>[d]`` action column), so every reader in the
package is exercised against the real format rather than against a mock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fasttok_plugin.testing._files import write_json
from fasttok_plugin.testing._frames import Episodes, episode_stats, features, smooth_actions
from fasttok_plugin.testing._v21 import V21_DATA_PATH, write_v21
from fasttok_plugin.testing._v30 import V30_DATA_PATH, write_v30

__all__ = ["DEFAULT_CHUNKS_SIZE", "SyntheticDataset", "episode_stats", "write_lerobot_dataset"]

#: LeRobot's default: 1000 episodes (v2.1) / files (v3.0) per chunk folder.
DEFAULT_CHUNKS_SIZE = 1000


@dataclass(frozen=True, slots=True)
class SyntheticDataset:
    """A dataset written by :func:`write_lerobot_dataset`, with the exact actions that were written.

    Attributes:
        root: Dataset folder (holds ``meta/`` and ``data/``).
        actions: Per-episode ``(len_i, action_dim)`` float32 arrays, in episode-index order.
        fps: Frames per second written to ``info.json``.
        action_dim: Native action dimension.
        version: ``"v2.1"`` or ``"v3.0"``.
        action_key: Name of the action column.
        robot_type: ``robot_type`` written to ``info.json`` (``None``: written as JSON null).
        control_mode: ``control_mode`` written to ``info.json`` (``None``: key absent).
    """

    root: Path
    actions: tuple[np.ndarray, ...]
    fps: float
    action_dim: int
    version: str = "v3.0"
    action_key: str = "action"
    robot_type: str | None = "arm"
    control_mode: str | None = None

    @property
    def episode_lengths(self) -> tuple[int, ...]:
        """Frames per episode."""
        return tuple(int(a.shape[0]) for a in self.actions)

    def concatenated(self, episodes: Sequence[int] | None = None) -> np.ndarray:
        """All actions of the given episodes (default: all), stacked to ``(n, action_dim)``."""
        chosen = range(len(self.actions)) if episodes is None else episodes
        return np.concatenate([self.actions[i] for i in chosen], axis=0)


def _check_choices(version: str, list_type: str) -> None:
    if version not in ("v2.1", "v3.0"):
        raise ValueError(f"version must be 'v2.1' or 'v3.0', got {version!r}")
    if list_type not in ("fixed", "variable"):
        raise ValueError(f"list_type must be 'fixed' or 'variable', got {list_type!r}")


def _episode_actions(
    actions: Sequence[np.ndarray] | None,
    episode_lengths: Sequence[int],
    action_dim: int,
    fps: float,
    seed: int,
) -> tuple[list[np.ndarray], int]:
    """The float32 episodes to write and their action dim: the given ``actions``, else smooth ones."""
    if actions is None:
        rng = np.random.default_rng(seed)
        episodes = [smooth_actions(rng, int(n), action_dim, fps) for n in episode_lengths]
    else:
        episodes = [np.ascontiguousarray(a, dtype=np.float32) for a in actions]
        if not episodes:
            raise ValueError("actions must hold at least one episode")
        action_dim = int(episodes[0].shape[1]) if episodes[0].ndim == 2 else -1
        if any(a.ndim != 2 or a.shape[1] != action_dim for a in episodes):
            raise ValueError("every episode in actions must be a (len_i, d) array with the same d")
    if any(a.shape[0] < 1 for a in episodes):
        raise ValueError("every episode needs at least one frame (LeRobot has no empty episodes)")
    return episodes, action_dim


def _fps_json(fps: float) -> float | int:
    # LeRobot writes an integer fps; keep fractional rates as given.
    return int(fps) if float(fps).is_integer() else float(fps)


def _write_frames(
    root: Path,
    episodes: Episodes,
    version: str,
    *,
    files_per_chunk: int,
    episodes_per_file: int,
    write_episode_stats: bool,
) -> int | None:
    """Write the data files and episode metadata of ``version``; return v2.1's ``total_chunks``."""
    if version == "v2.1":
        return write_v21(
            root, episodes, files_per_chunk=files_per_chunk, write_episode_stats=write_episode_stats
        )
    write_v30(
        root,
        episodes,
        files_per_chunk=files_per_chunk,
        episodes_per_file=episodes_per_file,
        write_episode_stats=write_episode_stats,
    )
    return None  # v3.0's info.json has no total_chunks


def _info(
    episodes: Episodes,
    *,
    version: str,
    robot_type: str | None,
    control_mode: str | None,
    action_dim: int,
    files_per_chunk: int,
    total_chunks: int | None,
    info_overrides: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """``meta/info.json`` with LeRobot's keys in LeRobot's order, then the overrides."""
    info: dict[str, Any] = {
        "codebase_version": version,
        "robot_type": robot_type,
        "total_episodes": len(episodes),
        "total_frames": int(sum(episodes.lengths)),
        "total_tasks": 1,
    }
    if version == "v2.1":  # v3.0 dropped these two
        info["total_videos"] = 0
        info["total_chunks"] = total_chunks
    info["chunks_size"] = files_per_chunk
    info["fps"] = _fps_json(episodes.fps)
    info["splits"] = {"train": f"0:{len(episodes)}"}
    info["data_path"] = V21_DATA_PATH if version == "v2.1" else V30_DATA_PATH
    info["video_path"] = None
    info["features"] = features(episodes.action_key, action_dim)
    if version == "v3.0":
        info["data_files_size_in_mb"] = 100
        info["video_files_size_in_mb"] = 500
    if control_mode is not None:
        info["control_mode"] = control_mode
    for key, value in (info_overrides or {}).items():
        if value is None:
            info.pop(key, None)
        else:
            info[key] = value
    return info


def write_lerobot_dataset(
    root: Path,
    *,
    version: Literal["v2.1", "v3.0"] = "v3.0",
    robot_type: str | None = "arm",
    control_mode: str | None = None,
    action_dim: int = 7,
    episode_lengths: Sequence[int] = (60, 80),
    fps: float = 30.0,
    action_key: str = "action",
    list_type: Literal["fixed", "variable"] = "fixed",
    write_stats: bool = True,
    write_episode_stats: bool = True,
    seed: int = 0,
    actions: Sequence[np.ndarray] | None = None,
    stats_override: Mapping[str, Any] | None = None,
    files_per_chunk: int = DEFAULT_CHUNKS_SIZE,
    episodes_per_file: int = 2,
    info_overrides: Mapping[str, Any] | None = None,
) -> SyntheticDataset:
    """Write a real LeRobot dataset with pyarrow.

    Args:
        root: Dataset folder to create (parents are created).
        version: ``"v2.1"`` (one parquet per episode, ``episodes.jsonl``) or ``"v3.0"`` (several episodes per
            data file, ``meta/episodes/*.parquet`` with ``stats/...`` columns).
        robot_type: Written to ``info.json`` (``None`` writes JSON null).
        control_mode: Written to ``info.json`` when not ``None`` (not a LeRobot field).
        action_dim: Action dimension (ignored when ``actions`` is given).
        episode_lengths: Frames per episode (ignored when ``actions`` is given).
        fps: Frame rate; ``timestamp = frame_index / fps``.
        action_key: Name of the action column and feature.
        list_type: ``"fixed"`` writes ``fixed_size_list<float32>[d]`` (as LeRobot does), ``"variable"``
            writes ``list<float32>`` (other writers).
        write_stats: Write ``meta/stats.json`` (v2.1 writers often omit it).
        write_episode_stats: Write per-episode stats (v2.1 ``episodes_stats.jsonl``; v3.0 ``stats/...``
            columns of the episode tables).
        seed: Seed of the smooth random trajectories.
        actions: Exact per-episode ``(len_i, d)`` arrays to write (may hold NaN/Inf).
        stats_override: Fields replacing those of the action entry in ``meta/stats.json``.
        files_per_chunk: ``chunks_size`` of ``info.json``: episodes (v2.1) or files (v3.0) per chunk folder.
        episodes_per_file: v3.0 only: episodes packed into each data / episodes parquet file.
        info_overrides: Keys replacing (value ``None`` removes them) top-level keys of ``info.json``, to
            write deliberately broken metadata.

    Returns:
        The written dataset with the float32 actions exactly as stored.
    """
    _check_choices(version, list_type)
    root = Path(root)
    actions_out, action_dim = _episode_actions(actions, episode_lengths, action_dim, fps, seed)
    episodes = Episodes.of(actions_out, fps=fps, action_key=action_key, list_type=list_type)
    total_chunks = _write_frames(
        root,
        episodes,
        version,
        files_per_chunk=files_per_chunk,
        episodes_per_file=episodes_per_file,
        write_episode_stats=write_episode_stats,
    )
    info = _info(
        episodes,
        version=version,
        robot_type=robot_type,
        control_mode=control_mode,
        action_dim=action_dim,
        files_per_chunk=files_per_chunk,
        total_chunks=total_chunks,
        info_overrides=info_overrides,
    )
    write_json(root / "meta" / "info.json", info)
    if write_stats:
        stats = episodes.all_stats()
        stats[action_key].update(dict(stats_override or {}))
        write_json(root / "meta" / "stats.json", stats)
    return SyntheticDataset(
        root, episodes.actions, float(fps), action_dim, version, action_key, robot_type, control_mode
    )
