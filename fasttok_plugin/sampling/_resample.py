"""Resampling: step ``k`` of a chunk is at ``t0 + k / freq``, linearly interpolated on the timestamps.

Times are clamped inside the episode. Within `_SNAP` of a frame a time takes that frame's value, so an
integer fps/freq ratio (and float32 timestamps a hair off the grid) gives the frames themselves, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fasttok_plugin.lerobot import Frames

__all__ = ["Interpolation", "interpolation"]

#: Interpolation weights this close to 0 or 1 snap to the frame (a thousandth of a frame interval).
_SNAP = 1e-3


@dataclass(frozen=True, slots=True)
class Interpolation:
    """Where each chunk step reads: ``(1 - weight) * actions[left] + weight * actions[right]``.

    Attributes:
        left: ``(B, T)`` row each step starts from.
        right: ``(B, T)`` row it moves towards (``left`` where unused, so a NaN there cannot leak in).
        weight: ``(B, T)`` float32 weight of ``right``.
        uses_right: ``(B, T)`` bool, ``weight > 0``.
    """

    left: np.ndarray
    right: np.ndarray
    weight: np.ndarray
    uses_right: np.ndarray

    def take(self, keep: np.ndarray) -> Interpolation:
        """The chunks ``keep`` (indices along ``B``)."""
        return Interpolation(self.left[keep], self.right[keep], self.weight[keep], self.uses_right[keep])

    def finite(self, frames: Frames) -> np.ndarray:
        """``(B,)`` bool: every frame the chunk uses is finite (decided on flags, not on values)."""
        if frames.all_finite:
            return np.ones(self.left.shape[0], bool)
        flags = frames.finite
        return np.take(flags, self.left).all(axis=1) & np.take(flags, self.right).all(axis=1)

    def values(self, actions: np.ndarray) -> np.ndarray:
        """``(B, T, d)`` float32 chunk values at the native width (the batcher pads)."""
        out = np.take(actions, self.left, axis=0)  # (B, T, d); np.take beats fancy indexing ~4x
        if self.uses_right.any():
            # Off-grid times (resampling): interpolate at the native width (contiguous, ~8x cheaper than
            # on padded rows).
            step = np.take(actions, self.right, axis=0)
            np.subtract(step, out, out=step)
            step *= self.weight[:, :, None]
            out += step
        return out


def interpolation(
    frames: Frames, rows: np.ndarray, episode: np.ndarray, chunk_size: int, freq: float
) -> Interpolation:
    """Where the chunks starting at ``rows`` (of episodes ``episode``) read their ``chunk_size`` steps."""
    lo_row = frames.offsets[:-1][episode][:, None]
    hi_row = frames.offsets[1:][episode][:, None] - 1
    if frames.grid_fps is not None:
        return _on_grid(frames.grid_fps, rows, hi_row, chunk_size, freq)
    return _on_timestamps(frames, rows, episode, lo_row, hi_row, chunk_size, freq)


def _on_grid(
    grid_fps: float, rows: np.ndarray, hi_row: np.ndarray, chunk_size: int, freq: float
) -> Interpolation:
    # Uniform timestamps (frame_index / fps up to float32 noise): step k sits at frame
    # start + k * fps / freq, so the frame offsets and weights are one (T,) vector shared by every chunk;
    # no search and no (B, T) float math (an integer fps ratio gives weights of exactly 0).
    offset = np.arange(chunk_size) * (grid_fps / freq)
    whole = np.floor(offset)
    frac = offset - whole
    # Within _SNAP of a frame, a step takes that frame's value (float rounding of the ratio).
    whole += frac > 1.0 - _SNAP
    frac = np.where((frac < _SNAP) | (frac > 1.0 - _SNAP), 0.0, frac).astype(np.float32)
    left = np.minimum(rows[:, None] + whole.astype(np.int64)[None, :], hi_row)
    uses_right = np.broadcast_to(frac > 0.0, left.shape)
    right = np.minimum(left + uses_right, hi_row)
    return Interpolation(left, right, np.broadcast_to(frac, left.shape), uses_right)


def _on_timestamps(
    frames: Frames,
    rows: np.ndarray,
    episode: np.ndarray,
    lo_row: np.ndarray,
    hi_row: np.ndarray,
    chunk_size: int,
    freq: float,
) -> Interpolation:
    ts = frames.ts
    steps = np.arange(chunk_size, dtype=np.float64) / freq
    times = ts[rows][:, None] + steps[None, :]  # (B, T)
    np.minimum(times, frames.t_last[episode][:, None], out=times)  # clamp inside the episode
    # One searchsorted over all chunk times: episodes are shifted onto disjoint increasing ranges.
    shift = frames.shift[episode][:, None]
    left = np.searchsorted(frames.shifted_ts, times + shift, side="right") - 1
    np.clip(left, lo_row, np.maximum(lo_row, hi_row - 1), out=left)
    right = np.minimum(left + 1, hi_row)
    gap = np.take(ts, right) - np.take(ts, left)
    # Weights from the unshifted timestamps, so frame times get w == 0 exactly.
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(gap > 0, (times - np.take(ts, left)) / gap, 0.0)
    # float32 timestamps put on-grid times a hair off their frame: within _SNAP of a frame interval a time
    # takes that frame's value (w == 1 becomes the next frame with w == 0: exact).
    at_right = w > 1.0 - _SNAP
    left = np.where(at_right, right, left)
    weight = np.where(at_right | (w < _SNAP), 0.0, w).astype(np.float32)
    # A frame weighted 0 must not contribute (0 * NaN is NaN): unused right frames = the left one.
    uses_right = weight > 0.0
    right = np.where(uses_right, right, left)
    return Interpolation(left, right, weight, uses_right)
