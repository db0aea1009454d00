"""How scaled DCT coefficients become integers: to the nearest one (the reference's), or token-aware.

``"nearest"`` rounds every scaled coefficient to its nearest integer (``np.around``, as the reference
does). ``"token_aware"`` starts there and then, chunk by chunk, rounds some values the other way when that
gives the chunk a shorter token sequence under the fitted BPE (a greedy rate-distortion step, as video
coders do with their quantizers). Decoding is unchanged (``value / scale``, inverse DCT): only the encoder
chooses other integers, each at most ``1 - MIN_ERROR`` quantization steps from its scaled coefficient
instead of 0.5, so the round-trip error grows a little and the sequences get shorter. At matched error it
is a net gain (docs/fitting.md has the measurements).

The greedy rule, exactly (the shipped processor module implements it identically, so both give the same
ids):

1. Round to nearest, clamp to the tokenizer's range as ``"nearest"`` does.
2. Candidates of a chunk: the values whose nearest integer is not 0, was not clamped, and lies more than
   ``MIN_ERROR`` from the scaled coefficient, and whose other neighbour (one step towards the coefficient)
   the tokenizer represents.
3. Visit the candidates by decreasing rounding error (ties: by position in the sequence); round one the
   other way when that makes the chunk's sequence strictly shorter than it is now, and keep it so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
from tokenizers import Tokenizer

from fasttok_plugin.codec.alphabet import code_strings
from fasttok_plugin.codec.quantize import quantize, quantize_with_error
from fasttok_plugin.errors import CodecError

__all__ = [
    "DEFAULT_ROUNDING",
    "MIN_ERROR",
    "ROUNDINGS",
    "bpe_lengths",
    "check_rounding",
    "rounded_block",
    "token_aware_codes",
]

#: The roundings, the reference's first.
ROUNDINGS: Final = ("nearest", "token_aware")
DEFAULT_ROUNDING: Final = "nearest"
#: ``token_aware`` only considers values rounded by more than this (in quantization steps): rounding one
#: of them the other way costs at most ``1 - 2 * MIN_ERROR`` squared steps of error. 0.1 was measured
#: best at matched error (0.2: 1 point less saving, 1.4x faster; all values: no better, 2x slower).
MIN_ERROR: Final = 0.1


def check_rounding(rounding: object) -> str:
    """``rounding`` if it is one of :data:`ROUNDINGS`; else :class:`CodecError` naming them."""
    if not isinstance(rounding, str) or rounding not in ROUNDINGS:
        raise CodecError(f"rounding={rounding!r:.60} is not one of {ROUNDINGS}")
    return rounding


def bpe_lengths(tokenizer: Tokenizer) -> Callable[[np.ndarray], np.ndarray]:
    """``(M, L)`` char-pipeline alphabet codes -> their ``(M,)`` token counts under ``tokenizer``."""
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)

    def lengths(codes: np.ndarray) -> np.ndarray:
        encodings = encode(code_strings(codes))
        return np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))

    return lengths


def token_aware_codes(
    codes: np.ndarray,
    error: np.ndarray,
    *,
    zero: int,
    usable: np.ndarray,
    lengths: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Greedy token-aware rounding of ``(N, L)`` alphabet codes (see the module docstring for the rule).

    Args:
        codes: ``(N, L)`` int64 codes (value minus ``min_token``), rounded to nearest and clamped.
        error: ``(N, L)`` scaled coefficient minus its nearest integer, in the same order; 0 where the
            value was clamped (so it is never a candidate).
        zero: the code of the value 0 (``-min_token``).
        usable: bool mask over codes ``0 .. span``: the codes the tokenizer represents.
        lengths: ``(M, L)`` codes -> ``(M,)`` token counts under the fitted tokenizer.

    Returns:
        The chosen ``(N, L)`` codes (a new array; ``codes`` is not modified).
    """
    codes = np.array(codes, dtype=np.int64, copy=True)
    if codes.size == 0:
        return codes
    step = np.where(error > 0, 1, -1).astype(np.int64)
    other = codes + step
    inside = (other >= 0) & (other < usable.size)
    candidate = (codes != zero) & (np.abs(error) > MIN_ERROR) & inside
    candidate[candidate] = usable[other[candidate]]
    # Decreasing error, ties by position: a stable sort of -|error| (non-candidates last).
    key = np.where(candidate, -np.abs(error), np.inf)
    visit = np.argsort(key, axis=1, kind="stable")
    counts = candidate.sum(axis=1)
    best = np.asarray(lengths(codes), dtype=np.int64)
    for rank in range(int(counts.max())):
        rows = np.flatnonzero(counts > rank)
        cols = visit[rows, rank]
        trial = codes[rows]
        trial[np.arange(rows.size), cols] += step[rows, cols]
        n = np.asarray(lengths(trial), dtype=np.int64)
        shorter = n < best[rows]
        codes[rows[shorter]] = trial[shorter]
        best[rows[shorter]] = n[shorter]
    return codes


def rounded_block(
    block: np.ndarray,
    offset: int,
    scale: float,
    min_token: int,
    order: str,
    rounding: str,
    clip: Callable[[np.ndarray], tuple[np.ndarray, int]],
    usable: np.ndarray,
    tokenizer: Tokenizer,
) -> tuple[np.ndarray, int]:
    """Encode one width's ``(N, T, w)`` chunks to clamped alphabet codes in ``order``, and the clamp count.

    Args:
        block: The chunks (row ``offset`` of the caller's batch first, for messages).
        offset: Index of the block's first row in the caller's batch.
        scale: The tokenizer's ``scale``.
        min_token: The tokenizer's ``min_token`` (code 0).
        order: Flatten order.
        rounding: ``"nearest"`` or ``"token_aware"``.
        clip: Codes -> (codes clamped to the representable ones, how many changed).
        usable: Bool mask of the representable codes.
        tokenizer: The fitted BPE (``token_aware`` measures sequence lengths with it).
    """
    if rounding == DEFAULT_ROUNDING:
        return clip(quantize(block, scale, what="encode", offset=offset, order=order) - min_token)
    values, error = quantize_with_error(block, scale, what="encode", offset=offset, order=order)
    codes = values - min_token
    clipped, changed = clip(codes)
    error = np.where(clipped == codes, error, 0.0)  # a clamped value is never rounded the other way
    chosen = token_aware_codes(clipped, error, zero=-min_token, usable=usable, lengths=bpe_lengths(tokenizer))
    return chosen, changed
