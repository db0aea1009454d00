"""Chunks <-> integers: DCT-II (ortho) along time, time-major flatten, ``round(x * scale)``; and back."""

from __future__ import annotations

import numpy as np
from scipy.fft import dct, idct

from fasttok_plugin.codec.alphabet import SURROGATE_START
from fasttok_plugin.errors import CodecError

__all__ = ["check_range", "dequantize", "quantize"]


def quantize(array: np.ndarray, scale: float) -> np.ndarray:
    """DCT-II (ortho) along time, time-major flatten, ``round(x * scale)`` -> ``(N, T*D)`` int64.

    Raises:
        CodecError: Coefficients so large the data cannot be normalized (int64 would overflow).
    """
    coeff = dct(array, axis=1, norm="ortho")
    # np.around is round-half-to-even like the reference; the multiply stays in the input dtype.
    rounded = np.around(coeff * scale)
    limit = float(np.iinfo(np.int64).max) / 4
    if rounded.size and float(np.abs(rounded).max()) > limit:
        raise CodecError(
            f"quantized DCT coefficients reach {float(np.abs(rounded).max()):.3g}; lower scale={scale} or "
            "check that the data is normalized"
        )
    return rounded.reshape(array.shape[0], array.shape[1] * array.shape[2]).astype(np.int64)


def dequantize(codes: np.ndarray, *, min_token: int, scale: float, shape: tuple[int, int]) -> np.ndarray:
    """``(M, T*D)`` codes -> ``(M, T, D)`` float32 actions: ``+ min_token``, ``/ scale``, inverse DCT."""
    coeff = (codes.astype(np.float64) + min_token).reshape(-1, *shape) / scale
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
