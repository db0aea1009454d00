"""Streaming fit: chunks in, a trained BPE tokenizer out, reading the iterable exactly once.

Each incoming batch is validated, transformed and quantized immediately; only the compact integers
(int16 when they fit, else int32) are kept until the global ``min_token`` is known, then they are turned
into strings batch by batch while the BPE trainer consumes them. The float corpus is never held in memory
at once, and a one-shot generator works.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from tokenizers import Tokenizer
from tokenizers.trainers import BpeTrainer

from fasttok_plugin._validate import is_positive_int
from fasttok_plugin.codec._arrays import as_batch
from fasttok_plugin.codec._widths import check_layout, on_rows, row_widths, width_groups
from fasttok_plugin.codec.alphabet import code_strings
from fasttok_plugin.codec.order import DEFAULT_ORDER, check_order
from fasttok_plugin.codec.pipelines import build_tokenizer, check_pipeline
from fasttok_plugin.codec.quantize import check_range, quantize
from fasttok_plugin.codec.rounding import DEFAULT_ROUNDING, check_rounding
from fasttok_plugin.errors import CodecError

__all__ = [
    "MAX_TRAINER_INT",
    "MAX_VOCAB_SIZE",
    "QuantizedCorpus",
    "fit_arguments",
    "fit_record",
    "read_corpus",
    "train_bpe",
]

# The codec logs under one name, "fasttok_plugin.codec": fitting filters its per-batch warnings by it.
logger = logging.getLogger(__package__)

# Rows per DCT slice and per string batch: bounds the float temporaries to a few MB whatever the batch.
_STRING_BATCH: Final = 4096

#: Largest ``vocab_size`` the fit accepts. The tokenizers BPE trainer (0.23) reserves its tables for the
#: whole vocabulary before training, about 71 bytes a slot: 1e9 asked for 70.9 GB and aborted the process
#: in Rust. 2**24 (16.8M; measured 93 MB peak resident, 1 s, on a small corpus) is far beyond any
#: FAST vocabulary (alphabet < 55296 codes + merges).
MAX_VOCAB_SIZE: Final = 2**24
#: ``min_frequency`` and ``max_token_length`` are u64 / usize in the trainer; Python ints beyond raise a
#: raw OverflowError there.
MAX_TRAINER_INT: Final = 2**64 - 1


def fit_arguments(
    pipeline: str,
    scale: Any,
    vocab_size: Any,
    min_frequency: Any = 2,
    max_token_length: Any = None,
    order: Any = DEFAULT_ORDER,
    rounding: Any = DEFAULT_ROUNDING,
) -> tuple[float, int]:
    """Check the fit's pipeline, ``scale`` and trainer settings; return ``(float(scale), int(vocab_size))``.

    Raises:
        CodecError: Unknown pipeline, order or rounding, another order than ``"time"`` or rounding than
            ``"nearest"`` with the reference pipeline,
            ``scale`` not a positive finite number, ``vocab_size`` not in ``1..MAX_VOCAB_SIZE``,
            ``min_frequency`` not in ``0..MAX_TRAINER_INT``, ``max_token_length`` neither None nor in
            ``1..MAX_TRAINER_INT``.
    """
    check_pipeline(pipeline)
    check_order(order)
    if pipeline == "reference" and order != DEFAULT_ORDER:
        # The reference processor decodes time-major only: such a folder would decode to wrong actions.
        raise CodecError(
            f"order={order!r} needs pipeline='char': the reference pipeline is the reference FAST "
            "tokenizer exactly, which flattens time-major (order='time')"
        )
    check_rounding(rounding)
    if pipeline == "reference" and rounding != DEFAULT_ROUNDING:
        # The reference processor rounds to nearest: its ids would disagree with ours.
        raise CodecError(
            f"rounding={rounding!r} needs pipeline='char': the reference pipeline is the reference FAST "
            "tokenizer exactly, which rounds to nearest (rounding='nearest')"
        )
    if (
        isinstance(scale, bool)
        or not isinstance(scale, numbers.Real)
        or not (math.isfinite(scale) and scale > 0)
    ):
        raise CodecError(f"scale={scale!r} must be a positive finite number")
    if not is_positive_int(vocab_size) or int(vocab_size) > MAX_VOCAB_SIZE:
        raise CodecError(
            f"vocab_size={vocab_size!r} must be an integer in 1..{MAX_VOCAB_SIZE} (the BPE trainer reserves "
            "about 70 bytes per vocabulary slot up front; a FAST vocabulary never needs more)"
        )
    if not _is_int_in(min_frequency, 0, MAX_TRAINER_INT):
        raise CodecError(f"min_frequency={min_frequency!r} must be an integer in 0..{MAX_TRAINER_INT}")
    if max_token_length is not None and not _is_int_in(max_token_length, 1, MAX_TRAINER_INT):
        raise CodecError(
            f"max_token_length={max_token_length!r} must be None or an integer in 1..{MAX_TRAINER_INT}"
        )
    return float(scale), int(vocab_size)


def _is_int_in(value: Any, lo: int, hi: int) -> bool:
    """An integer (numpy ones count, ``bool`` does not) in ``lo..hi``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and lo <= int(value) <= hi


