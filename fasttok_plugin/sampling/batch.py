"""Batches of raw chunks, and the batcher that re-cuts part results into fixed-size padded batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fasttok_plugin.sampling._part import PartResult

__all__ = ["Batcher", "ChunkBatch"]


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


class Batcher:
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

    def add(self, result: PartResult, dataset: int, head: int) -> Iterator[ChunkBatch]:
        """Take a part's chunks (entry ``dataset``, head ``head``); yield every batch they complete."""
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
        """Yield the last, partly filled batch (if any)."""
        if self.filled:
            yield self._emit(self.filled)
