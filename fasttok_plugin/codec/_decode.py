"""Token ids -> code points, vectorized: a per-token lookup table equal to the tokenizer's decoder.

Gathering each token's decoded piece from a table is one numpy gather for a whole block of rows; the
tokenizer's ``decode_batch`` is the fallback for tokenizers with added tokens and for rows whose bytes are
not valid UTF-8 on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
from tokenizers import Tokenizer

from fasttok_plugin.codec.alphabet import byte_level_map
from fasttok_plugin.codec.batches import EncodedBatch
from fasttok_plugin.codec.quantize import dequantize
from fasttok_plugin.errors import CodecError

__all__ = ["PieceTable", "RowCodes", "decode_block", "decode_codes", "flat_ids"]

# (all code points, per-row start into them, per-row count)
RowCodes = tuple[np.ndarray, np.ndarray, np.ndarray]


def flat_ids(ids: Sequence[Sequence[int]] | np.ndarray | EncodedBatch) -> tuple[np.ndarray, np.ndarray]:
    """All ids as one int64 array plus the per-row lengths.

    Raises:
        CodecError: ``ids`` is neither id lists, an ``(N, L)`` integer array nor an :class:`EncodedBatch`.
    """
    if isinstance(ids, EncodedBatch):
        return ids.ids[ids.attention_mask].astype(np.int64), ids.lengths.astype(np.int64)
    if isinstance(ids, np.ndarray):
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise CodecError(
                f"decode: ids have shape {ids.shape} and dtype {ids.dtype}, expected an (N, L) integer "
                "array or a sequence of id lists"
            )
        return ids.astype(np.int64).ravel(), np.full(ids.shape[0], ids.shape[1], dtype=np.int64)
    try:
        rows = ids if isinstance(ids, list) else list(ids)
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(
            f"decode: ids must be a sequence of integer id lists, an (N, L) array or an EncodedBatch "
            f"({exc}); for one row pass [ids]"
        ) from exc
    return flat, lengths


@dataclass(frozen=True, slots=True)
class PieceTable:
    """Per token id, what the tokenizer's decoder emits for it: code points ("char") or bytes ("reference").

    Attributes:
        values: Every token's piece, concatenated (``<u4`` code points or ``uint8`` bytes).
        offsets: ``(V,)`` start of each token's piece in ``values``.
        lengths: ``(V,)`` length of each token's piece.
        code_points: True when ``values`` are code points already (the "char" pipeline's Fuse decoder).
        ascii_only: True when ``values`` are bytes below 0x80 (one byte per character).
    """

    values: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    code_points: bool
    ascii_only: bool

    @classmethod
    def build(cls, tokenizer: Tokenizer, pipeline: str) -> PieceTable | None:
        """The table of ``tokenizer``; None when it has added tokens (their text is not in the model)."""
        vocab_len = tokenizer.get_vocab_size()
        if tokenizer.get_vocab_size(with_added_tokens=True) != tokenizer.get_vocab_size(False):
            return None
        pieces: list[bytes] = []
        inverse = {c: b for b, c in byte_level_map().items()}
        for i in range(vocab_len):
            token = tokenizer.id_to_token(i) or ""
            if pipeline == "char":
                pieces.append(token.encode("utf-32-le"))  # Fuse: the token's characters, in order
            elif all(c in inverse for c in token):
                pieces.append(bytes(inverse[c] for c in token))  # ByteLevel: mapped bytes
            else:
                pieces.append(token.encode("utf-8"))  # ByteLevel passes unmapped tokens through
        dtype = "<u4" if pipeline == "char" else np.uint8
        values = np.frombuffer(b"".join(pieces), dtype=dtype)
        size = np.dtype(dtype).itemsize
        lengths = np.fromiter((len(p) // size for p in pieces), dtype=np.int64, count=len(pieces))
        return cls(
            values=values,
            offsets=np.cumsum(lengths) - lengths,
            lengths=lengths,
            code_points=pipeline == "char",
            ascii_only=pipeline == "reference" and bool(values.size == 0 or values.max() < 0x80),
        )

    def gather(self, flat: np.ndarray, row_start: np.ndarray, row_end: np.ndarray) -> RowCodes | None:
        """Decode every row by table lookup; None when the rows' bytes must be decoded one row at a time."""
        size_of = self.lengths[flat]
        cum = np.concatenate(([0], np.cumsum(size_of)))
        index = np.repeat(self.offsets[flat] - cum[:-1], size_of) + np.arange(cum[-1])
        out = self.values[index]
        first, last = cum[row_start], cum[row_end]
        if self.code_points or self.ascii_only or out.size == 0:
            # Fuse: code points already; ASCII-only byte-level vocabularies: one byte per character;
            # rows that are all empty have nothing to decode (and no first byte to inspect below).
            return out, first, last - first
        # Rows that are each valid UTF-8 decode together; a row starting with a continuation byte
        # would glue onto the previous one, so those batches take the per-row path.
        starts_mid = (last > first) & ((out[np.minimum(first, max(out.size - 1, 0))] & 0xC0) == 0x80)
        if starts_mid.any():
            return None
        try:
            text = out.tobytes().decode("utf-8")
        except UnicodeDecodeError:
            return None
        lead = np.concatenate(([0], np.cumsum((out & 0xC0) != 0x80)))
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        return codes, lead[first], lead[last] - lead[first]


def decode_codes(
    tokenizer: Tokenizer,
    table: PieceTable | None,
    flat: np.ndarray,
    row_start: np.ndarray,
    row_end: np.ndarray,
) -> RowCodes:
    """Decode every row: (all code points, per-row start into them, per-row count).

    Uses ``table`` where it can (vectorized, equal to the tokenizer's decoder), else ``decode_batch``.
    """
    if table is not None:
        gathered = table.gather(flat, row_start, row_end)
        if gathered is not None:
            return gathered
    rows = [flat[a:b].tolist() for a, b in zip(row_start.tolist(), row_end.tolist(), strict=True)]
    # Keep special tokens: their text makes the row's length wrong, so a row holding one is reported
    # invalid (as the reference does) instead of the token being dropped silently.
    texts = tokenizer.decode_batch(rows, skip_special_tokens=False)
    counts = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype="<u4")
    return codes, np.cumsum(counts) - counts, counts


def decode_block(
    decoded: RowCodes,
    valid: np.ndarray,
    out: np.ndarray,
    *,
    limit: int,
    min_token: int,
    scale: float,
    order: str,
) -> np.ndarray:
    """Dequantize one block's decoded codes into ``out`` (``(B, T, D)``); return the block's validity.

    ``decoded`` is :func:`decode_codes`' ``(codes, starts, counts)``; a row is valid when it was, holds
    exactly ``T*D`` codes, and every code is below ``limit`` (the tokenizer's span).
    """
    codes, starts, counts = decoded
    _, t, d = out.shape
    width = t * d
    ok = valid & (counts == width)
    good = np.flatnonzero(ok)
    if good.size:
        values = codes[starts[good][:, None] + np.arange(width)]
        in_range = (values < limit).all(axis=1)
        ok[good[~in_range]] = False
        good, values = good[in_range], values[in_range]
        out[good] = dequantize(values, min_token=min_token, scale=scale, shape=(t, d), order=order)
    return ok
