"""The rank protocol of the callback's setup: rank 0 decides, every rank gets its outcome or its error."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from fasttok_plugin.fit import FitSource
from fasttok_plugin.fitting import FitSource as OldFitSource
from fasttok_plugin.lightning import TokenizerSource
from fasttok_plugin.lightning._distributed import RankZeroOutcome, check_same_fingerprint, decide_on_rank_zero


@dataclass
class _Strategy:
    """``broadcast`` records what this rank sent and returns what rank 0 sent (or its own object)."""

    from_rank_zero: Any = None
    sent: list[Any] = field(default_factory=list)

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        self.sent.append(obj)
        return obj if self.from_rank_zero is None else self.from_rank_zero


@dataclass
class _Trainer:
    global_rank: int
    strategy: _Strategy

    @property
    def is_global_zero(self) -> bool:
        return self.global_rank == 0


def test_one_protocol_under_both_names() -> None:
    assert TokenizerSource is FitSource is OldFitSource


def test_rank_zero_decides_and_the_other_ranks_only_receive() -> None:
    decided = RankZeroOutcome("abc", fitted=True)
    zero = _Trainer(0, _Strategy())
    assert decide_on_rank_zero(zero, lambda: decided) is decided
    assert zero.strategy.sent == [decided]
    one = _Trainer(1, _Strategy(from_rank_zero=decided))
    assert decide_on_rank_zero(one, lambda: pytest.fail("rank 1 must not decide")) is decided
    assert one.strategy.sent == [None]


def test_a_failure_on_rank_zero_is_raised_on_every_rank() -> None:
    error = ValueError("bad mixture")

    def fail() -> RankZeroOutcome:
        raise error

    zero = _Trainer(0, _Strategy())
    with pytest.raises(ValueError, match="bad mixture") as info:
        decide_on_rank_zero(zero, fail)
    assert info.value is error
    (sent,) = zero.strategy.sent
    assert sent.error is error
    assert sent.error_text == "ValueError: bad mixture"
    with pytest.raises(ValueError, match="bad mixture"):
        decide_on_rank_zero(_Trainer(1, _Strategy(from_rank_zero=sent)), lambda: pytest.fail("decided"))


def test_an_unpicklable_failure_reaches_the_other_ranks_as_text() -> None:
    class Unpicklable(RuntimeError):
        def __init__(self) -> None:
            super().__init__("lock held")
            self.lock = threading.Lock()

    def fail() -> RankZeroOutcome:
        raise Unpicklable

    zero = _Trainer(0, _Strategy())
    with pytest.raises(Unpicklable):
        decide_on_rank_zero(zero, fail)
    (sent,) = zero.strategy.sent
    assert sent.error is None
    assert sent.error_text == "Unpicklable: lock held"
    with pytest.raises(RuntimeError, match="failed on global rank 0: Unpicklable: lock held"):
        decide_on_rank_zero(_Trainer(1, _Strategy(from_rank_zero=sent)), lambda: pytest.fail("decided"))


def test_a_rank_with_another_fingerprint_fails_loudly() -> None:
    outcome = RankZeroOutcome("abc", fitted=False)
    check_same_fingerprint(_Trainer(1, _Strategy()), "abc", outcome)
    with pytest.raises(
        RuntimeError, match="global rank 1 computed fit fingerprint xyz but rank 0 computed abc"
    ):
        check_same_fingerprint(_Trainer(1, _Strategy()), "xyz", outcome)
