"""Chunks <-> integers: DCT-II (ortho) along time, flatten in an order, ``round(x * scale)``; and back."""

from __future__ import annotations

from typing import Final

import numpy as np
from scipy.fft import dct, idct

from fasttok_plugin.codec._arrays import format_rows
from fasttok_plugin.codec.alphabet import SURROGATE_START
from fasttok_plugin.codec.order import DEFAULT_ORDER, apply_order, undo_order
from fasttok_plugin.errors import CodecError

__all__ = ["MAX_QUANTIZED", "check_range", "dequantize", "quantize", "quantize_with_error"]

#: Largest quantized magnitude accepted: the fit stores rows as int32 before ``min_token`` is known, and
#: an alphabet spans fewer than ``SURROGATE_START`` values, so nothing useful lies beyond it.
MAX_QUANTIZED: Final = 2**31 - 1


def quantize(
    array: np.ndarray, scale: float, *, what: str = "fit", offset: int = 0, order: str = DEFAULT_ORDER
) -> np.ndarray:
    """DCT-II (ortho) along time, flatten in ``order``, ``round(x * scale)`` -> ``(N, T*D)`` int64.

    Args:
        array: ``(N, T, D)`` finite float chunks.
        scale: Multiplier of the DCT coefficients.
        what: The caller (``"fit"``, ``"encode"``), for the message.
        offset: Index of the first row in the caller's stream, for the message.
        order: Flatten order (`fasttok_plugin.codec.order`); ``"time"`` is the reference's.

    Raises:
        CodecError: Rows whose scaled coefficients are not finite (the multiply overflowed the input
            dtype) or beyond ``MAX_QUANTIZED`` in magnitude, naming the rows, ``scale`` and the fix.
    """
    _, rounded = _scaled(array, scale, what, offset)
    flat = rounded.reshape(array.shape[0], array.shape[1] * array.shape[2]).astype(np.int64)
    return apply_order(flat, order, array.shape[1], array.shape[2])


def quantize_with_error(
    array: np.ndarray, scale: float, *, what: str = "encode", offset: int = 0, order: str = DEFAULT_ORDER
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`quantize`, plus each value's rounding error (scaled coefficient minus its integer).

    Returns:
        ``(codes, error)``: the ``(N, T*D)`` int64 values of :func:`quantize` and an ``(N, T*D)`` float
        array (the input dtype) in the same order, each in ``[-0.5, 0.5]``.

    Raises:
        CodecError: as :func:`quantize`.
    """
    scaled, rounded = _scaled(array, scale, what, offset)
    n, width = array.shape[0], array.shape[1] * array.shape[2]
    flat = rounded.reshape(n, width)
    error = scaled.reshape(n, width) - flat
    return (
        apply_order(flat.astype(np.int64), order, array.shape[1], array.shape[2]),
        apply_order(error, order, array.shape[1], array.shape[2]),
    )


def _scaled(array: np.ndarray, scale: float, what: str, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """``(N, T, D)`` chunks -> their scaled DCT coefficients and those rounded, checked for overflow."""
    coeff = dct(array, axis=1, norm="ortho")
    # np.around is round-half-to-even like the reference; the multiply stays in the input dtype.
    # Overflow is reported below, per row, so numpy's own overflow warning would only repeat it.
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = coeff * scale
        rounded = np.around(scaled)
    if rounded.size:
        # ``not <=`` is NaN-aware: 0 * inf (a scale beyond float32) is NaN and must not pass as small.
        bad = ~(np.abs(rounded) <= MAX_QUANTIZED).all(axis=(1, 2))
        if bad.any():
            rows = (np.flatnonzero(bad) + offset).tolist()
            finite = rounded[np.isfinite(rounded)]
            peak = f"{float(np.abs(finite).max()):.3g}" if finite.size else "none finite"
            raise CodecError(
                f"{what}: {len(rows)} chunk(s) have DCT coefficients that do not fit an integer after "
                f"scaling by scale={scale} (non-finite, or beyond +/-{MAX_QUANTIZED}; largest finite: "
                f"{peak}), rows {format_rows(rows)}. Lower scale (--scale) or check that the data is "
                "normalized (e.g. to [-1, 1])"
            )
    return scaled, rounded


def dequantize(
    codes: np.ndarray,
    *,
    min_token: int,
    scale: float,
    shape: tuple[int, int],
    order: str = DEFAULT_ORDER,
) -> np.ndarray:
    """``(M, T*D)`` codes in ``order`` -> ``(M, T, D)`` float32: ``+ min_token``, ``/ scale``, inverse DCT."""
    values = undo_order(codes.astype(np.float64) + min_token, order, *shape)
    coeff = values.reshape(-1, *shape) / scale
    return idct(coeff, axis=1, norm="ortho").astype(np.float32)


def check_range(lo: int, hi: int, vocab_size: int, scale: float) -> None:
    """Refuse a quantized range ``lo..hi`` that the alphabet or the vocabulary cannot hold."""
    span = hi - lo
    if span >= SURROGATE_START:
        raise CodecError(
            f"quantized DCT values span {lo}..{hi} ({span + 1} values); a FAST alphabet must stay below "
            f"{SURROGATE_START} characters (UTF-16 surrogates start there). Lower scale={scale} or "
            "check that the data is normalized (e.g. to [-1, 1])"
        )
    if span >= vocab_size:
        raise CodecError(
            f"quantized DCT values span {lo}..{hi} ({span + 1} values) but vocab_size={vocab_size}: "
            f"raise vocab_size above {span}, lower scale={scale}, or check that the data is normalized "
            "(e.g. to [-1, 1])"
        )
