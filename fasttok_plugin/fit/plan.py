"""The fit plan: the sampled chunks, split into fit corpus and held-out set, normalized for the fit.

A chunk is held out when its start ``(dataset, episode, start frame)`` hashes (with the seed) below
``heldout_fraction``, so the split is over starts and fit / held-out chunks never share one. Per dataset,
fit-side chunks arrive in random draw order and the first ``fit_d`` form the fit corpus, the rest is
sampled but unused. ``fit_d`` splits ``min(max_fit_chunks, fit-side pool)`` first over heads, then over
the datasets of each head (largest remainder; every sampled head gets at least one chunk), so the subset
is stratified across heads and datasets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fasttok_plugin.fit._progress import PhaseClock
from fasttok_plugin.sampling import ChunkBatch, ChunkSampler, DatasetSampleReport, largest_remainder

if TYPE_CHECKING:  # pragma: no cover - typing only; torch is imported lazily
    from fasttok_plugin.fit.settings import FitSettings
    from fasttok_plugin.normalize import Normalize

__all__ = ["FitBatch", "FitPlan"]


@dataclass(frozen=True, slots=True)
class FitBatch:
    """Chunks of the fit corpus or of the held-out set: raw and normalized with `Normalize`.

    Attributes:
        raw: ``(B, T, D)`` float32 as sampled (zero-padded).
        normalized: ``(B, T, D)`` float32, ``Normalize(raw, head_index)``.
        dataset_index: ``(B,)`` entry index.
        head_index: ``(B,)`` head index.
        episode_index: ``(B,)`` episode of the start frame.
        start_frame: ``(B,)`` start frame within the episode.
    """

    raw: np.ndarray
    normalized: np.ndarray
    dataset_index: np.ndarray
    head_index: np.ndarray
    episode_index: np.ndarray
    start_frame: np.ndarray

    def __len__(self) -> int:
        return int(self.raw.shape[0])


class FitPlan:
    """Sampled chunks split into fit corpus and held-out set, normalized with the torch `Normalize`.

    Both iterators re-run the (deterministic) sampler, so only one batch is in memory at a time.

    Args:
        sampler: The chunk sampler.
        normalize: The `Normalize` module built from the sampler's norm heads.
        settings: Resolved fit settings (``chunk_size`` set).
        clock: Optional phase timer (sampling / normalization time).
    """

    def __init__(
        self,
        sampler: ChunkSampler,
        normalize: Normalize,
        settings: FitSettings,
        *,
        clock: PhaseClock | None = None,
    ) -> None:
        self.sampler = sampler
        self.normalize = normalize
        self.settings = settings
        self._clock = clock or PhaseClock()
        heads = sampler.heads
        self.budgets = sampler.budgets(settings.total_chunks)
        # Expected fit-side pool per entry: the held-out side is a heldout_fraction share of the starts.
        pool = np.floor(self.budgets * (1.0 - settings.heldout_fraction)).astype(np.int64)
        if settings.max_fit_chunks is None or settings.max_fit_chunks >= int(pool.sum()):
            self.fit_quota = self.budgets.copy()  # no cap: every fit-side chunk is fit
        else:
            head_of = np.asarray(heads.dataset_to_head, dtype=np.int64)
            self.fit_quota = _stratified_quota(int(settings.max_fit_chunks), pool, head_of)
        # entry index -> position in the mixture (they coincide for parsed mixtures; do not assume it)
        indices = np.array([int(e.index) for e in sampler.resolved.entries], dtype=np.int64)
        self._position_of = np.full(int(indices.max(initial=0)) + 1, -1, dtype=np.int64)
        self._position_of[indices] = np.arange(indices.size)
        #: Per-entry counts of the last completed pass.
        self.fit_counts = np.zeros(len(self.budgets), np.int64)
        self.heldout_counts = np.zeros(len(self.budgets), np.int64)
        self.sampled_counts = np.zeros(len(self.budgets), np.int64)
        self.sample_report: tuple[DatasetSampleReport, ...] = ()
        #: Largest sampler-worker peak RSS (MiB) over the passes so far (0.0 when sampling in-process).
        self.peak_worker_mb = 0.0

    def _batches(self) -> Iterator[ChunkBatch]:
        iterator = self.sampler.sample(self.settings.total_chunks, seed=self.settings.seed)
        while True:
            with self._clock.phase("sample"):
                batch = next(iterator, None)
            if batch is None:
                self.sample_report = self.sampler.report
                self.peak_worker_mb = max(self.peak_worker_mb, self.sampler.peak_worker_memory_mb)
                return
            yield batch

    def _normalized(self, batch: ChunkBatch, rows: np.ndarray) -> FitBatch:
        import torch

        raw = np.ascontiguousarray(batch.actions[rows])
        head = np.ascontiguousarray(batch.head_index[rows])
        with self._clock.phase("normalize"), torch.no_grad():
            normalized = self.normalize(torch.from_numpy(raw), torch.from_numpy(head)).numpy()
        episode = batch.episode_index if batch.episode_index is not None else np.full(len(batch), -1)
        start = batch.start_frame if batch.start_frame is not None else np.arange(len(batch))
        return FitBatch(
            raw=raw,
            normalized=normalized,
            dataset_index=batch.dataset_index[rows],
            head_index=head,
            episode_index=np.asarray(episode, np.int64)[rows],
            start_frame=np.asarray(start, np.int64)[rows],
        )

    def _split(self) -> Iterator[tuple[ChunkBatch, np.ndarray, np.ndarray]]:
        """Yield each sampled batch with its held-out rows and its fit rows.

        A chunk is held out when its start ``(dataset, episode, start frame)`` hashes (with the seed)
        below ``heldout_fraction``: the split is over *starts*, so a start drawn twice lands on the same
        side and fit / held-out chunks never share a start. Fit-side chunks go to the fit corpus in
        delivery (random draw) order, up to the entry's ``fit_quota``; the rest are sampled but unused.
        """
        n = len(self.budgets)
        seen = np.zeros(n, np.int64)
        fit_taken = np.zeros(n, np.int64)
        self.sampled_counts = seen
        seed = self.settings.seed
        for batch in self._batches():
            positions = self._position_of[batch.dataset_index]
            if batch.episode_index is not None and batch.start_frame is not None:
                key = (batch.dataset_index, batch.episode_index, batch.start_frame)
            else:  # a sampler without chunk identities: split on the draw number instead
                key = (
                    batch.dataset_index,
                    np.zeros(len(batch), np.int64),
                    seen[positions] + np.arange(len(batch)),
                )
            held = _unit_hash(seed, *key) < self.settings.heldout_fraction
            fit_rows: list[np.ndarray] = []
            for position in np.unique(positions):
                candidates = np.flatnonzero((positions == position) & ~held)  # in delivery order
                seen[position] += int((positions == position).sum())
                room = int(self.fit_quota[position] - fit_taken[position])
                if room > 0 and candidates.size:
                    take = candidates[:room]
                    fit_taken[position] += take.size
                    fit_rows.append(take)
            yield (
                batch,
                np.flatnonzero(held),
                np.sort(np.concatenate(fit_rows)) if fit_rows else np.zeros(0, np.int64),
            )

    def fit_batches(self) -> Iterator[FitBatch]:
        """Stream the fit corpus (normalized); sets ``fit_counts`` when exhausted."""
        counts = np.zeros(len(self.budgets), np.int64)
        for batch, _, rows in self._split():
            if rows.size:
                counts += np.bincount(self._rows_positions(batch, rows), minlength=counts.size)
                yield self._normalized(batch, rows)
        self.fit_counts = counts

    def heldout_batches(self) -> Iterator[FitBatch]:
        """Stream the held-out set (normalized); sets ``heldout_counts`` when exhausted."""
        counts = np.zeros(len(self.budgets), np.int64)
        for batch, rows, _ in self._split():
            if rows.size:
                counts += np.bincount(self._rows_positions(batch, rows), minlength=counts.size)
                yield self._normalized(batch, rows)
        self.heldout_counts = counts

    def _rows_positions(self, batch: ChunkBatch, rows: np.ndarray) -> np.ndarray:
        return self._position_of[batch.dataset_index[rows]]


def _unit_hash(seed: int, dataset: np.ndarray, episode: np.ndarray, start: np.ndarray) -> np.ndarray:
    """A deterministic uniform number in [0, 1) per chunk start (splitmix64 of the start and the seed)."""
    with np.errstate(over="ignore"):
        x = np.asarray(dataset, np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        x ^= np.asarray(episode, np.int64).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        x ^= np.asarray(start, np.int64).astype(np.uint64) * np.uint64(0x165667B19E3779F9)
        x ^= np.full(x.shape, seed, np.uint64) * np.uint64(0xD6E8FEB86659FD93)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53)


def _stratified_quota(total: int, pool: np.ndarray, head_of: np.ndarray) -> np.ndarray:
    """Split ``total`` over heads in proportion to their pools, then over each head's entries.

    Every head with a non-empty pool gets at least one chunk when ``total`` allows it, so rare heads
    still shape the vocabulary.
    """
    out = np.zeros(pool.size, np.int64)
    usable = (head_of >= 0) & (pool > 0)
    if total <= 0 or not usable.any():
        return out
    heads = np.unique(head_of[usable])
    head_pool = np.array([pool[usable & (head_of == h)].sum() for h in heads], dtype=np.int64)
    total = min(total, int(head_pool.sum()))
    head_quota = largest_remainder(total, head_pool.astype(np.float64))
    if total >= heads.size:
        for i in np.flatnonzero(head_quota == 0):
            donor = int(np.argmax(head_quota))
            head_quota[donor] -= 1
            head_quota[i] += 1
    for h, quota in zip(heads, head_quota, strict=True):
        members = np.flatnonzero(usable & (head_of == h))
        out[members] = largest_remainder(int(quota), pool[members].astype(np.float64))
    return np.minimum(out, pool)
