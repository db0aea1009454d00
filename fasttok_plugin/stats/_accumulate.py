"""One head's exact stats in two streamed passes over its frames, in memory independent of the frame count.

Pass 1 (`HeadAccumulator.add`): count, min, max, mean and the sum of squared deviations (float64, Chan's
pooled update per block) and a 65536-bin histogram per dim of the values' order keys (`_order`). Then
`plan` finds, for every order statistic numpy's linear quantiles need, the bin holding it and how many
values lie below that bin. Pass 2 (`HeadAccumulator.collect`) keeps only the values of those bins, as
distinct ``(bin, key)`` codes with counts (at most 65536 per bin: the key's low 16 bits), and `result`
reads each order statistic off the cumulative counts: exact, whatever the data.

Dims past a member's width hold the zeros the data is padded with: counted analytically (no padded copy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fasttok_plugin.stats._order import (
    BIN_BITS,
    NUM_BINS,
    ZERO_KEY,
    from_keys,
    linear_quantiles,
    order_keys,
    target_ranks,
)

__all__ = ["BLOCK_VALUES", "HeadAccumulator", "HeadResult"]

#: Values (rows x dims) processed at once: bounds the temporaries of both passes (~8 bytes each).
BLOCK_VALUES = 1 << 20
# Compact the pass-2 candidates once this many codes are buffered.
_COMPACT_AT = 1 << 20
_ZERO_BIN = ZERO_KEY >> BIN_BITS


@dataclass(frozen=True)
class HeadResult:
    """One head's statistics: ``(D,)`` float64 arrays, ``quantiles`` ``(Q, D)``, frame counts."""

    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    quantiles: np.ndarray
    count: int
    nonfinite: int


