"""Held-out evaluation of a fitted tokenizer: token lengths, truncation, round-trip error, per head.

The held-out chunks are re-sampled (same seed, same stream) rather than kept from the fit pass, so
nothing but the fit corpus is ever held in memory. At most ``max_heldout_chunks_per_head`` of each head
are encoded (`FitPlan.eval_quota`): a few thousand measure the token-length percentiles as well as all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fasttok_plugin.fit._progress import PhaseClock, progress_bar

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.fit.plan import FitBatch, FitPlan
    from fasttok_plugin.heads import NormHeads

__all__ = ["HeadEvaluation", "HeldoutEvaluation", "evaluate_heldout"]

logger = logging.getLogger(__name__)

_EVAL_BATCH = 4096


@dataclass
class HeadEvaluation:
    """What the held-out chunks of one head measured (accumulated batch by batch).

    Attributes:
        lengths: Token counts, one array per evaluated batch.
        sq_error: Sum of squared decode errors over the head's native dims (normalized space).
        elements: Values ``sq_error`` sums over (decodable chunks x chunk size x native dim).
        invalid: Chunks that did not decode back to a full chunk.
        truncated: Chunks longer than ``max_action_tokens``.
        widths: Sum of the evaluated chunks' widths as tokenized (``native``: each chunk's native width;
            ``padded``: the head's native dim).
    """

    lengths: list[np.ndarray] = field(default_factory=list)
    sq_error: float = 0.0
    elements: int = 0
    invalid: int = 0
    truncated: int = 0
    widths: int = 0

    def all_lengths(self) -> np.ndarray:
        """Every token count of the head, concatenated."""
        return np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int64)


@dataclass(frozen=True, slots=True)
class HeldoutEvaluation:
    """The held-out measures of a fit: one `HeadEvaluation` per head, plus the clamped values."""

    heads: tuple[HeadEvaluation, ...]
    clamped: int


class _CodecNoise(logging.Filter):
    """Hides the codec's per-batch clamp / decode warnings during evaluation.

    The evaluation counts the same events itself (``clamped_values``, ``invalid_decodes``) and reports
    each total once, instead of one log line per batch.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("encode:", "decode:"))


def evaluate_heldout(
    tokenizer: FastTokenizer,
    plan: FitPlan,
    heads: NormHeads,
    *,
    max_action_tokens: int | None,
    progress: bool,
    clock: PhaseClock,
) -> HeldoutEvaluation:
    """Encode and decode the held-out chunks ``plan`` evaluates (at most ``max_heldout_chunks_per_head``).

    Sets ``plan.heldout_counts`` and ``plan.evaluated_counts``.

    Args:
        tokenizer: The fitted tokenizer.
        plan: The fit plan (its held-out side is re-sampled).
        heads: The norm heads (their native dims bound the round-trip error).
        max_action_tokens: The policy's token budget (None: truncation is not counted).
        progress: Show a progress bar.
        clock: Records the ``evaluate`` phase (without the sampling / normalization inside it).
    """
    expected = max(1, int(np.minimum(plan.eval_quota, plan.heldout_pool).sum()))
    bar = progress_bar(progress, expected, "evaluate held-out")
    acc = tuple(HeadEvaluation() for _ in heads.keys)
    native = np.array(heads.native_dims, dtype=np.int64)
    clamped = 0
    noise = _CodecNoise()
    codec_logger = logging.getLogger("fasttok_plugin.codec")
    codec_logger.addFilter(noise)
    try:
        with clock.phase_excluding("evaluate", ("sample", "normalize")):
            for batch in plan.heldout_batches():
                for lo in range(0, len(batch), _EVAL_BATCH):
                    clamped += _evaluate_slice(tokenizer, batch, lo, native, acc, max_action_tokens)
                bar.update(len(batch))
            bar.total = max(bar.n, 1)  # the held-out count is only known at the end
            bar.refresh()
    finally:
        codec_logger.removeFilter(noise)
        bar.close()
    if clamped:
        logger.warning(
            "%d held-out quantized value(s) fell outside the fitted token range and were clamped", clamped
        )
    return HeldoutEvaluation(acc, clamped)


def _evaluate_slice(
    tokenizer: FastTokenizer,
    batch: FitBatch,
    lo: int,
    native: np.ndarray,
    acc: tuple[HeadEvaluation, ...],
    max_action_tokens: int | None,
) -> int:
    """Round-trip ``batch[lo : lo + _EVAL_BATCH]`` into the heads' accumulators; return values clamped."""
    chunks = batch.normalized[lo : lo + _EVAL_BATCH]
    head = batch.head_index[lo : lo + _EVAL_BATCH]
    chunk_size = chunks.shape[1]
    if batch.action_dims is None:
        encoded = tokenizer.encode_padded(chunks)
        decoded = tokenizer.decode(encoded)
        dims = native[head]
    else:
        # native: every chunk is encoded, decoded and measured at the width the policy tokenizes.
        dims = batch.action_dims[lo : lo + _EVAL_BATCH]
        encoded = tokenizer.encode_padded(chunks, action_dims=dims)
        decoded = tokenizer.decode(encoded, action_dim=dims)
    width = decoded.actions.shape[2]
    dim_mask = np.arange(width)[None, None, :] < dims[:, None, None]
    diff = np.where(dim_mask, decoded.actions - chunks[:, :, :width], 0.0).astype(np.float64)
    row_error = np.square(diff).sum(axis=(1, 2))
    for h in np.unique(head):
        rows = head == h
        a = acc[int(h)]
        a.lengths.append(encoded.lengths[rows])
        a.widths += int(dims[rows].sum())
        good = rows & decoded.valid
        a.sq_error += float(row_error[good].sum())
        a.elements += chunk_size * int(dims[good].sum())
        a.invalid += int((rows & ~decoded.valid).sum())
        if max_action_tokens is not None:
            a.truncated += int((encoded.lengths[rows] > max_action_tokens).sum())
    return int(encoded.clamped_values)
