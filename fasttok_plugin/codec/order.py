"""Flatten orders of the quantized DCT coefficients: which of the ``T*D`` values comes first in a sequence.

The reference flattens ``(T, D)`` coefficients row-major (``"time"``: every dim's coefficient 0, then every
dim's coefficient 1, ...), so the sequence is low-frequency-first across dims and a policy predicts the
coarse motion first. Other orders are a fixed permutation of that time-major vector, applied to a block of
chunks of one width ``(N, T*w)`` after quantization and undone before dequantization, so they compose with
any layout that calls the codec core once per width:

- ``"time"``: the reference order (identity).
- ``"dims"``: each dim's ``T`` coefficients contiguous (dim 0's coefficients 0..T-1, then dim 1's, ...).
  The high-frequency coefficients of one dim are mostly zero and end up adjacent, so BPE merges them into
  long tokens: the shortest sequences (docs/fitting.md has the measurements).
- ``"dc_dims"``: the DC coefficient of every dim first (the chunk's mean position, the coarsest motion),
  then the remaining ``T-1`` coefficients of each dim contiguous. Keeps most of the gain of ``"dims"``
  while the first ``D`` values still describe the whole motion coarsely.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

import numpy as np

from fasttok_plugin.errors import CodecError

__all__ = ["DEFAULT_ORDER", "ORDERS", "apply_order", "check_order", "order_permutation", "undo_order"]

#: The flatten orders, the reference's first.
ORDERS: Final = ("time", "dims", "dc_dims")
DEFAULT_ORDER: Final = "time"


def check_order(order: object) -> str:
    """``order`` if it is one of :data:`ORDERS`; else :class:`CodecError` naming them."""
    if not isinstance(order, str) or order not in ORDERS:
        raise CodecError(f"order={order!r:.60} is not one of {ORDERS}")
    return order


@lru_cache(maxsize=64)
def order_permutation(order: str, time_horizon: int, width: int) -> np.ndarray:
    """Indices into the time-major ``T*w`` vector, in the order ``order`` emits them (read-only).

    ``ordered = time_major[:, perm]``; position ``k*w + j`` of the time-major vector is coefficient ``k`` of
    dim ``j``.
    """
    check_order(order)
    grid = np.arange(time_horizon * width, dtype=np.int64).reshape(time_horizon, width)
    if order == "time":
        perm = grid.reshape(-1)
    elif order == "dims":
        perm = grid.T.reshape(-1)
    else:  # dc_dims: row 0 (every dim's DC), then each dim's coefficients 1..T-1
        perm = np.concatenate([grid[0], grid[1:].T.reshape(-1)])
    perm = np.ascontiguousarray(perm)
    perm.flags.writeable = False
    return perm


def apply_order(codes: np.ndarray, order: str, time_horizon: int, width: int) -> np.ndarray:
    """Reorder ``(N, T*w)`` time-major values into ``order`` (``"time"`` returns ``codes`` itself)."""
    if order == DEFAULT_ORDER:
        return codes
    return codes[:, order_permutation(order, time_horizon, width)]


def undo_order(values: np.ndarray, order: str, time_horizon: int, width: int) -> np.ndarray:
    """Inverse of :func:`apply_order`: ``(N, T*w)`` values in ``order`` back to time-major."""
    if order == DEFAULT_ORDER:
        return values
    out = np.empty_like(values)
    out[:, order_permutation(order, time_horizon, width)] = values
    return out
