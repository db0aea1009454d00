"""Weighted chunk sampler over LeRobot parquet: the chunks a fit (and a policy) sees.

`ChunkSampler` draws ``chunk_size``-step action chunks from every entry of a resolved mixture:

* **Budgets**: the number of chunks per entry is proportional to the mixture weights (largest-remainder
  rounding, so budgets sum exactly to the total). Entries the norm heads skipped get no budget.
* **Starts**: uniform over the *valid* start frames of the selected episodes, so an episode's share is
  its number of valid starts. A start frame with timestamp ``t0`` is valid when the chunk's last step
  ``t0 + (chunk_size - 1) / freq`` lies inside the episode (a tiny tolerance absorbs float32 timestamps).
  Starts are drawn without replacement; only a budget larger than the number of valid starts repeats
  starts (each start then occurs ``floor`` or ``ceil`` times, and the report counts the repeats).
* **Values**: step ``k`` is at ``t0 + k / freq`` (``freq`` = the mixture's ``action_freq``, else the
  dataset's native fps), linearly interpolated on ``timestamp`` and clamped inside the episode, then
  zero-padded to ``max_action_dim``. Chunks holding NaN/Inf are skipped and counted, never zero-filled.
* **Determinism**: each entry gets its own generator from ``SeedSequence([seed, entry index])`` and
  results are assembled in entry order, so the output depends on the seed only, never on ``workers``.
* **Parallel and bounded**: entries are split into parts of at most `PART_CHUNKS` chunks and run in a
  process pool (``workers > 0``; ``forkserver``/``spawn`` workers, never ``fork``) with a bounded number
  of parts in flight; batches stream out. In a daemonic process (a DataLoader worker) it samples
  in-process, since those may not have children.
"""

from __future__ import annotations

import enum
import logging
import math
import multiprocessing
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from fasttok_plugin.errors import SamplingError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.lerobot import DatasetMeta
    from fasttok_plugin.resolve import ResolvedMixture

__all__ = [
    "PART_CHUNKS",
    "ChunkBatch",
    "ChunkSampler",
    "DatasetSampleReport",
    "SamplingError",
    "largest_remainder",
    "peak_rss_mb",
]

logger = logging.getLogger(__name__)

#: Largest number of chunks one worker task produces; bounds the memory of a part in flight.
PART_CHUNKS = 8192
#: Version tag of the sampling algorithm; part of `ChunkSampler.settings` (and so of fit fingerprints).
_SAMPLER_VERSION = "fasttok-chunk-sampler/1"
#: Interpolation weights this close to 0 or 1 snap to the frame (a thousandth of a frame interval).
_SNAP = 1e-3
_TIMESTAMP = "timestamp"
_EPISODE = "episode_index"


class _Default(enum.Enum):
    FROM_CONFIG = "from_config"


#: Sentinel: take ``action_freq`` from the mixture config.
FROM_CONFIG = _Default.FROM_CONFIG


@dataclass(frozen=True, slots=True)
class ChunkBatch:
    """A batch of raw (un-normalized) chunks.

    Attributes:
        actions: ``(B, T, D)`` float32, zero-padded from each dataset's native dim to ``D``.
        dataset_index: ``(B,)`` int64 mixture entry index of each chunk.
        head_index: ``(B,)`` int64 norm-head index of each chunk.
        episode_index: ``(B,)`` int64 LeRobot episode index of each chunk's start frame.
        start_frame: ``(B,)`` int64 start frame within its episode. ``(dataset, episode, start)``
            identifies a chunk instance (the fit pipeline splits held-out chunks on it).
    """

    actions: np.ndarray
    dataset_index: np.ndarray
    head_index: np.ndarray
    episode_index: np.ndarray | None = None
    start_frame: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.actions.shape[0])


@dataclass(frozen=True, slots=True)
class DatasetSampleReport:
    """What one mixture entry contributed to the last `ChunkSampler.sample` run.

    Attributes:
        entry: Mixture entry index.
        name: Entry name (``repo_id``, ``#i`` when repeated).
        requested: Budget of the entry.
        sampled: Chunks delivered (``requested - skipped_nonfinite`` unless ``error``).
        skipped_nonfinite: Chunks dropped because they held NaN/Inf.
        error: Why the entry delivered nothing (unreadable data, no valid start, skipped head), or None.
        head: Norm-head index (-1 when the heads skipped the entry).
        valid_starts: Number of valid start frames over the selected episodes.
        repeated_starts: Draws that reused a start because the budget exceeded ``valid_starts``.
        freq: Resampling rate in Hz (None when the entry was not read).
    """

    entry: int
    name: str
    requested: int
    sampled: int
    skipped_nonfinite: int
    error: str | None
    head: int = -1
    valid_starts: int = 0
    repeated_starts: int = 0
    freq: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "entry": self.entry,
            "name": self.name,
            "requested": self.requested,
            "sampled": self.sampled,
            "skipped_nonfinite": self.skipped_nonfinite,
            "error": self.error,
            "head": self.head,
            "valid_starts": self.valid_starts,
            "repeated_starts": self.repeated_starts,
            "freq": self.freq,
        }


