"""FAST action codec: DCT + quantization + BPE, batch-first and compatible with the reference files.

Reference (read for this module, 2026-11): Physical Intelligence's ``UniversalActionProcessor`` in
``processing_action_tokenizer.py`` of the Hugging Face repo ``physical-intelligence/fast``
(https://huggingface.co/physical-intelligence/fast/blob/main/processing_action_tokenizer.py; the same file
is vendored in openpi forks and loaded by LeRobot ``pi0_fast`` / OpenTau through
``AutoProcessor.from_pretrained(..., trust_remote_code=True)``). What it does, step by step:

- ``fit``: per chunk ``dct(a, axis=0, norm="ortho").flatten()`` (row-major: time-major coefficients),
  ``min_token``/``max_token`` of ``np.around(coeff * scale)`` over the corpus, asserts
  ``max - min <= vocab_size``; a generator yields ``"".join(map(chr, np.around(c * scale) - min_token))``
  per chunk into ``ByteLevelBPETokenizer()._tokenizer.train_from_iterator`` with
  ``BpeTrainer(vocab_size, min_frequency=2, special_tokens=[], initial_alphabet=[chr(0)..chr(max-min)],
  max_token_length=10000)``. It calls the *inner* ``Tokenizer.train_from_iterator`` on purpose, so the
  custom alphabet is kept (``ByteLevelBPETokenizer.train_from_iterator`` and transformers'
  ``PreTrainedTokenizerFast.train_new_from_iterator`` would replace it with ``ByteLevel.alphabet()``
  for a ByteLevel pre-tokenizer; the reference uses neither). The result is wrapped in
  ``PreTrainedTokenizerFast(tokenizer_object=..., clean_up_tokenization_spaces=False)``, which does not
  change ``tokenizer.json`` (checked with transformers 5.24: ``save_pretrained`` writes exactly
  ``Tokenizer.save(path)``).
- ``__call__``: batched ``dct(x, axis=1, norm="ortho")``, ``np.around(. * scale)``, then per chunk
  ``chr`` of ``max(v - min_token, 0)`` (no upper clamp) and one tokenizer call per chunk.
- ``decode``: per row ``tokenizer.decode(ids)``, ``ord`` of every character ``+ min_token``, reshape
  ``(T, D)``, ``idct(. / scale, axis=0, norm="ortho")``; on any error it prints and returns zeros.
- Files: ``processor_config.json`` (``scale``, ``vocab_size``, ``min_token``, ``time_horizon``,
  ``action_dim``, ``processor_class``, ``auto_map``) and the tokenizer files, flat beside it with
  transformers 4.x (``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``) and under
  ``bpe_tokenizer/`` with transformers 5.x (``tokenizer.json``, ``tokenizer_config.json``).

The ``"reference"`` pipeline rebuilds exactly that tokenizer with the ``tokenizers`` library alone
(``ByteLevelBPETokenizer`` is part of ``tokenizers``), so on the same chunks it writes a byte-identical
``tokenizer.json``. The default ``"char"`` pipeline fixes the reference's defects: no byte-level
pre-tokenizer (merges may span the whole chunk, every value of the fitted range is one alphabet character),
and a ``Fuse`` decoder.

Streaming fit: each incoming batch is validated, transformed and quantized immediately; only the compact
integers (int16 when they fit, else int32) are kept until the global ``min_token`` is known, then they
are turned into strings batch by batch while the BPE trainer consumes them. The float corpus is never
held in memory at once, and the iterable is read exactly once (a one-shot generator works).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Final

import numpy as np
from scipy.fft import dct, idct
from tokenizers import ByteLevelBPETokenizer, Tokenizer, decoders, models
from tokenizers.trainers import BpeTrainer

from fasttok_plugin.atomic import replace_directory, write_text_atomic
from fasttok_plugin.errors import CodecError, TokenizerFormatError

__all__ = [
    "PIPELINES",
    "CodecError",
    "DecodedBatch",
    "EncodedBatch",
    "FastTokenizer",
    "TokenizerFormatError",
]

logger = logging.getLogger(__name__)

PIPELINES: Final = ("char", "reference")
FORMAT_VERSION: Final = 1
SIDECAR_NAME: Final = "fasttok.json"
PROCESSOR_CONFIG_NAME: Final = "processor_config.json"
HF_MODULE_NAME: Final = "processing_fasttok"
HF_CLASS_NAME: Final = "UniversalActionProcessor"
# transformers 5.x saves the ProcessorMixin attribute ``bpe_tokenizer`` into this subfolder.
TOKENIZER_SUBFOLDER: Final = "bpe_tokenizer"
# Python strings may hold lone surrogates but Rust (tokenizers) and UTF-8 cannot: the first code point
# of the surrogate block bounds every alphabet.
_SURROGATE_START: Final = 0xD800
_MAX_LISTED_ROWS: Final = 20
_STRING_BATCH: Final = 4096
_DECODE_BLOCK: Final = 256


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
    """

    actions: np.ndarray
    valid: np.ndarray
    invalid_rows: tuple[int, ...]


