"""The alphabet: quantized codes as characters, and which codes a trained vocabulary can represent.

Code ``v`` (value ``min_token + v``) is the character ``chr(v)``. The ``"char"`` pipeline puts every
code of the fitted range in its vocabulary; the ``"reference"`` pipeline's ByteLevel pre-tokenizer turns
each character into its UTF-8 bytes first, so a code is representable only when every byte's printable
stand-in is a token.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from tokenizers import Tokenizer

from fasttok_plugin.errors import TokenizerFormatError

__all__ = ["SURROGATE_START", "byte_level_map", "code_strings", "nearest_remap", "representable_codes"]

# Python strings may hold lone surrogates but Rust (tokenizers) and UTF-8 cannot: the first code point
# of the surrogate block bounds every alphabet.
SURROGATE_START: Final = 0xD800


def code_strings(codes: np.ndarray) -> list[str]:
    """One string per row of non-negative code points, built without per-element Python."""
    n, width = codes.shape
    if n == 0:
        return []
    text = np.ascontiguousarray(codes, dtype="<u4").tobytes().decode("utf-32-le")
    return [text[i * width : (i + 1) * width] for i in range(n)]


def byte_level_map() -> dict[int, str]:
    """GPT-2's byte -> printable character map (what the ByteLevel pre-tokenizer emits)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def representable_codes(
    tokenizer: Tokenizer, pipeline: str, *, span: int | None, vocab_size: int
) -> np.ndarray:
    """``mask[v]``: the code ``v`` encodes to ids that decode back to it, for ``v`` in ``0 .. span``.

    With ``span`` None (a reference directory does not record ``max_token``) the mask is searched up to
    ``vocab_size`` and ends at the largest representable code.

    Raises:
        TokenizerFormatError: ``span`` is None and the vocabulary represents no code at all.
    """
    limit = min(span if span is not None else vocab_size, SURROGATE_START - 1)
    vocab = tokenizer.get_vocab()
    mask = np.zeros(limit + 1, dtype=bool)
    if pipeline == "char":
        for v in range(limit + 1):
            mask[v] = chr(v) in vocab
    else:
        byte_map = byte_level_map()
        for v in range(limit + 1):
            mask[v] = all(byte_map[b] in vocab for b in chr(v).encode("utf-8"))
    if span is None:
        good = np.flatnonzero(mask)
        if good.size == 0:
            raise TokenizerFormatError("the tokenizer vocabulary represents no value at all")
        mask = mask[: int(good[-1]) + 1]
    return mask


def nearest_remap(mask: np.ndarray) -> np.ndarray:
    """Lookup table sending every code to itself if representable, else to the nearest representable one."""
    good = np.flatnonzero(mask)
    if good.size == 0:
        raise TokenizerFormatError("the tokenizer vocabulary represents no value at all")
    codes = np.arange(mask.size)
    right = np.searchsorted(good, codes).clip(0, good.size - 1)
    left = (right - 1).clip(0, good.size - 1)
    pick_left = np.abs(codes - good[left]) <= np.abs(good[right] - codes)
    return np.where(pick_left, good[left], good[right]).astype(np.int64)
