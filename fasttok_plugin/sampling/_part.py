"""One part of an entry's budget: the unit of work a sampler worker runs (top-level, picklable)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fasttok_plugin.errors import DatasetError
from fasttok_plugin.lerobot import DatasetMeta, Frames, read_frames
from fasttok_plugin.sampling._resample import interpolation
from fasttok_plugin.sampling.starts import chunk_span, draw_positions, valid_start_rows

__all__ = ["PartResult", "Task", "observed_fps", "sample_part"]


@dataclass(frozen=True, slots=True)
class Task:
    """Draws ``[part_start, part_stop)`` of entry ``entry``'s ``budget`` (the draw order is the entry's)."""

    position: int
    entry: int
    name: str
    meta: DatasetMeta
    head: int
    budget: int
    part_start: int
    part_stop: int
    chunk_size: int
    freq: float
    max_action_dim: int
    seed: int


@dataclass(frozen=True, slots=True)
class PartResult:
    """The chunks of one `Task`, at the dataset's native width (``error`` set: no chunks)."""

    position: int
    actions: np.ndarray
    episode_index: np.ndarray
    start_frame: np.ndarray
    skipped_nonfinite: int
    valid_starts: int
    repeated_starts: int
    error: str | None
    peak_rss_mb: float = 0.0  # of the worker process that produced it (0 when sampled in-process)
    off_grid: bool = False  # the timestamps are not ``t_first + i / fps`` (``Frames.grid_fps`` is None)
    observed_fps: float | None = None  # frames per second the timestamps show (None: no 2-frame episode)


def sample_part(task: Task) -> PartResult:
    """Sample ``[part_start, part_stop)`` of an entry's budget (runs in a worker process).

    Every part of an entry draws the entry's whole start sequence from the same generator and keeps its
    slice, so the chunks do not depend on how the budget is cut into parts.
    """
    try:
        frames = read_frames(task.meta, task.name)
    except DatasetError as exc:
        return _failed(task, str(exc))
    valid_rows = valid_start_rows(frames, chunk_size=task.chunk_size, freq=task.freq)
    valid = int(valid_rows.size)
    if valid == 0:
        return _failed(task, _no_start(task, frames))
    rng = np.random.default_rng(np.random.SeedSequence([task.seed, task.entry]))
    positions = draw_positions(rng, valid, task.budget)[task.part_start : task.part_stop]
    repeated = max(0, task.budget - valid) if task.part_start == 0 else 0
    rows = valid_rows[positions]
    episode = frames.episode_of_row[rows]
    plan = interpolation(frames, rows, episode, task.chunk_size, task.freq)
    finite = plan.finite(frames)
    keep = np.flatnonzero(finite)
    if keep.size < finite.size:
        plan = plan.take(keep)
    start_frame = rows - frames.offsets[:-1][episode]
    return PartResult(
        position=task.position,
        actions=plan.values(frames.actions),
        episode_index=frames.episodes[episode][keep].astype(np.int64),
        start_frame=start_frame[keep].astype(np.int64),
        skipped_nonfinite=int(finite.size - keep.size),
        valid_starts=valid,
        repeated_starts=repeated,
        error=None,
        off_grid=frames.grid_fps is None,
        observed_fps=observed_fps(frames),
    )


def observed_fps(frames: Frames) -> float | None:
    """Frames per second the timestamps show: steps over seconds, summed over the episodes.

    A sum rather than a per-episode median: one number that millisecond timestamps (1000x too slow)
    or a wrong ``info.json`` fps (a factor off) move as much as they move the data.
    """
    steps = int(np.maximum(frames.lengths - 1, 0).sum())
    seconds = float((frames.t_last - frames.t_first).sum())
    return steps / seconds if steps and seconds > 0 else None


def _no_start(task: Task, frames: Frames) -> str:
    span = chunk_span(task.chunk_size, task.freq)
    longest = float((frames.t_last - frames.t_first).max()) if frames.episodes.size else 0.0
    return (
        f"{task.name}: no episode is long enough for a chunk of {task.chunk_size} steps at "
        f"{task.freq:g} Hz ({span:.3f} s; longest selected episode lasts {longest:.3f} s); lower "
        f"chunk_size, raise action_freq or remove the entry"
    )


def _failed(task: Task, error: str) -> PartResult:
    return PartResult(
        position=task.position,
        actions=np.zeros((0, task.chunk_size, int(task.meta.action_dim)), np.float32),
        episode_index=np.zeros(0, np.int64),
        start_frame=np.zeros(0, np.int64),
        skipped_nonfinite=0,
        valid_starts=0,
        repeated_starts=0,
        error=error,
    )
