"""The rank protocol of the callback's setup: global rank 0 decides and fits, every rank follows.

Rank 0 runs the decision (preflight, fingerprint, load or fit) and broadcasts its outcome; the broadcast
is also the barrier, so no rank loads the tokenizer before rank 0 has written it. A failure on rank 0
becomes the same error on every rank instead of a hang in the broadcast, and a rank that computes
another fingerprint than rank 0 (other mixture files or statistics) fails loudly.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass

import pytorch_lightning as pl

__all__ = ["RankZeroOutcome", "check_same_fingerprint", "decide_on_rank_zero"]


@dataclass(frozen=True)
class RankZeroOutcome:
    """What global rank 0 decided in ``setup``; broadcast so every rank acts on the same decision.

    Attributes:
        fingerprint: The fit fingerprint rank 0 computed (None when it failed).
        fitted: Whether rank 0 fit a new tokenizer (else it found a matching one).
        error: Rank 0's exception, when it failed and the exception pickles.
        error_text: ``"<type>: <message>"`` of rank 0's exception ("" on success).
    """

    fingerprint: str | None
    fitted: bool
    error: BaseException | None = None
    error_text: str = ""


def decide_on_rank_zero(trainer: pl.Trainer, decide: Callable[[], RankZeroOutcome]) -> RankZeroOutcome:
    """Run ``decide`` on global rank 0 only and hand its outcome to every rank.

    Raises:
        Exception: Rank 0's own exception on rank 0; on the other ranks the same exception when it
            pickles, else a `RuntimeError` quoting it.
    """
    rank_zero_error: BaseException | None = None
    outcome: RankZeroOutcome | None = None
    if trainer.is_global_zero:
        try:
            outcome = decide()
        except Exception as exc:  # every rank must learn about it, or the others hang in the broadcast
            rank_zero_error = exc
            outcome = RankZeroOutcome(None, False, _picklable(exc), f"{type(exc).__name__}: {exc}")
    # The broadcast is the barrier: no rank loads before rank 0 has finished writing the tokenizer.
    outcome = trainer.strategy.broadcast(outcome, src=0)
    assert outcome is not None
    if outcome.error_text:
        if rank_zero_error is not None:
            raise rank_zero_error
        if outcome.error is not None:
            raise outcome.error
        raise RuntimeError(f"FastTokenizerCallback failed on global rank 0: {outcome.error_text}")
    return outcome


def check_same_fingerprint(trainer: pl.Trainer, fingerprint: str, outcome: RankZeroOutcome) -> None:
    """Raise `RuntimeError` when this rank's fingerprint is not rank 0's."""
    if fingerprint != outcome.fingerprint:
        raise RuntimeError(
            f"global rank {trainer.global_rank} computed fit fingerprint {fingerprint} but rank 0 "
            f"computed {outcome.fingerprint}: the ranks see different mixture files or dataset "
            "statistics; make every rank read the same mixture and datasets"
        )


def _picklable(exc: BaseException) -> BaseException | None:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return None
    return exc
