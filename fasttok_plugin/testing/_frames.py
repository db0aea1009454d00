"""The frames of a test dataset: trajectories, LeRobot-style stats and the per-frame parquet tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa

__all__ = ["TASK", "Episodes", "episode_stats", "features", "rename_action", "smooth_actions"]

#: The one task every episode is labelled with.
TASK = "move the thing"

ListType = Literal["fixed", "variable"]


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


def smooth_actions(rng: np.random.Generator, length: int, dim: int, fps: float) -> np.ndarray:
    """Sum of a few sinusoids per dim plus an offset: smooth, bounded, distinct per dim."""
    t = np.arange(length, dtype=np.float64)[:, None] / fps
    freqs = rng.uniform(0.2, 1.5, size=(3, dim))
    phases = rng.uniform(0.0, 2 * np.pi, size=(3, dim))
    amps = rng.uniform(0.1, 1.0, size=(3, dim)) * rng.uniform(0.5, 3.0, size=(1, dim))
    offset = rng.normal(0.0, 1.0, size=(1, dim))
    wave = sum(amps[k] * np.sin(2 * np.pi * freqs[k] * t + phases[k]) for k in range(3))
    return (wave + offset).astype(np.float32)


def rename_action(stats: Mapping[str, Any], action_key: str) -> dict[str, Any]:
    """Per-feature stats with the ``"action"`` feature renamed to ``action_key``."""
    return {(action_key if k == "action" else k): v for k, v in stats.items()}


def features(action_key: str, dim: int) -> dict[str, Any]:
    """The ``features`` block of ``info.json``."""
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


def _list_array(values: np.ndarray, list_type: ListType) -> pa.Array:
    n, dim = values.shape
    flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1), type=pa.float32())
    if list_type == "fixed":
        return pa.FixedSizeListArray.from_arrays(flat, dim)
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32), type=pa.int32())
    return pa.ListArray.from_arrays(offsets, flat)


@dataclass(frozen=True, slots=True)
class Episodes:
    """The episodes of one dataset and how their frames are written.

    Attributes:
        actions: Per-episode ``(len_i, d)`` float32 actions.
        states: Per-episode ``observation.state``, same shapes.
        fps: Frame rate (``timestamp = frame_index / fps``).
        action_key: Name of the action column.
        list_type: ``"fixed"`` (``fixed_size_list<float32>[d]``) or ``"variable"`` (``list<float32>``).
    """

    actions: tuple[np.ndarray, ...]
    states: tuple[np.ndarray, ...]
    fps: float
    action_key: str
    list_type: ListType

    @classmethod
    def of(
        cls, actions: Sequence[np.ndarray], *, fps: float, action_key: str, list_type: ListType
    ) -> Episodes:
        """Episodes with these float32 actions; ``observation.state`` is derived from them."""
        states = tuple((a * 0.5 + 0.1).astype(np.float32) for a in actions)
        return cls(tuple(actions), states, fps, action_key, list_type)

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def lengths(self) -> list[int]:
        """Frames per episode."""
        return [int(a.shape[0]) for a in self.actions]

    @property
    def starts(self) -> np.ndarray:
        """Global index of every episode's first frame, plus the total frames at the end."""
        return np.concatenate([[0], np.cumsum(self.lengths)]).astype(int)

    def timestamps(self, i: int) -> np.ndarray:
        """``(len_i, 1)`` float32 timestamps of episode ``i``."""
        return (np.arange(self.lengths[i]) / self.fps).astype(np.float32)[:, None]

    def stats(self, i: int) -> dict[str, Any]:
        """LeRobot per-episode stats of episode ``i`` (the action feature under ``action_key``)."""
        per_feature = {
            "action": episode_stats(self.actions[i]),
            "observation.state": episode_stats(self.states[i]),
            "timestamp": episode_stats(self.timestamps(i)),
        }
        return rename_action(per_feature, self.action_key)

    def table(self, i: int) -> pa.Table:
        """The frames of episode ``i`` as LeRobot writes them."""
        n = self.lengths[i]
        start = int(self.starts[i])
        frame_index = np.arange(n, dtype=np.int64)
        return pa.table(
            {
                self.action_key: _list_array(self.actions[i], self.list_type),
                "observation.state": _list_array(self.states[i], self.list_type),
                "timestamp": pa.array((frame_index / self.fps).astype(np.float32)),
                "frame_index": pa.array(frame_index),
                "episode_index": pa.array(np.full(n, i, dtype=np.int64)),
                "index": pa.array(np.arange(start, start + n, dtype=np.int64)),
                "task_index": pa.array(np.zeros(n, dtype=np.int64)),
            }
        )

    def all_stats(self) -> dict[str, Any]:
        """Dataset-wide ``meta/stats.json`` content over every episode."""
        stamps = np.concatenate([self.timestamps(i) for i in range(len(self))])
        return {
            self.action_key: episode_stats(np.concatenate(self.actions)),
            "observation.state": episode_stats(np.concatenate(self.states)),
            "timestamp": episode_stats(stamps),
        }
