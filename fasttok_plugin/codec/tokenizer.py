"""FastTokenizer: a fitted FAST action tokenizer (DCT + quantization + BPE) that works in batches."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from tokenizers import Tokenizer

from fasttok_plugin.codec import _fit
from fasttok_plugin.codec._arrays import (
    INT64_MAX,
    MAX_HORIZON,
    MAX_PADDED_LENGTH,
    as_batch,
    check_int,
    host_array,
)
from fasttok_plugin.codec._decode import PieceTable, decode_block, decode_codes, flat_ids
from fasttok_plugin.codec._widths import (
    check_layout,
    decode_widths,
    native_decode,
    native_texts,
    report_invalid,
    row_widths,
)
from fasttok_plugin.codec.alphabet import nearest_remap, representable_codes
from fasttok_plugin.codec.batches import DecodedBatch, EncodedBatch, pad_rows
from fasttok_plugin.codec.files import read_directory, write_directory
from fasttok_plugin.codec.order import DEFAULT_ORDER, check_order
from fasttok_plugin.codec.pipelines import check_pipeline
from fasttok_plugin.codec.rounding import DEFAULT_ROUNDING, check_rounding, rounded_block
from fasttok_plugin.errors import CodecError

__all__ = ["FastTokenizer"]

# The codec logs under one name, "fasttok_plugin.codec": fitting filters its per-batch warnings by it.
logger = logging.getLogger(__package__)

# Rows decoded per block: keeps the temporaries cache-sized (one big gather is slower for large N).
_DECODE_BLOCK: Final = 256


class FastTokenizer:
    """A fitted FAST action tokenizer (DCT + quantization + BPE) that encodes and decodes in batches.

    Build one with :meth:`fit` or :meth:`load`. Attribute names follow the reference processor.

    Attributes:
        scale: multiplier applied to DCT coefficients before rounding.
        vocab_size: BPE vocabulary size requested at fit.
        min_token: smallest quantized coefficient of the fit corpus (code 0).
        max_token: largest value the tokenizer represents (codes ``0 .. max_token - min_token``).
        time_horizon: chunk length ``T`` (None when a reference directory did not record it).
        action_dim: action dimension ``D`` (None when not recorded, or a native fit of mixed widths).
        pipeline: ``"char"`` or ``"reference"``.
        layout: ``"padded"`` or ``"native"`` (mixed widths: encode / decode take the width per chunk).
        action_dims: ``native``: the chunk widths of the fit corpus (None for ``padded``).
        metadata: free-form sidecar payload saved in ``fasttok.json``.
        settings: fit settings (``min_frequency``, ``max_token_length``, ...), saved in the sidecar.
        order: flatten order of the coefficients (``"time"``: the reference's; see
            `fasttok_plugin.codec.order`).
        rounding: how encode rounds the scaled coefficients (``"nearest"``: the reference's; see
            `fasttok_plugin.codec.rounding`).
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        scale: float,
        vocab_size: int,
        min_token: int,
        max_token: int | None,
        time_horizon: int | None,
        action_dim: int | None,
        pipeline: str,
        metadata: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        order: str = DEFAULT_ORDER,
        layout: str = "padded",
        action_dims: Sequence[int] | None = None,
        rounding: str = DEFAULT_ROUNDING,
    ) -> None:
        check_pipeline(pipeline)
        self.order = check_order(order)
        self.rounding = check_rounding(rounding)
        self.layout = check_layout(layout)
        self.action_dims = tuple(int(w) for w in action_dims) if action_dims is not None else None
        self.tokenizer = tokenizer
        self.scale = scale
        self.vocab_size = vocab_size
        self.min_token = min_token
        self.time_horizon = time_horizon
        self.action_dim = action_dim
        self.pipeline = pipeline
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.settings: dict[str, Any] = dict(settings or {})
        span = (max_token - min_token) if max_token is not None else None
        mask = representable_codes(tokenizer, pipeline, span=span, vocab_size=vocab_size)
        self.max_token = min_token + mask.size - 1
        self._remap = nearest_remap(mask)
        self._usable = mask
        self._holes = int((~mask).sum())
        self._vocab_len = tokenizer.get_vocab_size()
        self._table: PieceTable | None = None

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(
        cls,
        chunks: np.ndarray | Iterable[np.ndarray],
        *,
        vocab_size: int = 1024,
        scale: float = 10.0,
        min_frequency: int = 2,
        max_token_length: int | None = 10000,
        pipeline: str = "char",
        show_progress: bool = False,
        order: str = DEFAULT_ORDER,
        layout: str = "padded",
        action_dims: Sequence[int] | np.ndarray | None = None,
        rounding: str = DEFAULT_ROUNDING,
    ) -> FastTokenizer:
        """Fit a tokenizer on action chunks.

        Args:
            chunks: an ``(N, T, D)`` array, or an iterable of such batches (read once, streamed). With
                ``layout="native"`` a batch may also be a pair ``(array, widths)`` and batches may differ
                in ``D``: row ``i`` is fit as ``array[i, :, :widths[i]]``.
            vocab_size: BPE vocabulary size; must exceed ``max_token - min_token``.
            scale: multiplier applied to DCT coefficients before rounding.
            min_frequency: minimum pair count for a BPE merge (reference: 2).
            max_token_length: longest merged token in characters (reference: 10000).
            pipeline: ``"char"`` (default, full alphabet, no pre-tokenizer) or ``"reference"``
                (byte-identical to the reference ``UniversalActionProcessor.fit``).
            show_progress: show the tokenizers trainer's progress bar.
            order: flatten order, ``"time"`` (the reference's), ``"dims"`` or ``"dc_dims"`` (see
                `fasttok_plugin.codec.order`); other orders than ``"time"`` need ``pipeline="char"``.
            layout: ``"padded"`` (default) or ``"native"`` (one tokenizer over chunks of mixed widths).
            action_dims: ``native``, one ``chunks`` array: each row's width (None: all ``D``).
            rounding: ``"nearest"`` (the reference's) or ``"token_aware"`` (``pipeline="char"``; encode
                shortens sequences, `fasttok_plugin.codec.rounding`); the BPE is fit the same either way.

        Returns:
            The fitted tokenizer.

        Raises:
            CodecError: bad shapes/dtypes/widths, NaN/Inf rows, no chunks, a value range the vocabulary
                cannot hold, scaled coefficients that overflow, or trainer settings out of range.
        """
        scale, vocab_size = _fit.fit_arguments(
            pipeline, scale, vocab_size, min_frequency, max_token_length, order, rounding
        )
        corpus = _fit.read_corpus(
            chunks, scale=scale, vocab_size=vocab_size, order=order, layout=layout, action_dims=action_dims
        )
        native = layout == "native"
        trainer = {"vocab_size": vocab_size, "min_frequency": min_frequency}
        trainer["max_token_length"] = max_token_length
        tokenizer = _fit.train_bpe(corpus, pipeline=pipeline, show_progress=show_progress, **trainer)
        settings = _fit.fit_record(
            corpus,
            tokenizer,
            scale=scale,
            pipeline=pipeline,
            order=order,
            layout=layout,
            rounding=rounding,
            **trainer,
        )
        return cls(
            tokenizer,
            scale=scale,
            vocab_size=vocab_size,
            min_token=corpus.lo,
            max_token=corpus.hi,
            time_horizon=corpus.shape[0],
            action_dim=(corpus.widths[0] if len(corpus.widths) == 1 else None) if native else corpus.shape[1],
            pipeline=pipeline,
            settings=settings,
            order=order,
            layout=layout,
            action_dims=corpus.widths if native else None,
            rounding=rounding,
        )

    # --------------------------------------------------------------- encode
    def _clip(self, codes: np.ndarray) -> tuple[np.ndarray, int]:
        """Codes clamped to ``0 .. max_token - min_token`` (holes moved to a neighbour); the change count."""
        clipped = np.clip(codes, 0, self._remap.size - 1)
        if self._holes:
            clipped = self._remap[clipped]
        # One comparison against the original codes: a value clipped onto a hole and then moved to its
        # neighbour is one changed value, not two.
        return clipped, int(np.count_nonzero(clipped != codes))

    def _texts(self, chunks: Any, action_dims: Any) -> tuple[list[str], int]:
        """Validated chunks -> one alphabet string per chunk, and the clamp count."""
        native = self.layout == "native"
        if action_dims is not None and not native:
            raise CodecError("encode: action_dims is only for layout='native' tokenizers; this one is padded")
        width = None if native else self.action_dim  # native: any width
        array = as_batch(
            host_array(chunks), expected=(self.time_horizon, width), what="encode", allow_2d=True
        )
        widths = row_widths(action_dims, array.shape[0], array.shape[2], what="encode")
        texts, clamped = native_texts(array, widths, self._block_codes)
        if clamped:
            logger.warning(
                "encode: %d quantized value(s) outside the fitted range %d..%d (or not representable by "
                "this %s tokenizer) were clamped to the nearest representable value",
                clamped,
                self.min_token,
                self.max_token,
                self.pipeline,
            )
        return texts, clamped

    def _block_codes(self, block: np.ndarray, offset: int) -> tuple[np.ndarray, int]:
        codec = (self.scale, self.min_token, self.order, self.rounding)
        return rounded_block(block, offset, *codec, self._clip, self._usable, self.tokenizer)

    def _encode_ids(self, chunks: Any, action_dims: Any = None) -> tuple[list[list[int]], int]:
        """Token id lists of every chunk (one batched tokenizer call) and the clamp count."""
        texts, clamped = self._texts(chunks, action_dims)
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        encodings = encode(texts, add_special_tokens=True)
        return [e.ids for e in encodings], clamped

    def encode(self, chunks: Any, *, action_dims: Any = None) -> list[list[int]]:
        """Encode ``(N, T, D)`` chunks (or one ``(T, D)`` chunk) to token id lists.

        ``chunks`` may be a numpy array or a torch tensor on any device and of any float dtype (it is
        copied to CPU float32 first).
        A ``native`` tokenizer takes any width ``D``, and ``action_dims`` (an int or one per chunk) encodes
        row ``i`` as ``chunks[i, :, :action_dims[i]]``; a ``padded`` one takes its fitted ``D`` only.

        Quantized values outside the fitted range are clamped, counted and logged (see
        :meth:`encode_padded` for the count). A chunk whose scaled DCT coefficients overflow (not finite,
        or beyond ``MAX_QUANTIZED``) is not clamped: it is refused, with its row index.

        Raises:
            CodecError: wrong shape/dtype/widths, NaN/Inf rows, or rows whose scaled coefficients overflow.
        """
        return self._encode_ids(chunks, action_dims)[0]

    def encode_padded(
        self, chunks: Any, *, max_length: int | None = None, pad_id: int = 0, action_dims: Any = None
    ) -> EncodedBatch:
        """Encode to a padded ``(N, L)`` int64 matrix for a model.

        Args:
            chunks: ``(N, T, D)`` chunks (or one ``(T, D)`` chunk).
            action_dims: ``native`` tokenizers: the width of each chunk (see :meth:`encode`).
            max_length: when given, ``L = max_length`` and longer rows are truncated (counted, logged).
            pad_id: id written after each row's end.

        Returns:
            The padded ids, lengths, attention mask and the truncation/clamp counts.
        """
        if max_length is not None:
            max_length = check_int(max_length, "max_length", minimum=0, maximum=MAX_PADDED_LENGTH)
        pad_id = check_int(pad_id, "pad_id", minimum=-INT64_MAX - 1, maximum=INT64_MAX)
        rows, clamped = self._encode_ids(chunks, action_dims)
        return pad_rows(rows, max_length=max_length, pad_id=pad_id, clamped=clamped)

    # --------------------------------------------------------------- decode
    def decode(
        self,
        ids: Sequence[Sequence[int]] | np.ndarray | EncodedBatch,
        *,
        time_horizon: int | None = None,
        action_dim: int | Sequence[int] | np.ndarray | None = None,
        strict: bool = False,
    ) -> DecodedBatch:
        """Decode token ids back to ``(N, T, D)`` float32 actions.

        A row is valid only if its ids are known tokens and decode to exactly ``T * D`` values in the
        fitted range; invalid rows are NaN in ``actions`` and listed in ``invalid_rows``.

        Args:
            ids: id lists, an ``(N, L)`` array (every entry is a token), or an :class:`EncodedBatch`
                (its ``lengths`` are used).
            time_horizon: ``T``; defaults to the fitted value.
            action_dim: ``D``; defaults to the fitted value. A ``native`` tokenizer also takes one width
                per row: ``actions`` is then ``(N, T, max width)``, row ``i`` zero beyond its width.
            strict: raise :class:`CodecError` if any row is invalid.

        Raises:
            CodecError: ``T``/``D`` unknown, per-row widths for a ``padded`` tokenizer, or (``strict``)
                invalid rows.
        """
        if time_horizon is not None:
            time_horizon = check_int(time_horizon, "decode: time_horizon", minimum=1, maximum=MAX_HORIZON)
        t = time_horizon or self.time_horizon
        flat, lengths = flat_ids(ids)
        d, widths = decode_widths(action_dim, self, t, lengths.size)
        if widths is None:
            actions, valid = self._decode_rows(flat, lengths, t, d)
            shape = f"{t * d} values (T={t} x D={d})"
        else:
            actions, valid = native_decode(flat, lengths, t, widths, self._decode_rows)
            shape = f"T={t} x its action_dim values"
        invalid = tuple(np.flatnonzero(~valid).tolist())
        if invalid:
            report_invalid(invalid, lengths.size, shape, strict=strict)
        return DecodedBatch(actions=actions, valid=valid, invalid_rows=invalid, action_dims=widths)

    def _decode_rows(
        self, flat: np.ndarray, lengths: np.ndarray, t: int, d: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``T x D`` (one width): ``(N, T, D)`` float32 (NaN where invalid) and the validity."""
        n = lengths.size
        valid = np.ones(n, dtype=bool)
        row_end = np.cumsum(lengths)
        row_start = row_end - lengths
        # Unknown or negative ids would be skipped (or overflow) inside tokenizers: mark their rows.
        bad_id = (flat < 0) | (flat >= self._vocab_len)
        if bad_id.any():
            valid[np.unique(np.repeat(np.arange(n), lengths)[bad_id])] = False
            flat = np.where(bad_id, 0, flat)
        actions = np.full((n, t, d), np.nan, dtype=np.float32)
        for b0 in range(0, n, _DECODE_BLOCK):
            b1 = min(n, b0 + _DECODE_BLOCK)
            first, last = int(row_start[b0]), int(row_end[b1 - 1])
            block = slice(b0, b1)
            valid[block] = self._decode_block(
                flat[first:last],
                row_start[block] - first,
                row_end[block] - first,
                valid[block],
                actions[block],
            )
        return actions, valid

    def _decode_block(
        self, flat: np.ndarray, row_start: np.ndarray, row_end: np.ndarray, valid: np.ndarray, out: np.ndarray
    ) -> np.ndarray:
        """Decode one block of rows into ``out`` (``(B, T, D)``, NaN-filled); return the block's validity."""
        if self._table is None:
            self._table = PieceTable.build(self.tokenizer, self.pipeline)
        codes = decode_codes(self.tokenizer, self._table, flat, row_start, row_end)
        return decode_block(
            codes,
            valid,
            out,
            limit=self._remap.size,
            min_token=self.min_token,
            scale=self.scale,
            order=self.order,
        )

    # ------------------------------------------------------------ save/load
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Save atomically in the reference processor layout plus the ``fasttok.json`` sidecar.

        The directory is built next to the target and renamed into place; an existing tokenizer
        directory is replaced only after the new one is complete.

        Raises:
            CodecError: the target exists and is not a tokenizer directory (nothing is overwritten).
        """
        return write_directory(self, directory)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> FastTokenizer:
        """Load a directory written by :meth:`save` or by the reference (transformers 4.x or 5.x layout).

        Only JSON files are read; no Python file in the directory is imported or executed.

        Raises:
            TokenizerFormatError: missing/unreadable files or values that disagree.
        """
        saved = read_directory(directory)
        # SavedTokenizer's fields are this constructor's arguments, one for one.
        fields = {f.name: getattr(saved, f.name) for f in dataclasses.fields(saved) if f.name != "tokenizer"}
        return cls(saved.tokenizer, **fields)

    def __repr__(self) -> str:
        order = f", order={self.order!r}" if self.order != DEFAULT_ORDER else ""
        order += f", rounding={self.rounding!r}" if self.rounding != DEFAULT_ROUNDING else ""
        return (
            f"FastTokenizer(pipeline={self.pipeline!r}, layout={self.layout!r}, T={self.time_horizon}, "
            f"D={self.action_dim}, "
            f"scale={self.scale}, vocab_size={self.vocab_size}, min_token={self.min_token}, "
            f"max_token={self.max_token}{order})"
        )
