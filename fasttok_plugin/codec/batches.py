"""What the codec hands out: padded token ids for a model, and decoded chunks with a validity mask."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

__all__ = ["DecodedBatch", "EncodedBatch", "pad_rows"]

# The codec logs under one name, "fasttok_plugin.codec": fitting filters its per-batch warnings by it.
logger = logging.getLogger(__package__)


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Padded token ids for a model.

    Attributes:
        ids: ``(N, L)`` int64 token ids, ``pad_id`` after each row's length.
        lengths: ``(N,)`` int64 number of real tokens per row (after truncation).
        attention_mask: ``(N, L)`` bool, True on real tokens.
        truncated_rows: rows that were longer than ``max_length`` and were cut.
        clamped_values: quantized values outside the fitted range that were clamped to it.
    """

    ids: np.ndarray
    lengths: np.ndarray
    attention_mask: np.ndarray
    truncated_rows: int
    clamped_values: int


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """Decoded action chunks with a per-row validity mask.

    Attributes:
        actions: ``(N, T, D)`` float32; rows that are not valid are NaN (never zeros).
        valid: ``(N,)`` bool, True where the ids decoded to exactly ``T * D`` values in the fitted range.
        invalid_rows: indices of the rows that are not valid.
        action_dims: ``(N,)`` width of each row when decoded with one ``action_dim`` per row (``native``
            layout: ``actions`` is then ``(N, T, max width)``, zero beyond each row's width); else None.
    """

    actions: np.ndarray
    valid: np.ndarray
    invalid_rows: tuple[int, ...]
    action_dims: np.ndarray | None = None


def pad_rows(
    rows: Sequence[Sequence[int]], *, max_length: int | None, pad_id: int, clamped: int
) -> EncodedBatch:
    """Pad (and with ``max_length``, truncate: counted and logged) id lists into an :class:`EncodedBatch`.

    Args:
        rows: One id list per chunk.
        max_length: ``L``; None pads to the longest row.
        pad_id: Id written after each row's end.
        clamped: The encoder's clamp count, carried into the batch.
    """
    full = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    width = int(full.max(initial=0)) if max_length is None else max_length
    lengths = np.minimum(full, width)
    truncated = int(np.count_nonzero(full > width))
    if truncated:
        logger.warning(
            "encode_padded: %d of %d row(s) were longer than max_length=%d and were truncated "
            "(longest: %d tokens)",
            truncated,
            len(rows),
            width,
            int(full.max()),
        )
    mask = np.arange(width)[None, :] < lengths[:, None]
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(full.sum()))
    if truncated:
        # Position of every id inside its row; keep the first ``lengths[i]`` of row i.
        position = np.arange(flat.size) - np.repeat(np.cumsum(full) - full, full)
        flat = flat[position < np.repeat(lengths, full)]
    ids[mask] = flat
    return EncodedBatch(
        ids=ids, lengths=lengths, attention_mask=mask, truncated_rows=truncated, clamped_values=clamped
    )
