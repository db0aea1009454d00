"""One part of an entry's budget: the unit of work a sampler worker runs (top-level, picklable)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fasttok_plugin.errors import DatasetError
from fasttok_plugin.lerobot import DatasetMeta, Frames, read_frames
from fasttok_plugin.sampling._resample import interpolation
from fasttok_plugin.sampling.starts import chunk_span, draw_positions, valid_start_rows

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.transforms import ActionTransform

__all__ = ["PartResult", "Task", "chunk_values", "observed_fps", "read_task_frames", "sample_part"]


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
    transform: ActionTransform | None = None  # applied to every chunk (None or identity: raw)


@dataclass(frozen=True, slots=True)
class PartResult:
    """The chunks of one `Task`, at the dataset's width after its transform (``error`` set: no chunks)."""

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
    if task.transform is not None:
        past = [m for k, m in task.transform.problems(int(task.meta.action_dim), None) if k != "state_key"]
        if past:
            return _failed(
                task, f"{task.name}: the transform {task.transform.describe()!r}: {'; '.join(past)}"
            )
    try:
        frames = read_task_frames(task.meta, task.name, task.transform)
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
    values, keep = chunk_values(frames, rows, task.chunk_size, task.freq, task.transform)
    start_frame = rows - frames.offsets[:-1][episode]
    return PartResult(
        position=task.position,
        actions=values,
        episode_index=frames.episodes[episode][keep].astype(np.int64),
        start_frame=start_frame[keep].astype(np.int64),
        skipped_nonfinite=int(rows.size - keep.size),
        valid_starts=valid,
        repeated_starts=repeated,
        error=None,
        off_grid=frames.grid_fps is None,
        observed_fps=observed_fps(frames),
    )


def read_task_frames(meta: DatasetMeta, name: str, transform: ActionTransform | None) -> Frames:
    """`read_frames`, with the transform's state column when it makes dims relative."""
    state_key = transform.state_key if transform is not None and transform.needs_state else None
    return read_frames(meta, name, state_key=state_key)


def chunk_values(
    frames: Frames, rows: np.ndarray, chunk_size: int, freq: float, transform: ActionTransform | None
) -> tuple[np.ndarray, np.ndarray]:
    """The chunks starting at ``rows``, as the policy sees them: resampled, then transformed.

    The one rule for chunk values, shared by the sampler and the stats of relative actions
    (`fasttok_plugin.stats`). A chunk holding NaN/Inf in a frame it uses (or, for relative actions, in the
    state at its start) is left out.

    Returns:
        ``(values (K, T, d') float32, keep (K,) indices into rows)``.
    """
    episode = frames.episode_of_row[rows]
    plan = interpolation(frames, rows, episode, chunk_size, freq)
    finite = plan.finite(frames)
    relative = transform is not None and transform.needs_state
    if relative:
        assert frames.state is not None, "read the frames with the transform's state_key"
        finite = finite & np.isfinite(frames.state[rows]).all(axis=1)
    keep = np.flatnonzero(finite)
    if keep.size < finite.size:
        plan = plan.take(keep)
    values = plan.values(frames.actions)
    if transform is not None and not transform.is_identity:
        state = frames.state[rows[keep]] if relative and frames.state is not None else None
        values = transform.apply(values, state)
    return values, keep


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
        actions=np.zeros((0, task.chunk_size, _width(task)), np.float32),
        episode_index=np.zeros(0, np.int64),
        start_frame=np.zeros(0, np.int64),
        skipped_nonfinite=0,
        valid_starts=0,
        repeated_starts=0,
        error=error,
    )


def _width(task: Task) -> int:
    native = int(task.meta.action_dim)
    return native if task.transform is None else task.transform.output_dim(native)