@dataclass(slots=True)
class QuantizedCorpus:
    """The fit corpus as compact quantized rows, kept until the global ``min_token`` (``lo``) is known.

    Attributes:
        batches: ``(n, T*D)`` int16/int32 quantized rows, consumed by :meth:`strings`.
        lo: Smallest quantized value (the fit's ``min_token``).
        hi: Largest quantized value (the fit's ``max_token``).
        n_chunks: Number of chunks read.
        shape: ``(T, D)`` of every chunk (``native``: ``D`` of the widest batch).
        widths: ``native``: the distinct chunk widths seen, ascending (empty for ``padded``).
    """

    lo: int
    hi: int
    n_chunks: int
    shape: tuple[int, int]
    batches: deque[np.ndarray] = field(default_factory=deque)
    widths: tuple[int, ...] = ()

    def strings(self) -> Iterator[list[str]]:
        """The chunks as alphabet strings (code ``v - lo``), dropping each stored batch once it is built."""
        while self.batches:
            codes = self.batches.popleft()
            for start in range(0, codes.shape[0], _STRING_BATCH):
                yield code_strings(codes[start : start + _STRING_BATCH].astype(np.int64) - self.lo)


def read_corpus(
    chunks: np.ndarray | Iterable[Any],
    *,
    scale: float,
    vocab_size: int,
    layout: str = "padded",
    action_dims: Any = None,
    order: str = DEFAULT_ORDER,
) -> QuantizedCorpus:
    """Validate and quantize every batch of ``chunks`` once, refusing a range the vocabulary cannot hold.

    With ``layout="native"`` a batch is an ``(N, T, D)`` array (every row ``D`` wide) or a pair
    ``(array, widths)`` with one width per row; batches may differ in ``D``, rows are quantized in blocks
    of one width (``chunk[:, :w]``), so the corpus holds chunks of mixed widths (FAST+ style).

    Raises:
        CodecError: Bad shapes/dtypes/widths, NaN/Inf rows, batches that disagree on ``(T, D)``
            (``native``: on ``T``), no chunks, or a quantized range too wide (raised as soon as it is
            seen, before the rest is read).
    """
    native = check_layout(layout) == "native"
    if action_dims is not None and not native:
        raise CodecError("fit: action_dims is only for layout='native' (padded chunks are all D wide)")
    if hasattr(chunks, "shape"):
        batches: Iterable[Any] = ((chunks, action_dims),) if native else (chunks,)
    else:
        batches = chunks
    stored: deque[np.ndarray] = deque()
    shape: tuple[int, int] | None = None
    lo, hi, n_total, seen = None, None, 0, set()
    for batch in batches:
        array, widths = _native_item(batch) if native else (batch, None)
        expected = (shape[0], None) if native and shape else (shape or (None, None))
        array = as_batch(array, expected=expected, what="fit", allow_2d=False, offset=n_total)
        width = max(array.shape[2], shape[1] if shape else 0) if native else array.shape[2]
        shape = (array.shape[1], width)
        if native:  # one width per row, checked for the whole batch
            widths = row_widths(widths, array.shape[0], array.shape[2], what="fit")
        for start in range(0, array.shape[0], _STRING_BATCH):
            part = array[start : start + _STRING_BATCH]
            if native:
                rows_w = widths[start : start + _STRING_BATCH]
                blocks = [(rows, part[rows, :, :w]) for w, rows in width_groups(rows_w)]
                seen.update(int(rows_w[rows[0]]) for rows, _ in blocks)
            else:
                blocks = [(None, part)]
            for rows, block in blocks:
                base = n_total + start
                q = on_rows(
                    lambda b, offset: quantize(b, scale, what="fit", offset=offset, order=order),
                    block,
                    rows,
                    base,
                )
                lo, hi = _store(q, stored, lo, hi, vocab_size, scale)
        n_total += array.shape[0]
        del array
    if lo is None or hi is None or shape is None:
        raise CodecError("fit: no chunks were given (expected an (N, T, D) array or batches of them)")
    if hi - lo + 100 > vocab_size:
        logger.warning(
            "the alphabet (%d values) is almost as large as vocab_size=%d: few merges are left; "
            "consider a larger vocab_size",
            hi - lo + 1,
            vocab_size,
        )
    return QuantizedCorpus(
        lo=lo, hi=hi, n_chunks=n_total, shape=shape, batches=stored, widths=tuple(sorted(seen))
    )