def largest_remainder(total: int, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` (Hamilton / largest remainder).

    Ties in the remainders go to the lower index, so the result is deterministic.

    Args:
        total: Non-negative integer to split.
        weights: Non-negative finite weights with a positive sum.

    Returns:
        ``(len(weights),)`` int64 summing to ``total``; a zero weight always gets 0.

    Raises:
        ValueError: On a negative ``total`` or invalid weights.
    """
    w = np.asarray(weights, dtype=np.float64)
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if w.size == 0 or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    exact = total * (w / w.sum())
    out = np.floor(exact).astype(np.int64)
    left = int(total - out.sum())
    if left > 0:
        remainder = exact - out
        remainder[w == 0] = -1.0  # never hand a leftover to a zero weight
        # stable sort on -remainder: equal remainders keep index order
        order = np.argsort(-remainder, kind="stable")
        out[order[:left]] += 1
    return out


# --------------------------------------------------------------------------------------------------
# worker side (top-level, picklable)


@dataclass(frozen=True, slots=True)
class _Task:
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
class _PartResult:
    position: int
    actions: np.ndarray
    episode_index: np.ndarray
    start_frame: np.ndarray
    skipped_nonfinite: int
    valid_starts: int
    repeated_starts: int
    error: str | None
    peak_rss_mb: float = 0.0  # of the worker process that produced it (0 when sampled in-process)


@dataclass(frozen=True, slots=True)
class _Frames:
    """All frames of a dataset's selected episodes, episodes contiguous and in index order."""

    ts: np.ndarray  # (N,) float64
    actions: np.ndarray  # (N, d) float32
    offsets: np.ndarray  # (E + 1,) int64 row offsets of the episodes
    episodes: np.ndarray  # (E,) int64 LeRobot episode indices
    episode_of_row: np.ndarray  # (N,) position of each row's episode
    t_first: np.ndarray  # (E,) first / last timestamp per episode
    t_last: np.ndarray
    shift: np.ndarray  # (E,) moves episode e onto a time range disjoint from the others
    shifted_ts: np.ndarray  # (N,) ts + shift: increasing over the whole dataset
    finite: np.ndarray  # (N,) bool: every action value of the frame is finite
    grid_fps: float | None  # fps when every timestamp is frame_index / fps (float32 noise), else None
    all_finite: bool  # no NaN/Inf anywhere (the common case: skip per-chunk checks)


class _DataError(Exception):
    """A dataset's frames cannot be sampled; the message names the file/episode and the fix."""


# One dataset per process, within one sample() run: consecutive parts of a large entry reuse its frames.
_FRAMES_CACHE: dict[tuple[Any, ...], _Frames] = {}


def _read_frames(meta: DatasetMeta, name: str) -> _Frames:
    """Read timestamp + action of the selected episodes, one parquet read per data file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fasttok_plugin.lerobot import DatasetError, action_array

    key = (str(meta.root), meta.action_key, tuple(e.index for e in meta.episodes))
    cached = _FRAMES_CACHE.get(key)
    if cached is not None:
        return cached

    selected = sorted(meta.episodes, key=lambda e: int(e.index))
    wanted = np.array([int(e.index) for e in selected], dtype=np.int64)
    expected = np.array([int(e.length) for e in selected], dtype=np.int64)
    file_of = {int(e.index): e.data_file for e in selected}
    columns = [_EPISODE, _TIMESTAMP, meta.action_key]
    dim = int(meta.action_dim)
    selection = bool(getattr(meta, "selection_active", True))
    ep_parts: list[np.ndarray] = []
    ts_parts: list[np.ndarray] = []
    act_parts: list[np.ndarray] = []
    for path in dict.fromkeys(file_of.values()):  # each data file once, in episode order
        try:
            # ParquetFile on a memory map skips pq.read_table's dataset discovery and filesystem
            # resolution (~4x less overhead per file); threads and pre-buffering only pay off for files
            # far larger than an episode.
            source = pa.memory_map(str(path))
            table = pq.ParquetFile(source, pre_buffer=False).read(columns=columns, use_threads=False)
        except FileNotFoundError as exc:
            raise _DataError(
                f"{name}: data file {path} is missing; re-download the dataset or exclude its episodes"
            ) from exc
        except Exception as exc:  # pyarrow raises several types for unreadable / column-less files
            raise _DataError(
                f"{name}: cannot read columns {columns} from {path}: {exc}; check the file and the action_key"
            ) from exc
        episode_col = table.column(_EPISODE).to_numpy().astype(np.int64, copy=False)
        ts_col = table.column(_TIMESTAMP).to_numpy().astype(np.float64)
        try:
            act_col = action_array(table.column(meta.action_key), dim, path=path, dataset=name)
        except DatasetError as exc:
            raise _DataError(str(exc)) from exc
        if selection:  # a v3.0 file may hold episodes the mixture entry did not select
            keep = np.isin(episode_col, wanted)
            if not keep.all():
                episode_col, ts_col, act_col = episode_col[keep], ts_col[keep], act_col[keep]
        ep_parts.append(episode_col)
        ts_parts.append(ts_col)
        act_parts.append(act_col)

    ep_all = np.concatenate(ep_parts) if ep_parts else np.zeros(0, np.int64)
    ts = np.concatenate(ts_parts) if ts_parts else np.zeros(0)
    actions = np.concatenate(act_parts) if act_parts else np.zeros((0, dim), np.float32)
    if ep_all.size > 1 and (np.diff(ep_all) < 0).any():
        # Stable: each episode's rows keep their file (frame) order.
        order = np.argsort(ep_all, kind="stable")
        ep_all, ts, actions = ep_all[order], ts[order], actions[order]
    episodes, counts = np.unique(ep_all, return_counts=True)
    if not np.array_equal(episodes, wanted) and np.isin(episodes, wanted, invert=True).any():
        # Rows of episodes the metadata does not list: never sample them.
        keep = np.isin(ep_all, wanted)
        ep_all, ts, actions = ep_all[keep], ts[keep], actions[keep]
        episodes, counts = np.unique(ep_all, return_counts=True)
    found = dict(zip(episodes.tolist(), counts.tolist(), strict=True))
    for ep, length in zip(wanted.tolist(), expected.tolist(), strict=True):
        if found.get(ep, 0) != length:
            raise _DataError(
                f"{name}: episode {ep} has {found.get(ep, 0)} frames in {file_of[ep]} but the metadata says "
                f"{length}; the dataset is inconsistent (re-download it or exclude episode {ep} with "
                f"excluded_episodes)"
            )
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    # Interpolation needs strictly increasing time inside each episode.
    if ts.size > 1:
        steps = np.diff(ts)
        inner = np.ones(ts.size - 1, dtype=bool)
        inner[offsets[1:-1] - 1] = False  # a step across an episode boundary is not a step
        bad = np.flatnonzero(inner & ~(steps > 0))
        if bad.size:
            row = int(bad[0])
            ep = int(episodes[np.searchsorted(offsets, row, side="right") - 1])
            raise _DataError(
                f"{name}: timestamps of episode {ep} are not strictly increasing (frame "
                f"{row - int(offsets[np.searchsorted(offsets, row, side='right') - 1])}); fix the "
                f"dataset's timestamp column"
            )
    if not np.isfinite(ts).all():
        raise _DataError(f"{name}: the timestamp column holds NaN/Inf; fix the dataset")
    n_episodes = offsets.size - 1
    episode_of_row = np.repeat(np.arange(n_episodes), np.diff(offsets))
    t_first = ts[offsets[:-1]] if n_episodes else np.zeros(0)
    t_last = ts[offsets[1:] - 1] if n_episodes else np.zeros(0)
    base = np.concatenate([[0.0], np.cumsum(t_last - t_first + 1.0)[:-1]])
    shift = base - t_first
    finite = np.isfinite(actions).all(axis=1)
    frames = _Frames(
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
        grid_fps=_grid_fps(ts, offsets, episode_of_row, float(meta.fps)),
    )
    _FRAMES_CACHE.clear()
    _FRAMES_CACHE[key] = frames
    return frames


def _grid_fps(ts: np.ndarray, offsets: np.ndarray, episode_of_row: np.ndarray, fps: float) -> float | None:
    """``fps`` when each episode's timestamps are ``t_first + i / fps`` within a thousandth of a frame."""
    if ts.size == 0 or not (fps > 0):
        return None
    frame = np.arange(ts.size) - offsets[:-1][episode_of_row]
    ideal = ts[offsets[:-1]][episode_of_row] + frame / fps
    # float32 timestamps carry ~6e-8 relative error: allow it on top of the thousandth of a frame.
    tol = 1e-3 / fps + 4 * np.finfo(np.float32).eps * np.abs(ts).max()
    return fps if bool((np.abs(ts - ideal) <= tol).all()) else None


def _draw_positions(rng: np.random.Generator, valid: int, budget: int) -> np.ndarray:
    """``budget`` draws over ``range(valid)``: without replacement, then whole rounds when exceeded."""
    rounds, rest = divmod(budget, valid)
    parts = [rng.permutation(valid) for _ in range(rounds)]
    if rest:
        parts.append(rng.choice(valid, size=rest, replace=False))
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def _sample_part(task: _Task) -> _PartResult:
    """Sample ``[part_start, part_stop)`` of an entry's budget (runs in a worker process)."""
    try:
        frames = _read_frames(task.meta, task.name)
    except _DataError as exc:
        return _PartResult(task.position, *_empty(task), 0, 0, 0, str(exc))

    ts, offsets = frames.ts, frames.offsets
    span = (task.chunk_size - 1) / task.freq
    n_episodes = offsets.size - 1
    t_first, t_last = frames.t_first, frames.t_last
    # Tolerance: a thousandth of a step plus float32 timestamp precision (~1e-7 relative).
    tol = 1e-3 / task.freq + 1e-6 * np.abs(t_last)
    valid_rows = np.flatnonzero(ts + span <= (t_last + tol)[frames.episode_of_row])
    valid = int(valid_rows.size)
    if valid == 0:
        longest = float((t_last - t_first).max()) if n_episodes else 0.0
        return _PartResult(
            task.position,
            *_empty(task),
            0,
            0,
            0,
            f"{task.name}: no episode is long enough for a chunk of {task.chunk_size} steps at "
            f"{task.freq:g} Hz ({span:.3f} s; longest selected episode lasts {longest:.3f} s); lower "
            f"chunk_size, raise action_freq or remove the entry",
        )

    rng = np.random.default_rng(np.random.SeedSequence([task.seed, task.entry]))
    positions = _draw_positions(rng, valid, task.budget)[task.part_start : task.part_stop]
    repeated = max(0, task.budget - valid) if task.part_start == 0 else 0
    rows = valid_rows[positions]
    episode = frames.episode_of_row[rows]

    lo_row = offsets[:-1][episode][:, None]
    hi_row = offsets[1:][episode][:, None] - 1
    on_grid = frames.grid_fps is not None
    if on_grid:
        # Uniform timestamps (frame_index / fps up to float32 noise): step k sits at frame
        # start + k * fps / freq, so the frame offsets and weights are one (T,) vector shared by every
        # chunk; no search and no (B, T) float math (an integer fps ratio gives weights of exactly 0).
        offset = np.arange(task.chunk_size) * (frames.grid_fps / task.freq)
        whole = np.floor(offset)
        frac = offset - whole
        # Within _SNAP of a frame, a step takes that frame's value (float rounding of the ratio).
        whole += frac > 1.0 - _SNAP
        frac = np.where((frac < _SNAP) | (frac > 1.0 - _SNAP), 0.0, frac).astype(np.float32)
        left = np.minimum(rows[:, None] + whole.astype(np.int64)[None, :], hi_row)
        uses_right = np.broadcast_to(frac > 0.0, left.shape)
        right = np.minimum(left + uses_right, hi_row)
        w = np.broadcast_to(frac, left.shape)
    else:
        steps = np.arange(task.chunk_size, dtype=np.float64) / task.freq
        times = ts[rows][:, None] + steps[None, :]  # (B, T)
        np.minimum(times, t_last[episode][:, None], out=times)  # clamp inside the episode
        # One searchsorted over all chunk times: episodes are shifted onto disjoint increasing ranges.
        shift = frames.shift[episode][:, None]
        left = np.searchsorted(frames.shifted_ts, times + shift, side="right") - 1
        np.clip(left, lo_row, np.maximum(lo_row, hi_row - 1), out=left)
        right = np.minimum(left + 1, hi_row)
        gap = np.take(ts, right) - np.take(ts, left)
        # Weights from the unshifted timestamps, so frame times get w == 0 exactly.
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(gap > 0, (times - np.take(ts, left)) / gap, 0.0)
    if not on_grid:
        # float32 timestamps put on-grid times a hair off their frame: within _SNAP of a frame interval
        # a time takes that frame's value (w == 1 becomes the next frame with w == 0: exact).
        at_right = w > 1.0 - _SNAP
        left = np.where(at_right, right, left)
        w = np.where(at_right | (w < _SNAP), 0.0, w).astype(np.float32)
        # A frame weighted 0 must not contribute (0 * NaN is NaN): unused right frames = the left one.
        uses_right = w > 0.0
        right = np.where(uses_right, right, left)
    # A chunk is finite iff every frame it uses is finite: decided on (B, T) flags, not (B, T, D) values.
    if frames.all_finite:
        finite = np.ones(rows.size, bool)
    else:
        finite = np.take(frames.finite, left).all(axis=1) & np.take(frames.finite, right).all(axis=1)
    keep = np.flatnonzero(finite)
    if keep.size < finite.size:
        left, right, w, uses_right = left[keep], right[keep], w[keep], uses_right[keep]

    if uses_right.any():
        # Off-grid times (resampling): interpolate at the native width (contiguous, ~8x cheaper than on
        # padded rows); the batcher pads.
        values = np.take(frames.actions, left, axis=0)  # (B, T, d); np.take beats fancy indexing ~4x
        step = np.take(frames.actions, right, axis=0)
        np.subtract(step, values, out=step)
        step *= w[:, :, None]
        values += step
        out = values
    else:
        out = np.take(frames.actions, left, axis=0)  # (B, T, d); np.take beats fancy indexing ~4x
    start_frame = rows - offsets[:-1][episode]
    return _PartResult(
        position=task.position,
        actions=out,
        episode_index=frames.episodes[episode][keep].astype(np.int64),
        start_frame=start_frame[keep].astype(np.int64),
        skipped_nonfinite=int(finite.size - keep.size),
        valid_starts=valid,
        repeated_starts=repeated,
        error=None,
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (``ru_maxrss``; 0.0 where unsupported)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    factor = 1.0 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * factor / 2**20


def _sample_part_in_worker(task: _Task) -> _PartResult:
    """`_sample_part` plus the worker's peak memory, measured in the worker itself.

    Under forkserver the workers are not children of the sampling process, so ``RUSAGE_CHILDREN`` there
    cannot see them.
    """
    return replace(_sample_part(task), peak_rss_mb=peak_rss_mb())


def _empty(task: _Task) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.zeros((0, task.chunk_size, int(task.meta.action_dim)), np.float32),
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
    )


def _pool_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where the platform has it (Linux, macOS), else ``spawn`` (Windows); never ``fork``.

    The sampler runs inside processes that have imported torch and run Lightning (OpenMP pools,
    DataLoader pin-memory and logger threads): a ``fork`` there copies locks held by other threads and
    can deadlock the child (Python 3.12 warns about it, 3.14 stops defaulting to it), and macOS/Windows
    do not default to it. Workers instead fork from a clean server process (which imports the main
    module once) and unpickle only this module's top-level `_sample_part_in_worker`, so our own entry
    points (the ``fasttok`` script, pytest) need nothing special.
    """
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _run_tasks(tasks: Iterable[_Task], workers: int) -> Iterator[_PartResult]:
    """Run tasks in order; with workers, keep at most ``2 * workers`` parts in flight (bounded memory)."""
    if workers > 0 and multiprocessing.current_process().daemon:
        # A daemonic process (e.g. a torch DataLoader worker) may not start children; the result does not
        # depend on the worker count, so sample in this process instead of failing.
        logger.debug("sampling in-process: a daemonic process cannot start %d sampler worker(s)", workers)
        workers = 0
    if workers <= 0:
        for task in tasks:
            yield _sample_part(task)
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context())
    pending: deque[Future[_PartResult]] = deque()
    iterator = iter(tasks)
    try:
        for task in iterator:
            pending.append(pool.submit(_sample_part_in_worker, task))
            if len(pending) >= 2 * workers:
                break
        while pending:
            try:
                result = pending.popleft().result()
            except BrokenProcessPool as exc:
                raise SamplingError(
                    f"a sampler worker process died ({exc}): it was killed (out of memory?) or could not "
                    f'start (a script that samples with workers needs an `if __name__ == "__main__":` '
                    f"guard); lower workers, or use workers=0"
                ) from exc
            task = next(iterator, None)
            if task is not None:
                pending.append(pool.submit(_sample_part_in_worker, task))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------------------------------
# main side


@dataclass(slots=True)
class _EntryTally:
    requested: int = 0
    sampled: int = 0
    skipped: int = 0
    valid: int = 0
    repeated: int = 0
    errors: list[str] = field(default_factory=list)


class _Batcher:
    """Re-cuts native-width part results into fixed-size, zero-padded batches (one copy per chunk)."""

    def __init__(self, batch_size: int, chunk_size: int, width: int) -> None:
        self.batch_size, self.chunk_size, self.width = batch_size, chunk_size, width
        self.filled = 0
        self._new()

    def _new(self) -> None:
        n = self.batch_size
        self.actions = np.zeros((n, self.chunk_size, self.width), np.float32)
        self.columns = [np.empty(n, np.int64) for _ in range(4)]  # dataset, head, episode, start

    def _emit(self, n: int) -> ChunkBatch:
        dataset, head, episode, start = (c[:n] for c in self.columns)
        batch = ChunkBatch(self.actions[:n], dataset, head, episode, start)
        self._new()
        self.filled = 0
        return batch

    def add(self, result: _PartResult, dataset: int, head: int) -> Iterator[ChunkBatch]:
        n, offset = int(result.actions.shape[0]), 0
        while n - offset > 0:
            take = min(self.batch_size - self.filled, n - offset)
            to = slice(self.filled, self.filled + take)
            # Results come at the native width (less to pickle from workers); pad here.
            self.actions[to, :, : result.actions.shape[2]] = result.actions[offset : offset + take]
            self.columns[0][to] = dataset
            self.columns[1][to] = head
            self.columns[2][to] = result.episode_index[offset : offset + take]
            self.columns[3][to] = result.start_frame[offset : offset + take]
            self.filled += take
            offset += take
            if self.filled == self.batch_size:
                yield self._emit(self.batch_size)

    def finish(self) -> Iterator[ChunkBatch]:
        if self.filled:
            yield self._emit(self.filled)


class ChunkSampler:
    """Draw raw action chunks from a resolved mixture, weighted, resampled and padded.

    Args:
        resolved: The resolved mixture (entries with their metadata).
        heads: Norm heads of that mixture (head index per entry; skipped entries get no budget).
        chunk_size: Steps per chunk ``T``.
        action_freq: Resampling rate in Hz; ``None`` keeps each dataset's native fps; default: the
            mixture's ``action_freq``.
        seed: Default seed of `sample`.
        workers: Worker processes (0 = sample in this process). They start with forkserver/spawn, so a
            script of your own that sets it needs an ``if __name__ == "__main__":`` guard.

    Raises:
        SamplingError: On a non-positive chunk size or rate, a negative seed or worker count, or when
            ``heads`` does not belong to ``resolved`` (different number of entries).

    Example::

        sampler = ChunkSampler(resolved, heads, chunk_size=50, workers=2)
        for batch in sampler.sample(10_000, seed=0):
            ...  # batch.actions (B, 50, D) raw, batch.head_index (B,)
        print(sampler.report)
    """

    def __init__(
        self,
        resolved: ResolvedMixture,
        heads: NormHeads,
        *,
        chunk_size: int,
        action_freq: float | _Default | None = FROM_CONFIG,
        seed: int = 0,
        workers: int = 0,
    ) -> None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise SamplingError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        if action_freq is FROM_CONFIG:
            action_freq = resolved.config.action_freq
        if action_freq is not None and (
            isinstance(action_freq, bool) or not math.isfinite(float(action_freq)) or float(action_freq) <= 0
        ):
            raise SamplingError(
                f"action_freq must be a positive number of Hz or null (native fps), got {action_freq!r}; "
                f'fix "action_freq" in the mixture'
            )
        _check_seed(seed)
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
            raise SamplingError(f"workers must be an integer >= 0, got {workers!r}")
        if len(heads.dataset_to_head) != len(resolved.entries):
            raise SamplingError(
                f"the norm heads cover {len(heads.dataset_to_head)} entries but the mixture has "
                f"{len(resolved.entries)}; build the heads from this resolved mixture"
            )
        self.resolved = resolved
        self.heads = heads
        self.chunk_size = int(chunk_size)
        self.action_freq: float | None = None if action_freq is None else float(action_freq)
        self.seed = int(seed)
        self.workers = int(workers)
        self._report: tuple[DatasetSampleReport, ...] = ()
        self._peak_worker_mb = 0.0

    def with_workers(self, workers: int) -> ChunkSampler:
        """A copy drawing the same chunks with another number of worker processes.

        Args:
            workers: Worker processes (0 = sample in this process).

        Raises:
            SamplingError: When ``workers`` is not an integer >= 0.
        """
        return ChunkSampler(
            self.resolved,
            self.heads,
            chunk_size=self.chunk_size,
            action_freq=self.action_freq,
            seed=self.seed,
            workers=workers,
        )

    @property
    def report(self) -> tuple[DatasetSampleReport, ...]:
        """Per-entry report of the last completed `sample` run (empty before the first)."""
        return self._report

    @property
    def peak_worker_memory_mb(self) -> float:
        """Largest peak RSS (MiB) of a worker process in the last completed `sample` run (0.0 without)."""
        return self._peak_worker_mb

    @property
    def max_action_dim(self) -> int:
        """Width ``D`` chunks are padded to (the norm heads' ``max_action_dim``)."""
        return int(self.heads.max_action_dim)

    def entry_freq(self, position: int) -> float | None:
        """Resampling rate of an entry: ``action_freq``, else its native fps (None when unreadable)."""
        if self.action_freq is not None:
            return self.action_freq
        meta = self.resolved.entries[position].meta
        return None if meta is None else float(meta.fps)

    def _weights(self) -> np.ndarray:
        """Validated per-entry weights; heads-skipped entries get weight 0."""
        config = self.resolved.config
        entries = self.resolved.entries
        weights = tuple(config.weights)
        if len(weights) != len(entries):
            raise SamplingError(
                f"{config.weights_pointer}: {len(weights)} weights for {len(entries)} datasets; give one "
                f"weight per dataset"
            )
        out = np.zeros(len(entries), dtype=np.float64)
        problems: list[str] = []
        for position, (entry, weight) in enumerate(zip(entries, weights, strict=True)):
            pointer = (
                f"{config.weights_pointer}/{position}"
                if config.weights_pointer.endswith("/weights")
                else f"{entry.entry.pointer}/weight"
            )
            value: float | None
            try:
                value = None if isinstance(weight, bool) else float(weight)
            except (TypeError, ValueError):
                value = None
            if value is None or not math.isfinite(value) or value < 0:
                problems.append(
                    f"entry {entry.index} ({entry.name}): weight {weight!r} at {pointer} is invalid; use a "
                    f"finite number >= 0"
                )
                continue
            out[position] = value if self.heads.dataset_to_head[position] >= 0 else 0.0
        if problems:
            raise SamplingError("invalid mixture weights:\n" + "\n".join(f"  - {p}" for p in problems))
        if out.sum() <= 0:
            raise SamplingError(
                f"no dataset can be sampled: every usable entry has weight 0 ({config.weights_pointer}); "
                f"give at least one usable entry a positive weight"
            )
        return out

    def budgets(self, total_chunks: int) -> np.ndarray:
        """Per-entry chunk budgets for ``total_chunks``, proportional to the weights.

        Args:
            total_chunks: Chunks to draw over the whole mixture.

        Returns:
            ``(n_entries,)`` int64 summing to ``total_chunks``; 0 for entries the heads skipped.

        Raises:
            SamplingError: If a weight is negative/NaN/Inf, the weights do not match the entries, all
                usable weights are 0, or ``total_chunks`` is negative.
        """
        if isinstance(total_chunks, bool) or not isinstance(total_chunks, (int, np.integer)):
            raise SamplingError(f"total_chunks must be an integer, got {total_chunks!r}")
        if total_chunks < 0:
            raise SamplingError(f"total_chunks must be >= 0, got {total_chunks}")
        return largest_remainder(int(total_chunks), self._weights())

    def settings(self) -> dict[str, Any]:
        """JSON-able description of everything that determines the sampled chunks (not ``workers``)."""
        entries = []
        for position, entry in enumerate(self.resolved.entries):
            weight = (
                self.resolved.config.weights[position]
                if position < len(self.resolved.config.weights)
                else None
            )
            entries.append(
                {
                    "name": entry.name,
                    "weight": weight
                    if isinstance(weight, (int, float)) and math.isfinite(weight)
                    else str(weight),
                    "freq": self.entry_freq(position),
                    "episodes": None if entry.meta is None else [int(e.index) for e in entry.meta.episodes],
                }
            )
        return {
            "version": _SAMPLER_VERSION,
            "chunk_size": self.chunk_size,
            "action_freq": self.action_freq,
            "max_action_dim": self.max_action_dim,
            "seed": self.seed,
            "interpolation": "linear",
            "entries": entries,
        }

    def _tasks(self, budgets: np.ndarray, seed: int) -> Iterator[_Task]:
        for position, entry in enumerate(self.resolved.entries):
            budget = int(budgets[position])
            head = int(self.heads.dataset_to_head[position])
            if budget == 0 or head < 0 or entry.meta is None:
                continue
            freq = self.entry_freq(position)
            assert freq is not None  # meta is not None
            for start in range(0, budget, PART_CHUNKS):
                yield _Task(
                    position=position,
                    entry=int(entry.index),
                    name=entry.name,
                    meta=entry.meta,
                    head=head,
                    budget=budget,
                    part_start=start,
                    part_stop=min(budget, start + PART_CHUNKS),
                    chunk_size=self.chunk_size,
                    freq=float(freq),
                    max_action_dim=self.max_action_dim,
                    seed=seed,
                )

    def sample(
        self, total_chunks: int, *, seed: int | None = None, batch_size: int = 4096
    ) -> Iterator[ChunkBatch]:
        """Stream ``total_chunks`` chunks (minus skipped ones) in batches, in mixture-entry order.

        Args:
            total_chunks: Chunks to draw over the mixture (split by `budgets`).
            seed: Seed of this run (default: the sampler's ``seed``).
            batch_size: Chunks per yielded batch (the last one may be smaller).

        Yields:
            `ChunkBatch` objects; `report` is set once the iterator is exhausted.

        Raises:
            SamplingError: On invalid weights or arguments (before anything is read).
        """
        seed = self.seed if seed is None else seed
        _check_seed(seed)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise SamplingError(f"batch_size must be a positive integer, got {batch_size!r}")
        budgets = self.budgets(total_chunks)
        return self._stream(budgets, int(seed), int(batch_size))

    def _stream(self, budgets: np.ndarray, seed: int, batch_size: int) -> Iterator[ChunkBatch]:
        _FRAMES_CACHE.clear()  # never serve frames read by an earlier run (the files may have changed)
        tallies = [_EntryTally(requested=int(b)) for b in budgets]
        batcher = _Batcher(batch_size, self.chunk_size, self.max_action_dim)
        peak_worker_mb = 0.0
        for result in _run_tasks(self._tasks(budgets, seed), self.workers):
            peak_worker_mb = max(peak_worker_mb, result.peak_rss_mb)
            tally = tallies[result.position]
            tally.skipped += result.skipped_nonfinite
            tally.valid = max(tally.valid, result.valid_starts)
            tally.repeated += result.repeated_starts
            if result.error is not None:
                if result.error not in tally.errors:
                    tally.errors.append(result.error)
                    logger.warning("sampling %s", result.error)
                continue
            tally.sampled += int(result.actions.shape[0])
            entry = self.resolved.entries[result.position]
            yield from batcher.add(result, int(entry.index), int(self.heads.dataset_to_head[result.position]))
        yield from batcher.finish()
        self._report = self._build_report(tallies)
        self._peak_worker_mb = peak_worker_mb
        skipped = sum(r.skipped_nonfinite for r in self._report)
        if skipped:
            logger.warning("skipped %d chunk(s) holding NaN/Inf (see the per-dataset report)", skipped)

    def _build_report(self, tallies: Sequence[_EntryTally]) -> tuple[DatasetSampleReport, ...]:
        skip_reasons = self._skip_reasons()
        out = []
        for position, (entry, tally) in enumerate(zip(self.resolved.entries, tallies, strict=True)):
            head = int(self.heads.dataset_to_head[position])
            error: str | None = "; ".join(tally.errors) if tally.errors else None
            if head < 0:
                error = f"skipped by the norm heads: {skip_reasons.get(int(entry.index), 'no head')}"
            out.append(
                DatasetSampleReport(
                    entry=int(entry.index),
                    name=entry.name,
                    requested=tally.requested,
                    sampled=tally.sampled,
                    skipped_nonfinite=tally.skipped,
                    error=error,
                    head=head,
                    valid_starts=tally.valid,
                    repeated_starts=tally.repeated,
                    freq=self.entry_freq(position),
                )
            )
        return tuple(out)

    def _skip_reasons(self) -> dict[int, str]:
        reasons: dict[int, str] = {}
        for record in self.heads.skipped_entries:
            reasons[int(record.entry)] = record.reason
        for record in self.heads.dim_overflows:
            reasons[int(record.entry)] = record.message()
        return reasons


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SamplingError(f"seed must be an integer >= 0, got {seed!r}")