def _format_rows(rows: Sequence[int]) -> str:
    """Row indices for an error message, capped so a corrupt corpus does not flood the log."""
    shown = ", ".join(str(r) for r in rows[:_MAX_LISTED_ROWS])
    more = f" and {len(rows) - _MAX_LISTED_ROWS} more" if len(rows) > _MAX_LISTED_ROWS else ""
    return f"{shown}{more}"


def _as_batch(
    chunks: Any, *, expected: tuple[int | None, int | None], what: str, allow_2d: bool, offset: int = 0
) -> np.ndarray:
    """Validate one ``(N, T, D)`` batch and return it as a float array in the dtype the DCT uses.

    float32 stays float32 and float64 stays float64 (the reference runs ``dct`` in the input dtype, so
    keeping it keeps the rounding identical); float16 is widened to float32 and integers to float64,
    which is what scipy.fft does with them.
    """
    t_exp, d_exp = expected
    shape_hint = f"(N, {t_exp if t_exp is not None else 'T'}, {d_exp if d_exp is not None else 'D'})"
    try:
        array = np.asarray(chunks)
    except Exception as exc:  # e.g. ragged nested lists
        raise CodecError(
            f"{what}: cannot read the chunks as an array ({exc}); expected shape {shape_hint}"
        ) from exc
    if array.dtype.kind not in "fiu":
        raise CodecError(
            f"{what}: chunks have dtype {array.dtype}, expected a real float (or integer) array of shape "
            f"{shape_hint}"
        )
    if array.ndim == 2 and allow_2d:
        array = array[None]
    if array.ndim != 3:
        hint = " (for a list of (T, D) chunks pass np.stack(chunks))" if array.ndim == 2 else ""
        raise CodecError(f"{what}: chunks have shape {array.shape}, expected {shape_hint}{hint}")
    n, t, d = array.shape
    if t == 0 or d == 0:
        raise CodecError(f"{what}: chunks have shape {array.shape} with an empty axis, expected {shape_hint}")
    if (t_exp is not None and t != t_exp) or (d_exp is not None and d != d_exp):
        raise CodecError(
            f"{what}: chunks have shape {array.shape}, expected {shape_hint} (the tokenizer was fit on "
            f"chunks of {t_exp} steps x {d_exp} dims)"
        )
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    elif array.dtype.kind in "iu":
        array = array.astype(np.float64)
    if n:
        bad = ~np.isfinite(array).all(axis=(1, 2))
        if bad.any():
            rows = (np.flatnonzero(bad) + offset).tolist()
            raise CodecError(
                f"{what}: {len(rows)} chunk(s) contain NaN or Inf, rows {_format_rows(rows)}; drop or repair "
                "them (check the normalization statistics) before tokenizing"
            )
    return array


def _quantize(array: np.ndarray, scale: float) -> np.ndarray:
    """DCT-II (ortho) along time, time-major flatten, ``round(x * scale)`` -> ``(N, T*D)`` int64."""
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


def _strings(codes: np.ndarray) -> list[str]:
    """One string per row of non-negative code points, built without per-element Python."""
    n, width = codes.shape
    if n == 0:
        return []
    text = np.ascontiguousarray(codes, dtype="<u4").tobytes().decode("utf-32-le")
    return [text[i * width : (i + 1) * width] for i in range(n)]


def _byte_level_map() -> dict[int, str]:
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


def _representable(tokenizer: Tokenizer, pipeline: str, limit: int) -> np.ndarray:
    """``mask[v]``: the code ``v`` (value ``min_token + v``) encodes to ids that decode back to it."""
    vocab = tokenizer.get_vocab()
    limit = min(limit, _SURROGATE_START - 1)
    mask = np.zeros(limit + 1, dtype=bool)
    if pipeline == "char":
        for v in range(limit + 1):
            mask[v] = chr(v) in vocab
    else:
        byte_map = _byte_level_map()
        for v in range(limit + 1):
            mask[v] = all(byte_map[b] in vocab for b in chr(v).encode("utf-8"))
    return mask


