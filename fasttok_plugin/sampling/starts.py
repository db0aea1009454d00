"""Which frames may start a chunk: the one rule, shared by the sampler and the preflight.

A chunk of ``chunk_size`` steps at ``freq`` Hz spans ``(chunk_size - 1) / freq`` seconds, and a frame may
start it when its episode still lasts that long after the frame. From metadata alone (what the preflight
has) that is a frame count: in an episode of ``L`` frames at ``fps``, start frame ``s`` is valid iff
``(L - 1 - s) / fps >= (chunk_size - 1) / freq``, up to a relative ``1e-9`` that absorbs the rounding of
the products and never a real shortfall (`valid_start_counts`). The sampler applies the same count to
data whose timestamps sit on the fps grid (LeRobot's ``frame_index / fps``, up to float32 noise). Only
data with irregular timestamps (dropped or late frames), which the metadata cannot show, is decided on the
timestamps themselves, with the same test on time: ``t_last - t0 >= span`` (`valid_start_rows`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.lerobot import Frames

__all__ = [
    "chunk_span",
    "draw_positions",
    "frames_after_start",
    "longest_chunk",
    "valid_start_counts",
    "valid_start_rows",
]

#: Relative tolerance of the fit test: float rounding of ``frames * freq`` against ``steps * fps`` only.
_REL_TOL = 1e-9
#: Timestamps are stored as float32 (~6e-8 relative error): an exact fit must not fail on that noise.
_F32_REL = 1e-6


def chunk_span(chunk_size: int, freq: float) -> float:
    """Seconds from a chunk's first step to its last: ``(chunk_size - 1) / freq``."""
    return (chunk_size - 1) / freq


def _fits(frames_after: float, chunk_size: int, fps: float, freq: float) -> bool:
    # (frames_after / fps >= (chunk_size - 1) / freq) without dividing.
    return frames_after * freq >= (chunk_size - 1) * fps * (1 - _REL_TOL)


def frames_after_start(chunk_size: int, fps: float, freq: float) -> int:
    """Frames an episode must still have after a start frame for a chunk to fit (0 for one step).

    Args:
        chunk_size: Steps per chunk.
        fps: The episode's frame rate.
        freq: The chunk's step rate in Hz.
    """
    need = max(0, math.ceil((chunk_size - 1) * fps * (1 - _REL_TOL) / freq))
    # The division may round across an integer: settle on the smallest count `_fits` accepts.
    while need > 0 and _fits(need - 1, chunk_size, fps, freq):
        need -= 1
    while not _fits(need, chunk_size, fps, freq):
        need += 1
    return need


def valid_start_counts(lengths: np.ndarray, *, fps: float, chunk_size: int, freq: float) -> np.ndarray:
    """Valid start frames per episode, from the episode lengths alone.

    Args:
        lengths: ``(E,)`` frames per episode.
        fps: The dataset's frame rate.
        chunk_size: Steps per chunk.
        freq: The chunk's step rate in Hz (``fps`` when not resampled).

    Returns:
        ``(E,)`` int64: episode ``e`` may start a chunk at frames ``0 .. counts[e] - 1`` (0: too short).
    """
    need = frames_after_start(chunk_size, fps, freq)
    return np.maximum(np.asarray(lengths, dtype=np.int64) - need, 0)


def longest_chunk(length: int, *, fps: float, freq: float) -> int:
    """The largest ``chunk_size`` an episode of ``length`` frames still fits (0 when it has no frame)."""
    if length < 1:
        return 0
    after = length - 1
    size = math.floor(after * freq / (fps * (1 - _REL_TOL))) + 1
    while size > 1 and not _fits(after, size, fps, freq):
        size -= 1
    while _fits(after, size + 1, fps, freq):
        size += 1
    return size


def valid_start_rows(frames: Frames, *, chunk_size: int, freq: float) -> np.ndarray:
    """Rows of ``frames`` that may start a chunk, ascending.

    On the fps grid this is `valid_start_counts` (the preflight's count, exactly); off the grid the same
    test on the timestamps: ``t0 + span <= t_last`` of the row's episode (float32 storage noise allowed).

    Args:
        frames: The selected episodes' frames.
        chunk_size: Steps per chunk.
        freq: The chunk's step rate in Hz.

    Returns:
        ``(V,)`` int64 row indices into ``frames``.
    """
    if frames.grid_fps is not None:
        counts = valid_start_counts(frames.lengths, fps=frames.grid_fps, chunk_size=chunk_size, freq=freq)
        frame = np.arange(frames.ts.size) - frames.offsets[:-1][frames.episode_of_row]
        return np.flatnonzero(frame < counts[frames.episode_of_row])
    span = chunk_span(chunk_size, freq) * (1 - _REL_TOL)
    t_last = frames.t_last
    limit = t_last + _F32_REL * np.abs(t_last)
    return np.flatnonzero(frames.ts + span <= limit[frames.episode_of_row])


def draw_positions(rng: np.random.Generator, valid: int, budget: int) -> np.ndarray:
    """``budget`` draws over ``range(valid)``: without replacement, then whole rounds when exceeded.

    Each position then occurs ``floor`` or ``ceil(budget / valid)`` times.
    """
    rounds, rest = divmod(budget, valid)
    parts = [rng.permutation(valid) for _ in range(rounds)]
    if rest:
        parts.append(rng.choice(valid, size=rest, replace=False))
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
