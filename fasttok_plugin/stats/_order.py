"""Order statistics of float32 values: an order-preserving integer key and numpy's linear quantile.

A float32 value maps to a ``uint32`` key whose unsigned order is the value order (-0.0 and +0.0 are
adjacent keys of equal values), so the top 16 bits of the key bin the values into 65536 ordered bins
without knowing their range, and the key of a bin's member identifies the value exactly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BIN_BITS", "NUM_BINS", "ZERO_KEY", "from_keys", "linear_quantiles", "order_keys", "target_ranks"]

#: Low bits of a key not resolved by the histogram (the top ``32 - BIN_BITS`` bits are the bin).
BIN_BITS = 16
#: Histogram bins per dim.
NUM_BINS = 1 << (32 - BIN_BITS)
_SIGN = np.uint32(0x80000000)
#: Key of ``+0.0`` (the value of zero-padded dims).
ZERO_KEY = int(_SIGN)


def order_keys(values: np.ndarray) -> np.ndarray:
    """``uint32`` keys of finite float32 ``values``: ``a < b`` iff ``key(a) < key(b)``.

    ``-0.0`` gets the key just below ``+0.0``'s (equal values, adjacent keys).
    """
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    return np.where(bits >= _SIGN, ~bits, bits | _SIGN)


def from_keys(keys: np.ndarray) -> np.ndarray:
    """The float32 values of ``order_keys`` output (exact inverse)."""
    keys = np.asarray(keys, dtype=np.uint32)
    return np.where(keys >= _SIGN, keys ^ _SIGN, ~keys).astype(np.uint32).view(np.float32)


def target_ranks(count: int, quantiles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """0-based ranks ``(previous, next)`` and weights of numpy's ``method="linear"`` for ``count`` values.

    Mirrors ``numpy.quantile``: virtual index ``(count - 1) * q``, ``previous = floor``, ``next = previous
    + 1``, both the last rank when the virtual index reaches it; ``gamma = virtual - previous``.
    """
    virtual = (count - 1) * np.asarray(quantiles, dtype=np.float64)
    previous = np.floor(virtual)
    gamma = virtual - previous
    prev = previous.astype(np.int64)
    nxt = prev + 1
    last = virtual >= count - 1
    prev[last] = count - 1
    nxt[last] = count - 1
    return prev, nxt, gamma


def linear_quantiles(a: np.ndarray, b: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """numpy's ``_lerp`` in float64, bit for bit: ``a + (b-a)*g`` if ``g < 0.5``, else ``b - (b-a)*(1-g)``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    diff = b - a
    out = a + diff * gamma
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), out)