class HeadAccumulator:
    """The running state of one head of width ``dim`` (see the module docstring for the two passes)."""

    def __init__(self, dim: int, quantiles: np.ndarray) -> None:
        self.dim = dim
        self.quantiles = np.asarray(quantiles, dtype=np.float64)
        self.count = 0
        self.nonfinite = 0
        self.mean = np.zeros(dim)
        self.m2 = np.zeros(dim)
        self.min = np.full(dim, np.inf)
        self.max = np.full(dim, -np.inf)
        self.hist: np.ndarray | None = np.zeros((dim, NUM_BINS), dtype=np.int64)
        self._lut: np.ndarray | None = None
        self._num_slots = 0
        self._slot_sizes = np.zeros(0, dtype=np.int64)
        self._ranks = np.zeros(0, dtype=np.int64)
        self._slot_of_rank = np.zeros((dim, 0), dtype=np.int64)
        self._below = np.zeros((dim, 0), dtype=np.int64)
        self._codes = np.zeros(0, dtype=np.uint64)
        self._counts = np.zeros(0, dtype=np.int64)
        self._buffer: list[tuple[np.ndarray, np.ndarray]] = []
        self._buffered = 0

    # ------------------------------------------------------------------------------------------ pass 1

    def add(self, actions: np.ndarray) -> int:
        """Pass 1 over ``(n, d)`` float32 frames (``d <= dim``); frames holding NaN/Inf are counted, not used.

        Returns:
            The number of non-finite frames among ``actions``.
        """
        finite = np.isfinite(actions).all(axis=1)
        bad = int(actions.shape[0] - np.count_nonzero(finite))
        self.nonfinite += bad
        for block in _blocks(actions[finite] if bad else actions):
            self._add_block(block)
        return bad

    def _add_block(self, x: np.ndarray) -> None:
        m, d = x.shape
        x64 = x.astype(np.float64)
        bmean = np.zeros(self.dim)
        bm2 = np.zeros(self.dim)
        bmean[:d] = x64.mean(axis=0)
        bm2[:d] = np.square(x64 - bmean[:d]).sum(axis=0)
        n = self.count + m
        delta = bmean - self.mean
        self.mean += delta * (m / n)
        self.m2 += bm2 + np.square(delta) * (self.count * m / n)
        self.count = n
        bmin = np.zeros(self.dim)
        bmax = np.zeros(self.dim)
        bmin[:d], bmax[:d] = x64.min(axis=0), x64.max(axis=0)
        np.minimum(self.min, bmin, out=self.min)
        np.maximum(self.max, bmax, out=self.max)
        assert self.hist is not None, "add() after plan()"
        flat = (order_keys(x) >> BIN_BITS).astype(np.int64) + np.arange(d, dtype=np.int64) * NUM_BINS
        self.hist[:d] += np.bincount(flat.ravel(), minlength=d * NUM_BINS).reshape(d, NUM_BINS)
        self.hist[d:, _ZERO_BIN] += m  # the zero padding

    # ------------------------------------------------------------------------------------------- plan

    def plan(self) -> bool:
        """Locate the bins of the order statistics; frees the histogram.

        Returns:
            ``True`` when a second pass is needed (the head has finite frames).
        """
        hist, self.hist = self.hist, None
        if self.count == 0 or hist is None:
            return False
        prev, nxt, _ = target_ranks(self.count, self.quantiles)
        self._ranks = np.unique(np.concatenate([prev, nxt]))
        cum = np.cumsum(hist, axis=1)
        bins = np.stack([np.searchsorted(cum[j], self._ranks, side="right") for j in range(self.dim)])
        rows = np.arange(self.dim)[:, None]
        self._below = cum[rows, bins] - hist[rows, bins]
        flat = bins + rows * NUM_BINS
        slots, slot_of_rank = np.unique(flat, return_inverse=True)
        self._slot_of_rank = slot_of_rank.reshape(flat.shape)
        self._lut = np.full(self.dim * NUM_BINS, -1, dtype=np.int32)
        self._lut[slots] = np.arange(slots.size, dtype=np.int32)
        self._num_slots = int(slots.size)
        self._slot_sizes = hist.ravel()[slots]
        return True

    # ------------------------------------------------------------------------------------------ pass 2

    def collect(self, actions: np.ndarray) -> None:
        """Pass 2 over the same frames as pass 1: keep the values of the planned bins."""
        assert self._lut is not None, "collect() before plan()"
        finite = np.isfinite(actions).all(axis=1)
        rows = actions if finite.all() else actions[finite]
        for x in _blocks(rows):
            m, d = x.shape
            keys = order_keys(x)
            flat = (keys >> BIN_BITS).astype(np.int64) + np.arange(d, dtype=np.int64) * NUM_BINS
            slot = self._lut[flat]
            hit = slot >= 0
            codes = (slot[hit].astype(np.uint64) << np.uint64(32)) | keys[hit].astype(np.uint64)
            self._push(codes, np.ones(codes.size, dtype=np.int64))
            if d < self.dim:  # padded zeros of dims d.. that fall in a planned bin
                pad = self._lut[np.arange(d, self.dim) * NUM_BINS + _ZERO_BIN]
                pad = pad[pad >= 0].astype(np.uint64)
                zero = (pad << np.uint64(32)) | np.uint64(ZERO_KEY)
                self._push(zero, np.full(zero.size, m, dtype=np.int64))

    def _push(self, codes: np.ndarray, counts: np.ndarray) -> None:
        if codes.size:
            self._buffer.append((codes, counts))
            self._buffered += codes.size
            if self._buffered >= _COMPACT_AT:
                self._compact()

    def _compact(self) -> None:
        """Merge the buffer into the sorted distinct codes (bounded by 65536 per planned bin)."""
        if not self._buffer:
            return
        codes = np.concatenate([self._codes, *(c for c, _ in self._buffer)])
        counts = np.concatenate([self._counts, *(k for _, k in self._buffer)])
        self._codes, inverse = np.unique(codes, return_inverse=True)
        self._counts = np.bincount(inverse.ravel(), weights=counts, minlength=self._codes.size).astype(
            np.int64
        )
        self._buffer, self._buffered = [], 0

    def consistent(self) -> bool:
        """Pass 2 saw exactly the values pass 1 counted in the planned bins (the frames did not change)."""
        self._compact()
        slot_of_code = (self._codes >> np.uint64(32)).astype(np.int64)
        seen = np.bincount(slot_of_code, weights=self._counts, minlength=self._num_slots)
        return bool(np.array_equal(seen.astype(np.int64), self._slot_sizes))

    @property
    def candidate_bytes(self) -> int:
        """Memory held by the pass-2 candidates (codes and counts)."""
        return int(self._codes.nbytes + self._counts.nbytes + 16 * self._buffered)

    # ----------------------------------------------------------------------------------------- result

    def result(self) -> HeadResult:
        """The head's stats (NaN everywhere when it has no finite frame)."""
        q = self.quantiles.size
        if self.count == 0:
            nan = np.full(self.dim, np.nan)
            return HeadResult(nan, nan, nan, nan, np.full((q, self.dim), np.nan), 0, self.nonfinite)
        self._compact()
        values = self._order_statistics()
        prev, nxt, gamma = target_ranks(self.count, self.quantiles)
        pos_prev = np.searchsorted(self._ranks, prev)
        pos_next = np.searchsorted(self._ranks, nxt)
        quantiles = linear_quantiles(values[:, pos_prev].T, values[:, pos_next].T, gamma[:, None])
        std = np.sqrt(np.maximum(self.m2, 0.0) / self.count)
        return HeadResult(self.min, self.max, self.mean, std, quantiles, self.count, self.nonfinite)

    def _order_statistics(self) -> np.ndarray:
        """``(dim, ranks)`` float64: the value of every planned rank, from the candidates' counts."""
        slot_of_code = (self._codes >> np.uint64(32)).astype(np.int64)
        starts = np.searchsorted(slot_of_code, np.arange(self._num_slots))
        cum = np.cumsum(self._counts)
        # Values of slot s sit at codes[starts[s]:]; the rank's position among them is rank - below.
        before = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0)
        target = before[self._slot_of_rank] + (self._ranks[None, :] - self._below)
        at = np.searchsorted(cum, target, side="right")
        keys = (self._codes[at] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        return from_keys(keys).astype(np.float64)


def _blocks(actions: np.ndarray) -> list[np.ndarray]:
    """Row blocks of at most `BLOCK_VALUES` values (at least one row each)."""
    n, d = actions.shape
    if n == 0:
        return []
    step = max(1, BLOCK_VALUES // max(d, 1))
    return [actions[i : i + step] for i in range(0, n, step)]
