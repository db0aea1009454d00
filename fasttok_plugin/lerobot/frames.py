"""The one reader of action data: timestamps and actions of a dataset's selected episodes.

`read_frames` reads every data file once (only the ``episode_index``, ``timestamp`` and action columns,
plus the state column when relative actions need it, through a memory map), keeps the selected
episodes' rows, checks them against the metadata and returns them as `Frames`, episodes contiguous and in
index order. It keeps the last dataset read in a one-entry cache per process, so consecutive sampler
parts of a large entry reuse its frames; `clear_frames_cache` drops it (the sampler does at the start of
every run, since the files may have changed).
`read_episode_frames` is the same reader restricted to one episode.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fasttok_plugin.errors import DatasetError
from fasttok_plugin.lerobot._messages import short_list
from fasttok_plugin.lerobot.arrays import action_array
from fasttok_plugin.lerobot.model import DatasetMeta, EpisodeInfo

__all__ = ["Frames", "clear_frames_cache", "read_episode_frames", "read_frames", "state_width"]

_TIMESTAMP = "timestamp"
_EPISODE = "episode_index"


@dataclass(frozen=True, slots=True)
class Frames:
    """All frames of a dataset's selected episodes, episodes contiguous and in index order.

    Attributes:
        ts: ``(N,)`` float64 timestamps (strictly increasing inside each episode, finite).
        actions: ``(N, d)`` float32 actions (may hold NaN/Inf: see ``finite``).
        offsets: ``(E + 1,)`` int64 row offsets of the episodes.
        episodes: ``(E,)`` int64 LeRobot episode indices.
        episode_of_row: ``(N,)`` position (in ``episodes``) of each row's episode.
        t_first: ``(E,)`` first timestamp per episode.
        t_last: ``(E,)`` last timestamp per episode.
        shift: ``(E,)`` moves episode ``e`` onto a time range disjoint from the others.
        shifted_ts: ``(N,)`` ``ts + shift``: increasing over the whole dataset (one search for all).
        finite: ``(N,)`` bool, every action value of the frame is finite.
        grid_fps: The dataset's fps when every timestamp is ``t_first + i / fps`` (up to float32 noise and a
            thousandth of a frame), else ``None``.
        all_finite: No NaN/Inf anywhere (the common case: callers skip per-chunk checks).
        state: ``(N, s)`` float32 values of the ``state_key`` column when read with one, else ``None``.
    """

    ts: np.ndarray
    actions: np.ndarray
    offsets: np.ndarray
    episodes: np.ndarray
    episode_of_row: np.ndarray
    t_first: np.ndarray
    t_last: np.ndarray
    shift: np.ndarray
    shifted_ts: np.ndarray
    finite: np.ndarray
    grid_fps: float | None
    all_finite: bool
    state: np.ndarray | None = None

    @property
    def lengths(self) -> np.ndarray:
        """``(E,)`` int64 frames per episode."""
        return np.diff(self.offsets)


# One dataset per process: consecutive parts of a large entry reuse its frames.
_FRAMES_CACHE: dict[tuple[Any, ...], Frames] = {}


def clear_frames_cache() -> None:
    """Forget the cached dataset (its files may have changed since)."""
    _FRAMES_CACHE.clear()


def read_frames(
    meta: DatasetMeta, name: str | None = None, *, cache: bool = True, state_key: str | None = None
) -> Frames:
    """Read timestamp and action of the selected episodes of ``meta``, one parquet read per data file.

    Args:
        meta: The dataset's metadata (``meta.episodes`` are the episodes read).
        name: Dataset name for messages (default ``meta.name``).
        cache: Serve (and keep) the dataset from this process's one-entry cache.
        state_key: Also read this state column (``Frames.state``; its width from ``info.json``).

    Returns:
        The frames, episodes in index order.

    Raises:
        DatasetError: ``data_missing`` (a data file is absent) or ``data_invalid`` (unreadable file or
            columns, wrong action dim, frame counts disagreeing with the metadata, timestamps not strictly
            increasing or not finite; a ``state_key`` column missing or of another width).
    """
    name = meta.name if name is None else name
    key = (str(meta.root), meta.action_key, tuple(e.index for e in meta.episodes), state_key)
    cached = _FRAMES_CACHE.get(key) if cache else None
    if cached is not None:
        return cached
    selected = sorted(meta.episodes, key=lambda e: int(e.index))
    wanted = np.array([int(e.index) for e in selected], dtype=np.int64)
    file_of = {int(e.index): e.data_file for e in selected}
    # A v3.0 file may hold episodes the mixture entry did not select.
    keep_only = wanted if meta.selection_active else None
    state_dim = None if state_key is None else state_width(meta, state_key, name)
    parts = [
        _read_file(path, meta, name, keep_only, file_of, state_key, state_dim)
        for path in dict.fromkeys(file_of.values())  # each data file once, in episode order
    ]
    ep_all, ts, actions, state = _concat_in_episode_order(parts, int(meta.action_dim), state_dim)
    episodes, counts = np.unique(ep_all, return_counts=True)
    if not np.array_equal(episodes, wanted) and np.isin(episodes, wanted, invert=True).any():
        # Rows of episodes the metadata does not list: never read them as frames.
        keep = np.isin(ep_all, wanted)
        ep_all, ts, actions = ep_all[keep], ts[keep], actions[keep]
        state = None if state is None else state[keep]
        episodes, counts = np.unique(ep_all, return_counts=True)
    _check_lengths(episodes, counts, selected, name)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    _check_timestamps(ts, offsets, episodes, file_of, name)
    frames = replace(_frames(ts, actions, offsets, episodes, float(meta.fps)), state=state)
    if cache:
        _FRAMES_CACHE.clear()
        _FRAMES_CACHE[key] = frames
    return frames


def read_episode_frames(meta: DatasetMeta, episode: EpisodeInfo) -> tuple[np.ndarray, np.ndarray]:
    """Read one episode's timestamps and actions (`read_frames` of that episode alone, uncached).

    Args:
        meta: The dataset's metadata.
        episode: One of ``meta.episodes``.

    Returns:
        ``(timestamps (n,) float64, actions (n, d) float32)``.

    Raises:
        DatasetError: ``data_missing`` (file absent) or ``data_invalid`` (columns missing, wrong dim,
            rows not matching the episode metadata, bad timestamps).
    """
    frames = read_frames(replace(meta, episodes=(episode,)), meta.name, cache=False)
    return frames.ts, frames.actions


# ------------------------------------------------------------------------------------------------- read


def state_width(meta: DatasetMeta, state_key: str, name: str | None = None) -> int:
    """Dims of the ``state_key`` feature in ``info.json`` (a 1-D ``shape``).

    Raises:
        DatasetError: ``data_invalid`` when the feature is missing or not a 1-D vector.
    """
    feature = meta.features.get(state_key) if isinstance(meta.features, dict) else None
    shape = feature.get("shape") if isinstance(feature, dict) else None
    if not (isinstance(shape, list) and len(shape) == 1 and isinstance(shape[0], int) and shape[0] > 0):
        raise DatasetError(
            "data_invalid",
            f"relative actions need the state feature {state_key!r} as a vector, but info.json "
            + ("has no such feature" if feature is None else f"gives it the shape {shape!r}"),
            path=meta.root / "meta" / "info.json",
            hint="set state_key to the dataset's state column (e.g. observation.state), or drop "
            "relative_dims",
            dataset=name,
        )
    return int(shape[0])


def _read_file(
    path: Path,
    meta: DatasetMeta,
    name: str | None,
    keep_only: np.ndarray | None,
    file_of: dict[int, Path],
    state_key: str | None = None,
    state_dim: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """``(episode_index, timestamp, action, state)`` of one data file, rows of ``keep_only`` episodes if
    given (``state`` None without ``state_key``)."""
    columns = [_EPISODE, _TIMESTAMP, meta.action_key] + ([state_key] if state_key else [])
    try:
        # ParquetFile on a memory map skips pq.read_table's dataset discovery and filesystem resolution
        # (~4x less overhead per file); threads and pre-buffering only pay off for files far larger than
        # an episode.
        source = pa.memory_map(str(path))
        table = pq.ParquetFile(source, pre_buffer=False).read(columns=columns, use_threads=False)
    except FileNotFoundError:
        in_file = [ep for ep, file in file_of.items() if file == path]
        raise DatasetError(
            "data_missing",
            f"data file of episodes {short_list(in_file)} is missing",
            path=path,
            hint="the dataset is incomplete: re-download it, or exclude those episodes with "
            "excluded_episodes",
            dataset=name,
        ) from None
    except Exception as exc:  # pyarrow raises several types for unreadable / column-less files
        raise DatasetError(
            "data_invalid",
            f"cannot read columns {columns}: {exc}",
            path=path,
            hint="check the file (re-download it if it is corrupt), the entry's action_key and, with "
            "relative actions, the state_key",
            dataset=name,
        ) from exc
    _check_columns(table, path, meta.action_key, name)
    episode_col = table.column(_EPISODE).to_numpy().astype(np.int64, copy=False)
    ts_col = table.column(_TIMESTAMP).to_numpy().astype(np.float64)
    act_col = action_array(table.column(meta.action_key), int(meta.action_dim), path=path, dataset=name)
    state_col = None
    if state_key is not None and state_dim is not None:
        state_col = action_array(table.column(state_key), state_dim, path=path, dataset=name)
    if keep_only is not None:
        keep = np.isin(episode_col, keep_only)
        if not keep.all():
            episode_col, ts_col, act_col = episode_col[keep], ts_col[keep], act_col[keep]
            state_col = None if state_col is None else state_col[keep]
    return episode_col, ts_col, act_col, state_col


def _check_columns(table: pa.Table, path: Path, action_key: str, name: str | None) -> None:
    """The three columns are there, with integer episode indices and numeric timestamps.

    Raises:
        DatasetError: ``data_invalid`` naming the file, the column and what it should hold.
    """
    names = table.schema.names
    for column in (_EPISODE, _TIMESTAMP, action_key):
        if column not in names:
            key_hint = " or set the entry's action_key to the action column" if column == action_key else ""
            raise DatasetError(
                "data_invalid",
                f"data file has no {column!r} column (columns: {', '.join(names) or 'none'})",
                path=path,
                hint=f"re-download or re-convert the dataset{key_hint}",
                dataset=name,
            )
    wanted = {_EPISODE: (pa.types.is_integer, "integers"), _TIMESTAMP: (_is_numeric, "numbers of seconds")}
    for column, (accepts, what) in wanted.items():
        kind = table.schema.field(column).type
        if not accepts(kind):
            raise DatasetError(
                "data_invalid",
                f"data column {column!r} holds {kind}, expected {what}",
                path=path,
                hint="re-convert the dataset with LeRobot's converter (it writes int64 episode_index and "
                "float32 timestamp)",
                dataset=name,
            )


def _is_numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _concat_in_episode_order(
    parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]],
    dim: int,
    state_dim: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    ep_all = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    ts = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
    actions = np.concatenate([p[2] for p in parts]) if parts else np.zeros((0, dim), np.float32)
    state = None
    if state_dim is not None:
        state = np.concatenate([p[3] for p in parts]) if parts else np.zeros((0, state_dim), np.float32)
    if ep_all.size > 1 and (np.diff(ep_all) < 0).any():
        # Stable: each episode's rows keep their file (frame) order.
        order = np.argsort(ep_all, kind="stable")
        ep_all, ts, actions = ep_all[order], ts[order], actions[order]
        state = None if state is None else state[order]
    return ep_all, ts, actions, state


# ----------------------------------------------------------------------------------------------- checks


def _check_lengths(
    episodes: np.ndarray, counts: np.ndarray, selected: Iterable[EpisodeInfo], name: str | None
) -> None:
    found = dict(zip(episodes.tolist(), counts.tolist(), strict=True))
    for episode in selected:
        ep, length = int(episode.index), int(episode.length)
        if found.get(ep, 0) != length:
            raise DatasetError(
                "data_invalid",
                f"episode {ep} has {found.get(ep, 0)} frames in the data but {length} in the metadata",
                path=episode.data_file,
                hint=f"the metadata and data disagree: re-download or re-convert the dataset, or exclude "
                f"episode {ep} with excluded_episodes",
                dataset=name,
            )


def _check_timestamps(
    ts: np.ndarray, offsets: np.ndarray, episodes: np.ndarray, file_of: dict[int, Path], name: str | None
) -> None:
    """Interpolation needs finite, strictly increasing time inside each episode."""
    if ts.size > 1:
        steps = np.diff(ts)
        inner = np.ones(ts.size - 1, dtype=bool)
        inner[offsets[1:-1] - 1] = False  # a step across an episode boundary is not a step
        bad = np.flatnonzero(inner & ~(steps > 0))
        if bad.size:
            row = int(bad[0])
            position = int(np.searchsorted(offsets, row, side="right") - 1)
            ep, frame = int(episodes[position]), row - int(offsets[position])
            raise DatasetError(
                "data_invalid",
                f"timestamps of episode {ep} are not strictly increasing (frame {frame})",
                path=file_of[ep],
                hint="fix the dataset's timestamp column",
                dataset=name,
            )
    if not np.isfinite(ts).all():
        row = int(np.flatnonzero(~np.isfinite(ts))[0])
        ep = int(episodes[np.searchsorted(offsets, row, side="right") - 1])
        raise DatasetError(
            "data_invalid",
            f"the timestamp column of episode {ep} holds NaN/Inf",
            path=file_of[ep],
            hint="fix the dataset's timestamp column",
            dataset=name,
        )


# -------------------------------------------------------------------------------------------- assemble


def _frames(
    ts: np.ndarray, actions: np.ndarray, offsets: np.ndarray, episodes: np.ndarray, fps: float
) -> Frames:
    n_episodes = offsets.size - 1
    episode_of_row = np.repeat(np.arange(n_episodes), np.diff(offsets))
    t_first = ts[offsets[:-1]] if n_episodes else np.zeros(0)
    t_last = ts[offsets[1:] - 1] if n_episodes else np.zeros(0)
    base = np.concatenate([[0.0], np.cumsum(t_last - t_first + 1.0)[:-1]])
    shift = base - t_first
    finite = np.isfinite(actions).all(axis=1)
    return Frames(
        ts=ts,
        actions=actions,
        offsets=offsets,
        episodes=episodes,
        episode_of_row=episode_of_row,
        t_first=t_first,
        t_last=t_last,
        shift=shift,
        shifted_ts=ts + shift[episode_of_row],
        finite=finite,
        all_finite=bool(finite.all()),
        grid_fps=_grid_fps(ts, offsets, episode_of_row, fps),
    )


def _grid_fps(ts: np.ndarray, offsets: np.ndarray, episode_of_row: np.ndarray, fps: float) -> float | None:
    """``fps`` when each episode's timestamps are ``t_first + i / fps`` within a thousandth of a frame."""
    if ts.size == 0 or not (fps > 0):
        return None
    frame = np.arange(ts.size) - offsets[:-1][episode_of_row]
    ideal = ts[offsets[:-1]][episode_of_row] + frame / fps
    # float32 timestamps carry ~6e-8 relative error: allow it on top of the thousandth of a frame.
    tol = 1e-3 / fps + 4 * np.finfo(np.float32).eps * np.abs(ts).max()
    return fps if bool((np.abs(ts - ideal) <= tol).all()) else None