def _nearest_remap(mask: np.ndarray) -> np.ndarray:
    """Lookup table sending every code to itself if representable, else to the nearest representable one."""
    good = np.flatnonzero(mask)
    if good.size == 0:
        raise TokenizerFormatError("the tokenizer vocabulary represents no value at all")
    codes = np.arange(mask.size)
    right = np.searchsorted(good, codes).clip(0, good.size - 1)
    left = (right - 1).clip(0, good.size - 1)
    pick_left = np.abs(codes - good[left]) <= np.abs(good[right] - codes)
    return np.where(pick_left, good[left], good[right]).astype(np.int64)


def _build_tokenizer(pipeline: str) -> Tokenizer:
    """An untrained BPE tokenizer for ``pipeline`` (``"char"`` or ``"reference"``)."""
    if pipeline == "reference":
        # Exactly what the reference trains: the inner Tokenizer of ByteLevelBPETokenizer() (ByteLevel
        # pre-tokenizer, decoder and post-processor with their default options).
        return ByteLevelBPETokenizer()._tokenizer
    tokenizer = Tokenizer(models.BPE())
    # No pre-tokenizer: a chunk is one "word", so merges may span it and every character is an alphabet
    # entry. Fuse concatenates tokens on decode (the default decoder would join them with spaces).
    tokenizer.decoder = decoders.Fuse()
    return tokenizer


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenizerFormatError(f"{path}: not readable JSON ({exc})") from exc


