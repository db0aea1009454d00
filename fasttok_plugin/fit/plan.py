"""The fit plan: the sampled chunks, split into fit corpus and held-out set, normalized for the fit.

The split is by **episode**: per head, the episodes of its entries are ordered by a hash of
``(seed, entry, episode)`` and the first ones are held out until they carry about ``heldout_fraction`` of
the head's expected chunks (each episode weighs its entry's weight share times its share of the entry's
valid starts). A head with at least two episodes always gets both fit and held-out episodes; a head with
a single episode is fit on it and has no held-out chunks (the report warns). No held-out chunk shares a
frame with a fit chunk, and the split depends only on the mixture, the chunk size / rate and the seed.

Per dataset, fit-side chunks arrive in random draw order and the first ``fit_d`` form the fit corpus, the
rest is sampled but unused. ``fit_d`` splits ``min(max_fit_chunks, fit-side pool)`` first over heads, then
over the datasets of each head (largest remainder; every sampled head gets at least one chunk), so the
subset is stratified across heads and datasets. The held-out chunks evaluated are capped the same way:
at most ``max_heldout_chunks_per_head`` per head, split over its datasets in proportion to their held-out
pools, the first ones of each dataset in draw order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fasttok_plugin.fit._progress import PhaseClock
from fasttok_plugin.sampling import ChunkBatch, ChunkSampler, DatasetSampleReport, largest_remainder
from fasttok_plugin.sampling.starts import valid_start_counts

if TYPE_CHECKING:  # pragma: no cover - typing only; torch is imported lazily
    from fasttok_plugin.fit.settings import FitSettings
    from fasttok_plugin.normalize import Normalize

__all__ = ["EpisodeSplit", "FitBatch", "FitPlan", "entry_widths", "episode_split"]


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
        action_dims: ``layout="native"``: ``(B,)`` native width of each chunk (its entry's action dim);
            the chunk the tokenizer sees is ``normalized[i, :, :action_dims[i]]``. None for ``padded``.
    """

    raw: np.ndarray
    normalized: np.ndarray
    dataset_index: np.ndarray
    head_index: np.ndarray
    episode_index: np.ndarray
    start_frame: np.ndarray
    action_dims: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.raw.shape[0])


