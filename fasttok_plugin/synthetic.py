"""Small, real LeRobot datasets (v2.1 and v3.0) written with pyarrow, for tests, examples and benchmarks.

The files follow the layout LeRobot itself writes (``meta/info.json``, ``meta/stats.json``, per-episode
stats, ``data/...`` parquet with a ``fixed_size_list<float32>[d]`` action column), so every reader in the
package is exercised against the real format rather than against a mock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fasttok_plugin.atomic import write_bytes_atomic, write_file_atomic

__all__ = [
    "SyntheticDataset",
    "episode_stats",
    "make_example_mixture",
    "write_lerobot_dataset",
    "write_mixture",
]

# LeRobot's defaults: 1000 episodes (v2.1) / files (v3.0) per chunk folder.
DEFAULT_CHUNKS_SIZE = 1000
V21_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V30_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V30_EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
TASK = "move the thing"


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


def episode_stats(values: np.ndarray) -> dict[str, list[float]]:
    """LeRobot-style stats of one ``(n, d)`` block: min, max, mean, std (population), count.

    Computed in float64 over the float32 values, like LeRobot's ``compute_stats``.
    """
    block = np.asarray(values, dtype=np.float64)
    # NaN/Inf in the data propagate into the stats exactly as numpy (and LeRobot) would produce them.
    with np.errstate(invalid="ignore", over="ignore"):
        return {
            "min": block.min(axis=0).tolist(),
            "max": block.max(axis=0).tolist(),
            "mean": block.mean(axis=0).tolist(),
            "std": block.std(axis=0).tolist(),
            "count": [int(block.shape[0])],
        }


def _write_json(path: Path, document: Any, *, indent: int | None = 4) -> None:
    write_bytes_atomic(path, (json.dumps(document, indent=indent, allow_nan=True) + "\n").encode())


def _write_jsonl(path: Path, rows: Sequence[Any]) -> None:
    text = "".join(json.dumps(row, allow_nan=True) + "\n" for row in rows)
    write_bytes_atomic(path, text.encode())


def _write_parquet(path: Path, table: pa.Table) -> None:
    write_file_atomic(path, lambda tmp: pq.write_table(table, tmp))


def _smooth_actions(rng: np.random.Generator, length: int, dim: int, fps: float) -> np.ndarray:
    """Sum of a few sinusoids per dim plus an offset: smooth, bounded, distinct per dim."""
    t = np.arange(length, dtype=np.float64)[:, None] / fps
    freqs = rng.uniform(0.2, 1.5, size=(3, dim))
    phases = rng.uniform(0.0, 2 * np.pi, size=(3, dim))
    amps = rng.uniform(0.1, 1.0, size=(3, dim)) * rng.uniform(0.5, 3.0, size=(1, dim))
    offset = rng.normal(0.0, 1.0, size=(1, dim))
    wave = sum(amps[k] * np.sin(2 * np.pi * freqs[k] * t + phases[k]) for k in range(3))
    return (wave + offset).astype(np.float32)


def _list_array(values: np.ndarray, list_type: Literal["fixed", "variable"]) -> pa.Array:
    n, dim = values.shape
    flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1), type=pa.float32())
    if list_type == "fixed":
        return pa.FixedSizeListArray.from_arrays(flat, dim)
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32), type=pa.int32())
    return pa.ListArray.from_arrays(offsets, flat)


def _frames_table(
    actions: np.ndarray,
    state: np.ndarray,
    *,
    action_key: str,
    list_type: Literal["fixed", "variable"],
    episode_index: int,
    global_start: int,
    fps: float,
) -> pa.Table:
    n = actions.shape[0]
    frame_index = np.arange(n, dtype=np.int64)
    return pa.table(
        {
            action_key: _list_array(actions, list_type),
            "observation.state": _list_array(state, list_type),
            "timestamp": pa.array((frame_index / fps).astype(np.float32)),
            "frame_index": pa.array(frame_index),
            "episode_index": pa.array(np.full(n, episode_index, dtype=np.int64)),
            "index": pa.array(np.arange(global_start, global_start + n, dtype=np.int64)),
            "task_index": pa.array(np.zeros(n, dtype=np.int64)),
        }
    )


def _features(action_key: str, dim: int) -> dict[str, Any]:
    names = [f"joint_{i}" for i in range(dim)]
    return {
        action_key: {"dtype": "float32", "shape": [dim], "names": names},
        "observation.state": {"dtype": "float32", "shape": [dim], "names": names},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }


def _fps_json(fps: float) -> float | int:
    # LeRobot writes an integer fps; keep fractional rates as given.
    return int(fps) if float(fps).is_integer() else float(fps)


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
    if version not in ("v2.1", "v3.0"):
        raise ValueError(f"version must be 'v2.1' or 'v3.0', got {version!r}")
    if list_type not in ("fixed", "variable"):
        raise ValueError(f"list_type must be 'fixed' or 'variable', got {list_type!r}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    if actions is None:
        episodes = [_smooth_actions(rng, int(n), action_dim, fps) for n in episode_lengths]
    else:
        episodes = [np.ascontiguousarray(a, dtype=np.float32) for a in actions]
        if not episodes:
            raise ValueError("actions must hold at least one episode")
        action_dim = int(episodes[0].shape[1]) if episodes[0].ndim == 2 else -1
        if any(a.ndim != 2 or a.shape[1] != action_dim for a in episodes):
            raise ValueError("every episode in actions must be a (len_i, d) array with the same d")
    if any(a.shape[0] < 1 for a in episodes):
        raise ValueError("every episode needs at least one frame (LeRobot has no empty episodes)")
    states = [(a * 0.5 + 0.1).astype(np.float32) for a in episodes]
    lengths = [int(a.shape[0]) for a in episodes]
    total_frames = int(sum(lengths))
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)

    per_episode = []
    for i, (act, st) in enumerate(zip(episodes, states, strict=True)):
        ts = (np.arange(lengths[i]) / fps).astype(np.float32)[:, None]
        per_episode.append(
            {
                "action": episode_stats(act),
                "observation.state": episode_stats(st),
                "timestamp": episode_stats(ts),
            }
        )

    meta = root / "meta"
    if version == "v2.1":
        data_path = V21_DATA_PATH
        total_chunks = max(1, math.ceil(len(episodes) / files_per_chunk))
        for i, (act, st) in enumerate(zip(episodes, states, strict=True)):
            rel = data_path.format(episode_chunk=i // files_per_chunk, episode_index=i)
            table = _frames_table(
                act,
                st,
                action_key=action_key,
                list_type=list_type,
                episode_index=i,
                global_start=int(starts[i]),
                fps=fps,
            )
            _write_parquet(root / rel, table)
        _write_jsonl(
            meta / "episodes.jsonl",
            [{"episode_index": i, "tasks": [TASK], "length": n} for i, n in enumerate(lengths)],
        )
        _write_jsonl(meta / "tasks.jsonl", [{"task_index": 0, "task": TASK}])
        if write_episode_stats:
            rows = [
                {"episode_index": i, "stats": _rename_action(s, action_key)}
                for i, s in enumerate(per_episode)
            ]
            _write_jsonl(meta / "episodes_stats.jsonl", rows)
    else:
        data_path = V30_DATA_PATH
        groups = [
            list(range(s, min(s + episodes_per_file, len(episodes))))
            for s in range(0, len(episodes), episodes_per_file)
        ]
        total_chunks = max(1, math.ceil(len(groups) / files_per_chunk))
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
            tables = [
                _frames_table(
                    episodes[i],
                    states[i],
                    action_key=action_key,
                    list_type=list_type,
                    episode_index=i,
                    global_start=int(starts[i]),
                    fps=fps,
                )
                for i in group
            ]
            rel = data_path.format(chunk_index=chunk_index, file_index=file_index)
            _write_parquet(root / rel, pa.concat_tables(tables))
            for i in group:
                columns["episode_index"].append(i)
                columns["tasks"].append([TASK])
                columns["length"].append(lengths[i])
                columns["data/chunk_index"].append(chunk_index)
                columns["data/file_index"].append(file_index)
                columns["dataset_from_index"].append(int(starts[i]))
                columns["dataset_to_index"].append(int(starts[i + 1]))
                if write_episode_stats:
                    for feature, stats in _rename_action(per_episode[i], action_key).items():
                        for stat, value in stats.items():
                            stat_columns.setdefault(f"stats/{feature}/{stat}", []).append(value)
        # Episode tables are split like the data files: one episodes parquet per group of episodes.
        columns_all = {**columns, **stat_columns}
        for file_number, group in enumerate(groups):
            chunk_index, file_index = divmod(file_number, files_per_chunk)
            rows = group  # episode i is row i: episodes are written in index order
            table = pa.table(
                {
                    **{name: pa.array([values[r] for r in rows]) for name, values in columns_all.items()},
                    "meta/episodes/chunk_index": pa.array([chunk_index] * len(rows), type=pa.int64()),
                    "meta/episodes/file_index": pa.array([file_index] * len(rows), type=pa.int64()),
                }
            )
            rel = V30_EPISODES_PATH.format(chunk_index=chunk_index, file_index=file_index)
            _write_parquet(root / rel, table)
        _write_parquet(
            meta / "tasks.parquet",
            pa.table({"task_index": pa.array([0], type=pa.int64()), "task": pa.array([TASK])}),
        )

    info: dict[str, Any] = {
        "codebase_version": version,
        "robot_type": robot_type,
        "total_episodes": len(episodes),
        "total_frames": total_frames,
        "total_tasks": 1,
        "total_videos": 0,
        "total_chunks": total_chunks,
        "chunks_size": files_per_chunk,
        "fps": _fps_json(fps),
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": data_path,
        "video_path": None,
        "features": _features(action_key, action_dim),
    }
    if version == "v3.0":
        info.pop("total_chunks")
        info.pop("total_videos")
        info["data_files_size_in_mb"] = 100
        info["video_files_size_in_mb"] = 500
    if control_mode is not None:
        info["control_mode"] = control_mode
    for key, value in (info_overrides or {}).items():
        if value is None:
            info.pop(key, None)
        else:
            info[key] = value
    _write_json(meta / "info.json", info)

    if write_stats:
        ts_all = np.concatenate([(np.arange(n) / fps).astype(np.float32) for n in lengths])[:, None]
        stats = {
            action_key: episode_stats(np.concatenate(episodes)),
            "observation.state": episode_stats(np.concatenate(states)),
            "timestamp": episode_stats(ts_all),
        }
        stats[action_key].update(dict(stats_override or {}))
        _write_json(meta / "stats.json", stats)

    return SyntheticDataset(
        root=root,
        actions=tuple(episodes),
        fps=float(fps),
        action_dim=action_dim,
        version=version,
        action_key=action_key,
        robot_type=robot_type,
        control_mode=control_mode,
    )


def _rename_action(stats: Mapping[str, Any], action_key: str) -> dict[str, Any]:
    return {(action_key if k == "action" else k): v for k, v in stats.items()}


def write_mixture(path: Path, document: Mapping[str, Any]) -> Path:
    """Write a mixture document as JSON (indent 2; NaN/Infinity allowed), atomically.

    Args:
        path: Target file.
        document: The mixture (bare or wrapped in ``dataset_mixture``).

    Returns:
        ``path``.
    """
    path = Path(path)
    _write_json(path, document, indent=2)
    return path


# (robot_type, control_mode, action_dim, version) of the generated example robots beyond the fixed templates.
_EXAMPLE_ROBOTS = [
    ("ur5e", "joint_pos", 7),
    ("franka", "ee_delta", 8),
    ("widowx", None, 7),
    ("so100", "joint_pos", 6),
    ("koch", None, 6),
    ("xarm", "ee_pos", 7),
    ("stretch", "velocity", 3),
    ("aloha", "joint_pos", 14),
    ("unitree_h1", "joint_pos", 19),
    ("kinova", None, 7),
    ("fetch", "velocity", 2),
    ("jaco", "ee_delta", 7),
]


def make_example_mixture(
    out_dir: Path,
    *,
    n_datasets: int = 6,
    seed: int = 0,
    episode_lengths: Sequence[int] = (40, 56),
) -> Path:
    """Write a small multi-robot mixture (datasets + ``mixture.json``) and return the mixture path.

    The first six entries are fixed templates: a 7-dim arm v2.1 pair sharing the head ``arm7::joint_pos``
    (the second without ``meta/stats.json``), a 14-dim bimanual v3.0, a 2-dim mobile base (v3.0), an entry
    whose dataset has no ``robot_type`` (a fallback head) and a 6-dim arm whose tags come from the mixture
    override. Further entries cycle through a table of robots (about 30 heads for 400 datasets, with a
    fallback every 50th entry). Roots are written relative to the mixture file.

    Args:
        out_dir: Folder receiving ``mixture.json`` and ``datasets/<name>/``.
        n_datasets: Number of mixture entries (at least 1).
        seed: Base seed of the trajectories.
        episode_lengths: Frames per episode of every dataset.

    Returns:
        Path of the written ``mixture.json``.
    """
    if n_datasets < 1:
        raise ValueError("n_datasets must be at least 1")
    out_dir = Path(out_dir)
    templates: list[dict[str, Any]] = [
        {"name": "arm7_a", "version": "v2.1", "robot_type": "arm7", "control_mode": "joint_pos", "dim": 7},
        {
            "name": "arm7_b",
            "version": "v2.1",
            "robot_type": "arm7",
            "control_mode": "joint_pos",
            "dim": 7,
            "write_stats": False,
        },
        {
            "name": "bimanual",
            "version": "v3.0",
            "robot_type": "bimanual",
            "control_mode": "joint_pos",
            "dim": 14,
        },
        {
            "name": "mobile_base",
            "version": "v3.0",
            "robot_type": "base",
            "control_mode": "velocity",
            "dim": 2,
        },
        {"name": "untagged", "version": "v2.1", "robot_type": None, "control_mode": None, "dim": 5},
        {
            "name": "so100_override",
            "version": "v3.0",
            "robot_type": "unknown",
            "control_mode": None,
            "dim": 6,
            "entry": {"robot_type": "so100", "control_mode": "joint_pos"},
        },
    ]
    entries: list[dict[str, Any]] = []
    weights: list[float] = []
    for i in range(n_datasets):
        if i < len(templates):
            spec = templates[i]
        else:
            k = (i - len(templates)) % (len(_EXAMPLE_ROBOTS) + 6)
            robot, mode, dim = _EXAMPLE_ROBOTS[k % len(_EXAMPLE_ROBOTS)]
            # A second control mode for half the robots: 18 generated heads, about 30 in total at 400.
            mode = mode if k < len(_EXAMPLE_ROBOTS) else f"{mode or 'raw'}_alt"
            fallback = i % 50 == 0
            spec = {
                "name": f"{robot}_{i:04d}",
                "version": "v2.1" if i % 2 else "v3.0",
                "robot_type": None if fallback else robot,
                "control_mode": mode,
                "dim": dim,
            }
        name = spec["name"]
        write_lerobot_dataset(
            out_dir / "datasets" / name,
            version=spec["version"],
            robot_type=spec["robot_type"],
            control_mode=spec["control_mode"],
            action_dim=spec["dim"],
            episode_lengths=episode_lengths,
            write_stats=spec.get("write_stats", True),
            seed=seed * 100_003 + i,
        )
        entry: dict[str, Any] = {"repo_id": f"example/{name}", "root": f"datasets/{name}"}
        entry.update(spec.get("entry", {}))
        entries.append(entry)
        weights.append(1.0 + (i % 3) * 0.5)
    document = {
        "dataset_mixture": {
            "datasets": entries,
            "weights": weights,
            "action_freq": 30.0,
            "require_non_empty_robot_type": False,
            "require_non_empty_control_mode": False,
        }
    }
    return write_mixture(out_dir / "mixture.json", document)