def _json_dumps(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


class FastTokenizer:
    """A fitted FAST action tokenizer (DCT + quantization + BPE) that encodes and decodes in batches.

    Build one with :meth:`fit` or :meth:`load`. Attribute names follow the reference processor.

    Attributes:
        scale: multiplier applied to DCT coefficients before rounding.
        vocab_size: BPE vocabulary size requested at fit.
        min_token: smallest quantized coefficient of the fit corpus (code 0).
        max_token: largest value the tokenizer represents (codes ``0 .. max_token - min_token``).
        time_horizon: chunk length ``T`` (None when a reference directory did not record it).
        action_dim: action dimension ``D`` (None when a reference directory did not record it).
        pipeline: ``"char"`` or ``"reference"``.
        metadata: free-form sidecar payload saved in ``fasttok.json``.
        settings: fit settings (``min_frequency``, ``max_token_length``, ...), saved in the sidecar.
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
    ) -> None:
        if pipeline not in PIPELINES:
            raise CodecError(f"pipeline={pipeline!r} is not one of {PIPELINES}")
        self.tokenizer = tokenizer
        self.scale = scale
        self.vocab_size = vocab_size
        self.min_token = min_token
        self.time_horizon = time_horizon
        self.action_dim = action_dim
        self.pipeline = pipeline
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.settings: dict[str, Any] = dict(settings or {})
        limit = (max_token - min_token) if max_token is not None else vocab_size
        mask = _representable(tokenizer, pipeline, limit)
        if max_token is None:
            # A reference directory does not record max_token: use the largest representable code.
            good = np.flatnonzero(mask)
            if good.size == 0:
                raise TokenizerFormatError("the tokenizer vocabulary represents no value at all")
            mask = mask[: int(good[-1]) + 1]
        self.max_token = min_token + mask.size - 1
        self._remap = _nearest_remap(mask)
        self._holes = int((~mask).sum())
        self._vocab_len = tokenizer.get_vocab_size()
        self._table: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._ascii_table = False

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
    ) -> FastTokenizer:
        """Fit a tokenizer on action chunks.

        Args:
            chunks: an ``(N, T, D)`` array, or an iterable of such batches (read once, streamed).
            vocab_size: BPE vocabulary size; must exceed ``max_token - min_token``.
            scale: multiplier applied to DCT coefficients before rounding.
            min_frequency: minimum pair count for a BPE merge (reference: 2).
            max_token_length: longest merged token in characters (reference: 10000).
            pipeline: ``"char"`` (default, full alphabet, no pre-tokenizer) or ``"reference"``
                (byte-identical to the reference ``UniversalActionProcessor.fit``).
            show_progress: show the tokenizers trainer's progress bar.

        Returns:
            The fitted tokenizer.

        Raises:
            CodecError: bad shapes/dtypes, NaN/Inf rows, no chunks, or a value range the vocabulary
                cannot hold.
        """
        if pipeline not in PIPELINES:
            raise CodecError(f"pipeline={pipeline!r} is not one of {PIPELINES}")
        if (
            isinstance(scale, bool)
            or not isinstance(scale, numbers.Real)
            or not (math.isfinite(scale) and scale > 0)
        ):
            raise CodecError(f"scale={scale!r} must be a positive finite number")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral) or vocab_size <= 0:
            raise CodecError(f"vocab_size={vocab_size!r} must be a positive integer")
        scale, vocab_size = float(scale), int(vocab_size)

        if hasattr(chunks, "shape") or isinstance(chunks, np.ndarray):
            batches: Iterable[Any] = (chunks,)
        else:
            batches = chunks
        stored: deque[np.ndarray] = deque()
        shape: tuple[int | None, int | None] = (None, None)
        lo, hi, n_total = None, None, 0
        for batch in batches:
            array = _as_batch(batch, expected=shape, what="fit", allow_2d=False, offset=n_total)
            shape = (array.shape[1], array.shape[2])
            # Slices bound the float temporaries of the DCT to a few MB whatever the batch size.
            for start in range(0, array.shape[0], _STRING_BATCH):
                q = _quantize(array[start : start + _STRING_BATCH], scale)
                b_lo, b_hi = int(q.min()), int(q.max())
                lo = b_lo if lo is None else min(lo, b_lo)
                hi = b_hi if hi is None else max(hi, b_hi)
                cls._check_range(lo, hi, vocab_size, scale)  # fail early, before reading the rest
                small = np.int16 if (b_lo >= -(2**15) and b_hi < 2**15) else np.int32
                stored.append(q.astype(small))
                n_total += q.shape[0]
            del array
        if lo is None or hi is None:
            raise CodecError("fit: no chunks were given (expected an (N, T, D) array or batches of them)")
        if hi - lo + 100 > vocab_size:
            logger.warning(
                "the alphabet (%d values) is almost as large as vocab_size=%d: few merges are left; "
                "consider a larger vocab_size",
                hi - lo + 1,
                vocab_size,
            )

        def strings() -> Iterator[list[str]]:
            while stored:
                codes = stored.popleft()  # drop each batch once its strings are built
                for start in range(0, codes.shape[0], _STRING_BATCH):
                    yield _strings(codes[start : start + _STRING_BATCH].astype(np.int64) - lo)

        tokenizer = _build_tokenizer(pipeline)
        trainer = BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            show_progress=show_progress,
            special_tokens=[],
            initial_alphabet=[chr(i) for i in range(hi - lo + 1)],
            max_token_length=max_token_length,
        )
        tokenizer.train_from_iterator(strings(), trainer=trainer, length=n_total)
        logger.info(
            "fit %s tokenizer on %d chunks of %s: min_token=%d max_token=%d vocab=%d",
            pipeline,
            n_total,
            shape,
            lo,
            hi,
            tokenizer.get_vocab_size(),
        )
        return cls(
            tokenizer,
            scale=scale,
            vocab_size=vocab_size,
            min_token=lo,
            max_token=hi,
            time_horizon=shape[0],
            action_dim=shape[1],
            pipeline=pipeline,
            settings={
                "vocab_size": vocab_size,
                "scale": scale,
                "min_frequency": min_frequency,
                "max_token_length": max_token_length,
                "pipeline": pipeline,
                "n_chunks": n_total,
            },
        )

    @staticmethod
    def _check_range(lo: int, hi: int, vocab_size: int, scale: float) -> None:
        """Refuse a quantized range ``lo..hi`` that the alphabet or the vocabulary cannot hold."""
        span = hi - lo
        if span >= _SURROGATE_START:
            raise CodecError(
                f"quantized DCT values span {lo}..{hi} ({span + 1} values); a FAST alphabet must stay below "
                f"{_SURROGATE_START} characters (UTF-16 surrogates start there). Lower scale={scale} or "
                "check that the data is normalized (e.g. to [-1, 1])"
            )
        if span >= vocab_size:
            raise CodecError(
                f"quantized DCT values span {lo}..{hi} ({span + 1} values) but vocab_size={vocab_size}: "
                f"raise vocab_size above {span}, lower scale={scale}, or check that the data is normalized "
                "(e.g. to [-1, 1])"
            )

    # --------------------------------------------------------------- encode
    def _codes(self, chunks: Any) -> tuple[np.ndarray, int]:
        """Validated chunks -> ``(N, T*D)`` codes in ``0 .. max_token - min_token`` and the clamp count."""
        array = _as_batch(chunks, expected=(self.time_horizon, self.action_dim), what="encode", allow_2d=True)
        codes = _quantize(array, self.scale) - self.min_token
        clipped = np.clip(codes, 0, self._remap.size - 1)
        if self._holes:
            clipped = self._remap[clipped]
        # One comparison against the original codes: a value clipped onto a hole and then moved to its
        # neighbour is one changed value, not two.
        clamped = int(np.count_nonzero(clipped != codes))
        if clamped:
            logger.warning(
                "encode: %d quantized value(s) outside the fitted range %d..%d (or not representable by "
                "this %s tokenizer) were clamped to the nearest representable value",
                clamped,
                self.min_token,
                self.max_token,
                self.pipeline,
            )
        return clipped, clamped

    def _encode_ids(self, chunks: Any) -> tuple[list[list[int]], int]:
        """Token id lists of every chunk (one batched tokenizer call) and the clamp count."""
        codes, clamped = self._codes(chunks)
        texts = _strings(codes)
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        encodings = encode(texts, add_special_tokens=True)
        return [e.ids for e in encodings], clamped

    def encode(self, chunks: Any) -> list[list[int]]:
        """Encode ``(N, T, D)`` chunks (or one ``(T, D)`` chunk) to token id lists.

        Quantized values outside the fitted range are clamped, counted and logged (see
        :meth:`encode_padded` for the count).

        Raises:
            CodecError: wrong shape/dtype or NaN/Inf rows.
        """
        return self._encode_ids(chunks)[0]

    def encode_padded(self, chunks: Any, *, max_length: int | None = None, pad_id: int = 0) -> EncodedBatch:
        """Encode to a padded ``(N, L)`` int64 matrix for a model.

        Args:
            chunks: ``(N, T, D)`` chunks (or one ``(T, D)`` chunk).
            max_length: when given, ``L = max_length`` and longer rows are truncated (counted, logged).
            pad_id: id written after each row's end.

        Returns:
            The padded ids, lengths, attention mask and the truncation/clamp counts.
        """
        if max_length is not None and max_length < 0:
            raise CodecError(f"max_length={max_length} must be >= 0")
        rows, clamped = self._encode_ids(chunks)
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

    # --------------------------------------------------------------- decode
    def decode(
        self,
        ids: Sequence[Sequence[int]] | np.ndarray | EncodedBatch,
        *,
        time_horizon: int | None = None,
        action_dim: int | None = None,
        strict: bool = False,
    ) -> DecodedBatch:
        """Decode token ids back to ``(N, T, D)`` float32 actions.

        A row is valid only if its ids are known tokens and decode to exactly ``T * D`` values in the
        fitted range; invalid rows are NaN in ``actions`` and listed in ``invalid_rows``.

        Args:
            ids: id lists, an ``(N, L)`` array (every entry is a token), or an :class:`EncodedBatch`
                (its ``lengths`` are used).
            time_horizon: ``T``; defaults to the fitted value.
            action_dim: ``D``; defaults to the fitted value.
            strict: raise :class:`CodecError` if any row is invalid.

        Raises:
            CodecError: ``T``/``D`` unknown, or (``strict``) invalid rows.
        """
        t = time_horizon or self.time_horizon
        d = action_dim or self.action_dim
        if not t or not d:
            raise CodecError("decode: time_horizon and action_dim are unknown; pass them to decode()")
        flat, lengths = self._flat_ids(ids)
        n = lengths.size
        width = t * d
        valid = np.ones(n, dtype=bool)
        row_end = np.cumsum(lengths)
        row_start = row_end - lengths
        # Unknown or negative ids would be skipped (or overflow) inside tokenizers: mark their rows.
        bad_id = (flat < 0) | (flat >= self._vocab_len)
        if bad_id.any():
            valid[np.unique(np.repeat(np.arange(n), lengths)[bad_id])] = False
            flat = np.where(bad_id, 0, flat)
        actions = np.full((n, t, d), np.nan, dtype=np.float32)
        # Blocks of rows keep the temporaries cache-sized (one big gather is slower for large N).
        for b0 in range(0, n, _DECODE_BLOCK):
            b1 = min(n, b0 + _DECODE_BLOCK)
            first, last = int(row_start[b0]), int(row_end[b1 - 1])
            codes, starts, counts = self._decode_codes(
                flat[first:last], row_start[b0:b1] - first, row_end[b0:b1] - first
            )
            ok = valid[b0:b1] & (counts == width)
            good = np.flatnonzero(ok)
            if good.size:
                block = codes[starts[good][:, None] + np.arange(width)]
                in_range = (block < self._remap.size).all(axis=1)
                ok[good[~in_range]] = False
                good, block = good[in_range], block[in_range]
                coeff = (block.astype(np.float64) + self.min_token).reshape(-1, t, d) / self.scale
                actions[b0 + good] = idct(coeff, axis=1, norm="ortho").astype(np.float32)
            valid[b0:b1] = ok
        invalid = tuple(np.flatnonzero(~valid).tolist())
        if invalid:
            logger.warning(
                "decode: %d of %d row(s) did not decode to %d values (T=%d x D=%d) in the fitted range: "
                "rows %s",
                len(invalid),
                n,
                width,
                t,
                d,
                _format_rows(invalid),
            )
            if strict:
                raise CodecError(
                    f"decode: {len(invalid)} of {n} row(s) did not decode to exactly {width} values "
                    f"(T={t} x D={d}) in the fitted range: rows {_format_rows(invalid)}"
                )
        return DecodedBatch(actions=actions, valid=valid, invalid_rows=invalid)

    def _flat_ids(
        self, ids: Sequence[Sequence[int]] | np.ndarray | EncodedBatch
    ) -> tuple[np.ndarray, np.ndarray]:
        """All ids as one int64 array plus the per-row lengths."""
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

    def _decode_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Per token id: what the tokenizer's decoder emits for it (code points for "char", bytes for
        "reference"), as (flat table, offsets, lengths); None when the tokenizer has added tokens."""
        if self._table is not None:
            return self._table
        if self.tokenizer.get_vocab_size(with_added_tokens=True) != self.tokenizer.get_vocab_size(False):
            return None
        pieces: list[bytes] = []
        inverse = {c: b for b, c in _byte_level_map().items()}
        for i in range(self._vocab_len):
            token = self.tokenizer.id_to_token(i) or ""
            if self.pipeline == "char":
                pieces.append(token.encode("utf-32-le"))  # Fuse: the token's characters, in order
            elif all(c in inverse for c in token):
                pieces.append(bytes(inverse[c] for c in token))  # ByteLevel: mapped bytes
            else:
                pieces.append(token.encode("utf-8"))  # ByteLevel passes unmapped tokens through
        dtype = "<u4" if self.pipeline == "char" else np.uint8
        table = np.frombuffer(b"".join(pieces), dtype=dtype)
        size = np.dtype(dtype).itemsize
        lengths = np.fromiter((len(p) // size for p in pieces), dtype=np.int64, count=len(pieces))
        offsets = np.cumsum(lengths) - lengths
        self._table = (table, offsets, lengths)
        self._ascii_table = self.pipeline == "reference" and bool(table.size == 0 or table.max() < 0x80)
        return self._table

    def _decode_codes(
        self, flat: np.ndarray, row_start: np.ndarray, row_end: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decode every row: (all code points, per-row start into them, per-row count).

        Gathers each token's decoded piece from a lookup table (vectorized, equal to the tokenizer's
        decoder); falls back to ``decode_batch`` per row for tokenizers with added tokens or rows whose
        bytes are not valid UTF-8 on their own.
        """
        table = self._decode_table()
        if table is not None:
            values, offsets, sizes = table
            size_of = sizes[flat]
            cum = np.concatenate(([0], np.cumsum(size_of)))
            index = np.repeat(offsets[flat] - cum[:-1], size_of) + np.arange(cum[-1])
            out = values[index]
            first, last = cum[row_start], cum[row_end]
            if self.pipeline == "char" or self._ascii_table or out.size == 0:
                # Fuse: code points already; ASCII-only byte-level vocabularies: one byte per character;
                # rows that are all empty have nothing to decode (and no first byte to inspect below).
                return out, first, last - first
            # Rows that are each valid UTF-8 decode together; a row starting with a continuation byte
            # would glue onto the previous one, so those batches take the per-row path.
            starts_mid = (last > first) & ((out[np.minimum(first, max(out.size - 1, 0))] & 0xC0) == 0x80)
            if not starts_mid.any():
                try:
                    text = out.tobytes().decode("utf-8")
                except UnicodeDecodeError:
                    pass
                else:
                    lead = np.concatenate(([0], np.cumsum((out & 0xC0) != 0x80)))
                    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
                    return codes, lead[first], lead[last] - lead[first]
        rows = [flat[a:b].tolist() for a, b in zip(row_start.tolist(), row_end.tolist(), strict=True)]
        # Keep special tokens: their text makes the row's length wrong, so a row holding one is reported
        # invalid (as the reference does) instead of the token being dropped silently.
        texts = self.tokenizer.decode_batch(rows, skip_special_tokens=False)
        counts = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype="<u4")
        return codes, np.cumsum(counts) - counts, counts

    # ------------------------------------------------------------ save/load
    def _files(self) -> dict[str, str]:
        """Every file of a saved directory, name -> text (transformers 4.x layout + our sidecar)."""
        processor_config = {
            "action_dim": self.action_dim,
            "auto_map": {"AutoProcessor": f"{HF_MODULE_NAME}.{HF_CLASS_NAME}"},
            "min_token": self.min_token,
            "processor_class": HF_CLASS_NAME,
            "scale": self.scale,
            "time_horizon": self.time_horizon,
            "vocab_size": self.vocab_size,
        }
        tokenizer_config = {
            "added_tokens_decoder": {},
            "clean_up_tokenization_spaces": False,
            "model_max_length": 1000000000000000019884624838656,
            "processor_class": HF_CLASS_NAME,
            "tokenizer_class": "PreTrainedTokenizerFast",
        }
        sidecar = {
            "format_version": FORMAT_VERSION,
            "pipeline": self.pipeline,
            "scale": self.scale,
            "vocab_size": self.vocab_size,
            "min_token": self.min_token,
            "max_token": self.max_token,
            "time_horizon": self.time_horizon,
            "action_dim": self.action_dim,
            "settings": self.settings,
            "metadata": self.metadata,
        }
        hf_module = (Path(__file__).with_name("hf_processing.py")).read_text(encoding="utf-8")
        return {
            PROCESSOR_CONFIG_NAME: _json_dumps(processor_config),
            # Tokenizer.save's format (pretty JSON), which is also what transformers writes.
            "tokenizer.json": self.tokenizer.to_str(pretty=True),
            "tokenizer_config.json": _json_dumps(tokenizer_config),
            "special_tokens_map.json": "{}\n",
            SIDECAR_NAME: _json_dumps(sidecar),
            f"{HF_MODULE_NAME}.py": hf_module,
        }

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Save atomically in the reference processor layout plus the ``fasttok.json`` sidecar.

        The directory is built next to the target and renamed into place; an existing tokenizer
        directory is replaced only after the new one is complete.

        Raises:
            CodecError: the target exists and is not a tokenizer directory (nothing is overwritten).
        """
        target = Path(directory).absolute()
        if target.exists():
            if not target.is_dir():
                raise CodecError(f"save: {target} exists and is not a directory")
            entries = {p.name for p in target.iterdir()}
            if entries and not entries & {PROCESSOR_CONFIG_NAME, SIDECAR_NAME}:
                raise CodecError(
                    f"save: {target} is a non-empty directory that is not a tokenizer directory; "
                    "choose another path (nothing was overwritten)"
                )
        target.parent.mkdir(parents=True, exist_ok=True)
        files = self._files()
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            for name, text in files.items():
                write_text_atomic(tmp / name, text)
            replace_directory(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.info("saved %s tokenizer to %s", self.pipeline, target)
        return target

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> FastTokenizer:
        """Load a directory written by :meth:`save` or by the reference (transformers 4.x or 5.x layout).

        Only JSON files are read; no Python file in the directory is imported or executed.

        Raises:
            TokenizerFormatError: missing/unreadable files or values that disagree.
        """
        root = Path(directory)
        if not root.is_dir():
            raise TokenizerFormatError(f"{root}: not a directory (expected a FAST tokenizer directory)")
        config_path = root / PROCESSOR_CONFIG_NAME
        try:
            config = _read_json(config_path)
        except FileNotFoundError:
            raise TokenizerFormatError(
                f"{root}: no {PROCESSOR_CONFIG_NAME}; expected a FAST processor directory "
                "(processor_config.json + tokenizer.json)"
            ) from None
        if not isinstance(config, dict):
            raise TokenizerFormatError(f"{config_path}: expected a JSON object")
        sidecar: dict[str, Any] = {}
        if (root / SIDECAR_NAME).is_file():
            loaded = _read_json(root / SIDECAR_NAME)
            if not isinstance(loaded, dict):
                raise TokenizerFormatError(f"{root / SIDECAR_NAME}: expected a JSON object")
            sidecar = loaded
            version = sidecar.get("format_version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise TokenizerFormatError(
                    f"{root / SIDECAR_NAME}: format_version={version!r} is not supported by this "
                    f"fasttok_plugin (supports <= {FORMAT_VERSION}); upgrade fasttok-plugin"
                )

        tok_path = root / "tokenizer.json"
        if not tok_path.is_file():
            tok_path = root / TOKENIZER_SUBFOLDER / "tokenizer.json"
        if not tok_path.is_file():
            raise TokenizerFormatError(
                f"{root}: no tokenizer.json (looked for tokenizer.json and "
                f"{TOKENIZER_SUBFOLDER}/tokenizer.json)"
            )
        try:
            text = tok_path.read_text(encoding="utf-8")
            tokenizer = Tokenizer.from_str(text)
        except Exception as exc:
            raise TokenizerFormatError(f"{tok_path}: not a readable tokenizers file ({exc})") from exc
        document = json.loads(text)
        detected = cls._detect_pipeline(document, tok_path)
        pipeline = sidecar.get("pipeline", detected)
        if pipeline != detected:
            raise TokenizerFormatError(
                f"{root / SIDECAR_NAME}: pipeline={pipeline!r} but {tok_path.name} is a {detected!r} "
                "tokenizer"
            )

        def number(key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
            value = config.get(key)
            if value is None and optional:
                return None
            if isinstance(value, bool) or not isinstance(value, kind):
                raise TokenizerFormatError(
                    f"{config_path}: {key}={value!r} is missing or has the wrong type (expected {kind})"
                )
            return value

        scale = number("scale", (int, float))
        if not (math.isfinite(scale) and scale > 0):
            raise TokenizerFormatError(f"{config_path}: scale={scale!r} must be a positive number")
        vocab_size = number("vocab_size", int)
        min_token = number("min_token", int)
        time_horizon = number("time_horizon", int, optional=True)
        action_dim = number("action_dim", int, optional=True)
        for key in ("scale", "vocab_size", "min_token", "time_horizon", "action_dim"):
            if key in sidecar and sidecar[key] != config.get(key):
                raise TokenizerFormatError(
                    f"{root}: {key} is {config.get(key)!r} in {PROCESSOR_CONFIG_NAME} but {sidecar[key]!r} "
                    f"in {SIDECAR_NAME}; the directory was edited by hand or mixes two fits"
                )
        max_token = sidecar.get("max_token")
        if max_token is not None and (not isinstance(max_token, int) or max_token < min_token):
            raise TokenizerFormatError(f"{root / SIDECAR_NAME}: max_token={max_token!r} is invalid")
        metadata = sidecar.get("metadata", {})
        settings = sidecar.get("settings", {})
        return cls(
            tokenizer,
            scale=float(scale),
            vocab_size=vocab_size,
            min_token=min_token,
            max_token=max_token,
            time_horizon=time_horizon,
            action_dim=action_dim,
            pipeline=pipeline,
            metadata=metadata if isinstance(metadata, dict) else {},
            settings=settings if isinstance(settings, dict) else {},
        )

    @staticmethod
    def _detect_pipeline(document: Mapping[str, Any], path: Path) -> str:
        """Which pipeline a ``tokenizer.json`` document was built by, from its pre-tokenizer and decoder."""
        model = document.get("model") or {}
        if model.get("type") != "BPE":
            raise TokenizerFormatError(f"{path}: model type {model.get('type')!r}, expected a BPE tokenizer")
        pre = (document.get("pre_tokenizer") or {}).get("type")
        dec = (document.get("decoder") or {}).get("type")
        if pre == "ByteLevel" and dec == "ByteLevel":
            return "reference"
        if pre is None and dec == "Fuse":
            return "char"
        raise TokenizerFormatError(
            f"{path}: pre_tokenizer {pre!r} with decoder {dec!r} is neither the reference FAST layout "
            "(ByteLevel/ByteLevel) nor the char layout (none/Fuse)"
        )

    def __repr__(self) -> str:
        return (
            f"FastTokenizer(pipeline={self.pipeline!r}, T={self.time_horizon}, D={self.action_dim}, "
            f"scale={self.scale}, vocab_size={self.vocab_size}, min_token={self.min_token}, "
            f"max_token={self.max_token})"
        )