@dataclass(frozen=True, slots=True)
class EpisodeSplit:
    """Which episodes of each entry are held out (positions in mixture order).

    Attributes:
        heldout_episodes: Per entry, the sorted episode indices held out.
        heldout_share: Per entry, the share of its valid starts lying in held-out episodes.
        episode_counts: Per entry, how many of its episodes can start a chunk.
        single_episode_heads: Heads with exactly one such episode (fit on it, nothing held out).
    """

    heldout_episodes: tuple[np.ndarray, ...]
    heldout_share: np.ndarray
    episode_counts: np.ndarray
    single_episode_heads: tuple[int, ...]


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
        head_of = np.asarray(heads.dataset_to_head, dtype=np.int64)
        self.budgets = sampler.budgets(settings.total_chunks)
        #: The episode split (which episodes of each entry are held out).
        self.split = episode_split(sampler, settings)
        #: How held-out chunks are chosen: ``"episode"`` (``"draw"`` only for a sampler without chunk
        #: identities, which falls back to hashing the draw number).
        self.heldout_split = "episode"
        # Expected fit-side / held-out pools per entry, from the held-out episodes' share of its starts.
        heldout_pool = np.floor(self.budgets * self.split.heldout_share).astype(np.int64)
        #: Expected held-out chunks per entry (the draws landing in held-out episodes vary around it).
        self.heldout_pool = heldout_pool
        pool = self.budgets - heldout_pool
        if settings.max_fit_chunks is None or settings.max_fit_chunks >= int(pool.sum()):
            self.fit_quota = self.budgets.copy()  # no cap: every fit-side chunk is fit
        else:
            self.fit_quota = _stratified_quota(int(settings.max_fit_chunks), pool, head_of)
        #: Held-out chunks evaluated per entry (at most ``max_heldout_chunks_per_head`` per head).
        self.eval_quota = _per_head_quota(
            settings.max_heldout_chunks_per_head, heldout_pool, self.budgets, head_of
        )
        # entry index -> position in the mixture (they coincide for parsed mixtures; do not assume it)
        indices = np.array([int(e.index) for e in sampler.resolved.entries], dtype=np.int64)
        self._position_of = np.full(int(indices.max(initial=0)) + 1, -1, dtype=np.int64)
        self._position_of[indices] = np.arange(indices.size)
        #: ``native`` layout: the width of each entry's chunks, by entry index (None for ``padded``).
        self.widths = entry_widths(sampler) if getattr(settings, "layout", "padded") == "native" else None
        #: Per-entry counts of the last completed pass.
        self.fit_counts = np.zeros(len(self.budgets), np.int64)
        self.heldout_counts = np.zeros(len(self.budgets), np.int64)
        self.evaluated_counts = np.zeros(len(self.budgets), np.int64)
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
            # Normalize is per dim, so the native chunk is the normalized padded chunk's first w dims.
            action_dims=None if self.widths is None else self.widths[batch.dataset_index[rows]],
        )

    def _split(self) -> Iterator[tuple[ChunkBatch, np.ndarray, np.ndarray]]:
        """Yield each sampled batch with its held-out rows and its fit rows.

        A chunk is held out when its episode is (`episode_split`). Fit-side chunks go to the fit corpus
        in delivery (random draw) order, up to the entry's ``fit_quota``; the rest are sampled but unused.
        """
        n = len(self.budgets)
        seen = np.zeros(n, np.int64)
        fit_taken = np.zeros(n, np.int64)
        self.sampled_counts = seen
        for batch in self._batches():
            positions = self._position_of[batch.dataset_index]
            held = self._held_rows(batch, positions, seen)
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

    def _held_rows(self, batch: ChunkBatch, positions: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """Boolean mask of the batch's held-out rows: those whose episode is held out."""
        if batch.episode_index is None:
            # A sampler without chunk identities: hash the draw number (chunks may then share frames).
            self.heldout_split = "draw"
            draws = np.zeros(len(batch), np.int64)
            for position in np.unique(positions):
                rows = positions == position
                draws[rows] = seen[position] + np.arange(int(rows.sum()))
            key = _unit_hash(self.settings.seed, batch.dataset_index, np.zeros(len(batch), np.int64), draws)
            return key < self.settings.heldout_fraction
        held = np.zeros(len(batch), bool)
        episode = np.asarray(batch.episode_index, np.int64)
        for position in np.unique(positions):
            rows = positions == position
            held[rows] = np.isin(episode[rows], self.split.heldout_episodes[position])
        return held

    def fit_batches(self) -> Iterator[FitBatch]:
        """Stream the fit corpus (normalized); sets ``fit_counts`` when exhausted."""
        counts = np.zeros(len(self.budgets), np.int64)
        for batch, _, rows in self._split():
            if rows.size:
                counts += np.bincount(self._rows_positions(batch, rows), minlength=counts.size)
                yield self._normalized(batch, rows)
        self.fit_counts = counts

    def heldout_batches(self) -> Iterator[FitBatch]:
        """Stream the held-out chunks that are evaluated (normalized), at most ``eval_quota`` per entry.

        They are the first held-out chunks of each entry in draw order. Sets ``heldout_counts`` (every
        held-out chunk sampled) and ``evaluated_counts`` when exhausted.
        """
        counts = np.zeros(len(self.budgets), np.int64)
        evaluated = np.zeros(len(self.budgets), np.int64)
        for batch, rows, _ in self._split():
            if not rows.size:
                continue
            positions = self._rows_positions(batch, rows)
            keep = np.zeros(rows.size, bool)
            for position in np.unique(positions):
                mine = np.flatnonzero(positions == position)  # in delivery order
                room = max(0, int(self.eval_quota[position] - evaluated[position]))
                keep[mine[:room]] = True
                evaluated[position] += min(room, mine.size)
            counts += np.bincount(positions, minlength=counts.size)
            if keep.any():
                yield self._normalized(batch, rows[keep])
        self.heldout_counts = counts
        self.evaluated_counts = evaluated

    def _rows_positions(self, batch: ChunkBatch, rows: np.ndarray) -> np.ndarray:
        return self._position_of[batch.dataset_index[rows]]


def entry_widths(sampler: ChunkSampler) -> np.ndarray:
    """The native width of each entry's chunks, indexed by entry index (``ChunkBatch.dataset_index``).

    It is the entry's own action dim (what LeRobot ``pi0_fast`` and openpi tokenize: the robot's action
    vector, unpadded); the head's native dim only where the entry's is unknown. They agree under the
    ``robot_control`` grouping; a ``global`` or ``dataset`` head may pool entries of several dims, and its
    native dim (their maximum) would keep padding in the narrower ones.
    """
    heads = sampler.heads
    indices = [int(e.index) for e in sampler.resolved.entries]
    out = np.zeros(max(indices, default=-1) + 1, dtype=np.int64)
    entry_dims = tuple(getattr(heads, "entry_dims", ())) or (None,) * len(indices)
    for position, index in enumerate(indices):
        head = int(heads.dataset_to_head[position])
        dim = entry_dims[position] if position < len(entry_dims) else None
        out[index] = int(dim) if dim else (int(heads.native_dims[head]) if head >= 0 else 0)
    return out


def episode_split(sampler: ChunkSampler, settings: FitSettings) -> EpisodeSplit:
    """Choose the held-out episodes of every head (deterministic: mixture, chunk size / rate, seed).

    Per head, its episodes that can start a chunk are ordered by a hash of ``(seed, entry, episode)``;
    the first ones are held out while that brings their weight (entry weight share x share of the
    entry's valid starts) closer to ``heldout_fraction``: at least one, and never all of them.

    Args:
        sampler: The chunk sampler (its mixture, heads, chunk size and rates).
        settings: The fit settings (``heldout_fraction``, ``seed``).
    """
    entries = sampler.resolved.entries
    head_of = np.asarray(sampler.heads.dataset_to_head, dtype=np.int64)
    weights = np.asarray(sampler.resolved.config.weights, dtype=np.float64)  # validated by budgets()
    episodes, starts = [], []
    for position, entry in enumerate(entries):
        meta, freq = entry.meta, sampler.entry_freq(position)
        if meta is None or freq is None or head_of[position] < 0 or not weights[position] > 0:
            episodes.append(np.zeros(0, np.int64))
            starts.append(np.zeros(0, np.int64))
            continue
        lengths = np.array([ep.length for ep in meta.episodes], dtype=np.int64)
        counts = valid_start_counts(lengths, fps=float(meta.fps), chunk_size=sampler.chunk_size, freq=freq)
        usable = counts > 0
        episodes.append(np.array([ep.index for ep in meta.episodes], dtype=np.int64)[usable])
        starts.append(counts[usable])
    held = [np.zeros(0, np.int64) for _ in entries]
    single: list[int] = []
    for head in np.unique(head_of[head_of >= 0]):
        members = [p for p in np.flatnonzero(head_of == head) if starts[p].size]
        count = sum(starts[p].size for p in members)
        if count == 1:
            single.append(int(head))
        if count < 2:
            continue
        total_weight = float(sum(weights[p] for p in members))
        pos = np.concatenate([np.full(starts[p].size, p) for p in members])
        eps = np.concatenate([episodes[p] for p in members])
        share = np.concatenate([weights[p] / total_weight * starts[p] / starts[p].sum() for p in members])
        entry_index = np.concatenate([np.full(starts[p].size, int(entries[p].index)) for p in members])
        order = np.argsort(_unit_hash(settings.seed, entry_index, eps, np.full(eps.size, -1)), kind="stable")
        chosen: list[int] = []
        cum = 0.0
        for i in order:
            if len(chosen) == count - 1 or (chosen and cum + share[i] / 2 > settings.heldout_fraction):
                break
            chosen.append(int(i))
            cum += float(share[i])
        picked = np.array(chosen, dtype=np.int64)
        for p in members:
            held[p] = np.sort(eps[picked[pos[picked] == p]])
    heldout_share = np.array(
        [
            float(starts[p][np.isin(episodes[p], held[p])].sum() / starts[p].sum()) if starts[p].size else 0.0
            for p in range(len(entries))
        ]
    )
    return EpisodeSplit(
        heldout_episodes=tuple(held),
        heldout_share=heldout_share,
        episode_counts=np.array([e.size for e in episodes], dtype=np.int64),
        single_episode_heads=tuple(single),
    )


def _per_head_quota(
    cap: int | None, pool: np.ndarray, budgets: np.ndarray, head_of: np.ndarray
) -> np.ndarray:
    """At most ``cap`` per head, split over its entries in proportion to ``pool`` (no cap: ``budgets``).

    A head whose pool does not exceed ``cap`` is not capped (its entries may deliver a little more than
    the expected pool).
    """
    out = budgets.astype(np.int64).copy()
    if cap is None:
        return out
    for head in np.unique(head_of[head_of >= 0]):
        members = np.flatnonzero(head_of == head)
        if int(pool[members].sum()) > cap:
            out[members] = largest_remainder(int(cap), pool[members].astype(np.float64))
    return out


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
