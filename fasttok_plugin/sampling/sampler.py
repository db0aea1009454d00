"""`ChunkSampler`: weighted, resampled, padded action chunks from a resolved mixture.

The sampler owns the per-run orchestration: budgets per entry (`largest_remainder` over the weights),
tasks of at most ``PART_CHUNKS`` chunks (`fasttok_plugin.sampling._pool`), results assembled in entry
order into fixed-size batches, and the per-entry report.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fasttok_plugin._validate import MAX_SEED, positive_int
from fasttok_plugin.errors import SamplingError
from fasttok_plugin.lerobot import clear_frames_cache
from fasttok_plugin.sampling._part import Task
from fasttok_plugin.sampling._pool import WorkerPool, part_ranges, run_tasks
from fasttok_plugin.sampling.batch import Batcher, ChunkBatch
from fasttok_plugin.sampling.budgets import (
    check_total_chunks,
    largest_remainder,
    sampling_weights,
    starved_entries,
)
from fasttok_plugin.sampling.report import DatasetSampleReport, EntryTally

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.resolve import ResolvedMixture
    from fasttok_plugin.transforms import ActionTransform

__all__ = ["FROM_CONFIG", "ChunkSampler"]

logger = logging.getLogger(__name__)

#: Version tag of the sampling algorithm; part of `ChunkSampler.settings` (and so of fit fingerprints).
_SAMPLER_VERSION = "fasttok-chunk-sampler/2"  # /2: one chunk-start rule shared with the preflight


class _Default(enum.Enum):
    FROM_CONFIG = "from_config"


#: Sentinel: take ``action_freq`` from the mixture config.
FROM_CONFIG = _Default.FROM_CONFIG


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
        transforms: The `ActionTransform` of every entry (one for all, or one per entry; None: raw
            actions). Chunks carry the transformed actions (selected columns, relative dims minus the state
            at the chunk's first frame), so the policy's Normalize sees what the fit saw.

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
        transforms: ActionTransform | Sequence[ActionTransform | None] | None = None,
    ) -> None:
        chunk_size = positive_int(chunk_size, "chunk_size", SamplingError)
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
        self.transforms = _per_entry(transforms, len(resolved.entries))
        self._report: tuple[DatasetSampleReport, ...] = ()
        self._peak_worker_mb = 0.0
        self._pool: WorkerPool | None = None

    def keep_pool(self) -> WorkerPool | None:
        """Keep one worker pool across `sample` runs until `close_pool` (``None`` with ``workers=0``).

        Without it every run starts and stops its own pool. The pool starts on the first run that uses it.
        """
        if self._pool is None and self.workers > 0:
            self._pool = WorkerPool(self.workers)
        return self._pool

    @property
    def pool(self) -> WorkerPool | None:
        """The pool kept by `keep_pool` (``None`` when runs use their own)."""
        return self._pool

    def close_pool(self) -> None:
        """Stop the kept pool's processes (idempotent); later runs start their own again."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

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
            transforms=self.transforms,
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
        return sampling_weights(self.resolved, self.heads)

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
        total = check_total_chunks(total_chunks)
        return largest_remainder(total, self._weights())

    def settings(self) -> dict[str, Any]:
        """JSON-able description of everything that determines the sampled chunks (not ``workers``).

        Each entry's ``data`` is `DatasetMeta.data_identity` (its files are stat'ed on every call).
        """
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
                    # root, episode lengths, data file sizes / mtimes: a changed corpus is another fit
                    "data": None if entry.meta is None else entry.meta.data_identity(),
                }
            )
            transform = self.transforms[position]
            if transform is not None and not transform.is_identity:
                # Only when set: default samplers keep their settings (and the fit fingerprints) unchanged.
                entries[-1]["transform"] = transform.key
        return {
            "version": _SAMPLER_VERSION,
            "chunk_size": self.chunk_size,
            "action_freq": self.action_freq,
            "max_action_dim": self.max_action_dim,
            "seed": self.seed,
            "interpolation": "linear",
            "entries": entries,
        }

    def _tasks(self, budgets: np.ndarray, seed: int) -> Iterator[Task]:
        for position, entry in enumerate(self.resolved.entries):
            budget = int(budgets[position])
            head = int(self.heads.dataset_to_head[position])
            if budget == 0 or head < 0 or entry.meta is None:
                continue
            freq = self.entry_freq(position)
            assert freq is not None  # meta is not None
            for start, stop in part_ranges(budget):
                yield Task(
                    position=position,
                    entry=int(entry.index),
                    name=entry.name,
                    meta=entry.meta,
                    head=head,
                    budget=budget,
                    part_start=start,
                    part_stop=stop,
                    chunk_size=self.chunk_size,
                    freq=float(freq),
                    max_action_dim=self.max_action_dim,
                    seed=seed,
                    transform=self.transforms[position],
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
        batch_size = positive_int(batch_size, "batch_size", SamplingError)
        budgets = self.budgets(total_chunks)
        return self._stream(budgets, int(seed), batch_size)

    def _stream(self, budgets: np.ndarray, seed: int, batch_size: int) -> Iterator[ChunkBatch]:
        clear_frames_cache()  # never serve frames read by an earlier run (the files may have changed)
        tallies = [EntryTally(requested=int(b)) for b in budgets]
        weights = self._weights()
        for index in starved_entries(budgets, weights):
            entry = self.resolved.entries[index]
            logger.warning(
                "entry %d (%s): weight %g is positive but its budget rounded to 0 chunks",
                entry.index,
                entry.name,
                weights[index],
            )
        batcher = Batcher(batch_size, self.chunk_size, self.max_action_dim)
        peak_worker_mb = 0.0
        for result in run_tasks(self._tasks(budgets, seed), self.workers, self._pool):
            peak_worker_mb = max(peak_worker_mb, result.peak_rss_mb)
            tally = tallies[result.position]
            tally.skipped += result.skipped_nonfinite
            tally.valid = max(tally.valid, result.valid_starts)
            tally.repeated += result.repeated_starts
            tally.off_grid = tally.off_grid or result.off_grid
            tally.observed_fps = tally.observed_fps or result.observed_fps
            if result.error is not None:
                if result.error not in tally.errors:
                    tally.errors.append(result.error)
                    logger.warning("sampling %s", result.error)
                continue
            tally.sampled += int(result.actions.shape[0])
            entry = self.resolved.entries[result.position]
            yield from batcher.add(result, int(entry.index), int(self.heads.dataset_to_head[result.position]))
        yield from batcher.finish()
        self._report = self._build_report(tallies, budgets, weights)
        self._peak_worker_mb = peak_worker_mb
        skipped = sum(r.skipped_nonfinite for r in self._report)
        if skipped:
            logger.warning("skipped %d chunk(s) holding NaN/Inf (see the per-dataset report)", skipped)

    def _build_report(
        self, tallies: Sequence[EntryTally], budgets: np.ndarray, weights: np.ndarray
    ) -> tuple[DatasetSampleReport, ...]:
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
                    weight=float(weights[position]),
                    starved=bool(weights[position] > 0 and budgets[position] == 0),
                    fps=None if entry.meta is None else float(entry.meta.fps),
                    observed_fps=tally.observed_fps,
                    off_grid=tally.off_grid,
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


def _per_entry(
    transforms: ActionTransform | Sequence[ActionTransform | None] | None, entries: int
) -> tuple[ActionTransform | None, ...]:
    """One transform per entry (identity transforms become None: raw actions)."""
    from fasttok_plugin.transforms import ActionTransform

    if transforms is None or isinstance(transforms, ActionTransform):
        out: tuple[ActionTransform | None, ...] = (transforms,) * entries
    else:
        out = tuple(transforms)
        if len(out) != entries or not all(t is None or isinstance(t, ActionTransform) for t in out):
            raise SamplingError(
                f"transforms must be one ActionTransform or one per entry ({entries}), got {transforms!r}"
            )
    return tuple(None if t is None or t.is_identity else t for t in out)


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SamplingError(f"seed must be an integer >= 0, got {seed!r}")
    if seed > MAX_SEED:
        # Seeds are mixed into 64-bit hashes: a larger one would overflow there.
        raise SamplingError(f"seed must be at most {MAX_SEED}, got {seed!r}")