def _native_item(batch: Any) -> tuple[Any, Any]:
    """A native fit batch: ``array`` or ``(array, widths)``."""
    if isinstance(batch, tuple):
        if len(batch) != 2:
            raise CodecError(
                "fit: a native batch is an (N, T, D) array or a pair (array, widths), got a tuple of "
                f"{len(batch)}"
            )
        return batch
    return batch, None


def _store(
    q: np.ndarray, stored: deque[np.ndarray], lo: int | None, hi: int | None, vocab_size: int, scale: float
) -> tuple[int, int]:
    """Keep ``q`` compactly; return the running ``(lo, hi)`` (refused early when the range is too wide)."""
    b_lo, b_hi = int(q.min()), int(q.max())
    lo = b_lo if lo is None else min(lo, b_lo)
    hi = b_hi if hi is None else max(hi, b_hi)
    check_range(lo, hi, vocab_size, scale)  # fail early, before reading the rest
    small = np.int16 if (b_lo >= -(2**15) and b_hi < 2**15) else np.int32
    stored.append(q.astype(small))
    return lo, hi


def train_bpe(
    corpus: QuantizedCorpus,
    *,
    pipeline: str,
    vocab_size: int,
    min_frequency: int,
    max_token_length: int | None,
    show_progress: bool,
) -> Tokenizer:
    """Train the pipeline's BPE tokenizer on the corpus, with the reference's trainer settings.

    The alphabet is ``chr(0) .. chr(hi - lo)``, no special tokens; the inner ``Tokenizer`` is trained on
    purpose (as the reference does), so the custom alphabet is kept.
    """
    tokenizer = build_tokenizer(pipeline)
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        show_progress=show_progress,
        special_tokens=[],
        initial_alphabet=[chr(i) for i in range(corpus.hi - corpus.lo + 1)],
        max_token_length=max_token_length,
    )
    tokenizer.train_from_iterator(corpus.strings(), trainer=trainer, length=corpus.n_chunks)
    return tokenizer


def fit_record(
    corpus: QuantizedCorpus,
    tokenizer: Any,
    *,
    vocab_size: int,
    scale: float,
    min_frequency: int,
    max_token_length: int | None,
    pipeline: str,
    order: str,
    layout: str,
    rounding: str = DEFAULT_ROUNDING,
) -> dict[str, Any]:
    """Log the fit and return the ``settings`` a fitted tokenizer records in its sidecar.

    Only non-default orders and layouts are written, so a default fit's sidecar keeps its bytes.
    """
    logger.info(
        "fit %s tokenizer on %d chunks of %s: min_token=%d max_token=%d vocab=%d",
        pipeline,
        corpus.n_chunks,
        corpus.shape,
        corpus.lo,
        corpus.hi,
        tokenizer.get_vocab_size(),
    )
    settings: dict[str, Any] = {
        "vocab_size": vocab_size,
        "scale": scale,
        "min_frequency": min_frequency,
        "max_token_length": max_token_length,
        "pipeline": pipeline,
        "n_chunks": corpus.n_chunks,
    }
    if order != DEFAULT_ORDER:
        settings["order"] = order
    if layout == "native":
        settings["layout"] = layout
    if rounding != DEFAULT_ROUNDING:
        settings["rounding"] = rounding
    return settings
