"""The rank protocol of the callback's setup (DESIGN §14): rank 0 decides, every rank ends the same way.

Global rank 0 runs the decision (preflight, fingerprint, load or fit) while the other ranks wait in a
collective of a process group created for this handshake only, with an effectively infinite timeout
(Lightning's own ``_InfiniteBarrier`` pattern for ``prepare_data``): a fit longer than the job's
process-group timeout does not kill the job. Every step after that runs on every rank and ends with a
small all-gather of each rank's status, so a failure on any rank (a preflight error on rank 0, another
fingerprint or an unusable ``tokenizer_dir`` on rank 3) becomes the same error on every rank instead of a
hang or a "Connection closed by peer" on the others.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytorch_lightning as pl

from fasttok_plugin.errors import TokenizerMismatchError

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "RankChannel",
    "RankFailure",
    "check_same_fingerprint",
    "decide_on_rank_zero",
    "on_every_rank",
    "rank_channel",
]

log = logging.getLogger("fasttok_plugin.lightning.callback")

T = TypeVar("T")

#: Timeout of the handshake's own process group: "forever" (the value Lightning's _InfiniteBarrier uses).
HANDSHAKE_TIMEOUT = timedelta(days=10000)


class RankChannel(Protocol):
    """Collectives on small picklable objects between the ranks of one job."""

    rank: int
    world_size: int

    def broadcast(self, obj: Any) -> Any:
        """Every rank gets rank 0's ``obj``."""
        ...

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank gets the list of every rank's ``obj``, by rank."""
        ...


class _SingleProcess:
    rank = 0
    world_size = 1

    def broadcast(self, obj: Any) -> Any:
        return obj

    def all_gather(self, obj: Any) -> list[Any]:
        return [obj]


class _TorchGroup:
    """A gloo group with `HANDSHAKE_TIMEOUT`: works next to NCCL, never times out while rank 0 fits."""

    def __init__(self, group: Any) -> None:
        import torch.distributed as dist

        self._dist = dist
        self._group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)

    def broadcast(self, obj: Any) -> Any:
        box = [obj]
        self._dist.broadcast_object_list(box, src=0, group=self._group)
        return box[0]

    def all_gather(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        self._dist.all_gather_object(out, obj, group=self._group)
        return out


class _StrategyChannel:
    """Fallback for strategies without torch.distributed: the strategy's (timed) broadcast."""

    def __init__(self, trainer: pl.Trainer) -> None:
        self._strategy = trainer.strategy
        self.rank = int(trainer.global_rank)
        self.world_size = int(trainer.world_size)

    def broadcast(self, obj: Any) -> Any:
        return self._strategy.broadcast(obj, src=0)

    def all_gather(self, obj: Any) -> list[Any]:
        return [self._strategy.broadcast(obj, src=r) for r in range(self.world_size)]


@contextmanager
def rank_channel(trainer: pl.Trainer) -> Iterator[RankChannel]:
    """The channel of ``trainer``'s ranks for the setup handshake (a dedicated group while it lasts)."""
    if int(trainer.world_size) <= 1:
        yield _SingleProcess()
        return
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        yield _StrategyChannel(trainer)
        return
    # A timed barrier first: a rank that died before reaching the callback (say in its datamodule's
    # setup) fails the others here, instead of leaving them forever in the untimed group's rendezvous.
    trainer.strategy.barrier("FastTokenizerCallback.setup")
    # Entered by every rank right away (before rank 0 starts fitting), so creating it is quick.
    group = dist.new_group(backend="gloo", timeout=HANDSHAKE_TIMEOUT)
    try:
        yield _TorchGroup(group)
    finally:
        dist.destroy_process_group(group)


@dataclass(frozen=True)
class RankFailure:
    """One rank's exception, as sent to the other ranks.

    Attributes:
        rank: Global rank that failed.
        error: The exception itself when it pickles (every `FasttokError` does), else None.
        text: ``"<type>: <message>"`` of the exception.
    """

    rank: int
    error: BaseException | None
    text: str

    @classmethod
    def of(cls, rank: int, exc: BaseException) -> RankFailure:
        """The failure to send for ``exc`` raised on ``rank``."""
        return cls(rank, exc if _pickles(exc) else None, f"{type(exc).__name__}: {exc}")


def _pickles(exc: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return False
    return True


def _raise_first(failures: list[RankFailure | None], own: BaseException | None, channel: RankChannel) -> None:
    """Raise the lowest failing rank's error on every rank (the same type and message everywhere)."""
    failed = [f for f in failures if f is not None]
    if not failed:
        return
    first = failed[0]
    log.error(
        "FastTokenizerCallback: global rank %d of %d failed, every rank stops with its error: %s",
        first.rank,
        channel.world_size,
        first.text,
    )
    if first.error is None:
        error = RuntimeError(f"FastTokenizerCallback failed on global rank {first.rank}: {first.text}")
        raise error from (own if first.rank == channel.rank else None)
    if first.rank == channel.rank and own is not None:
        raise own  # this rank's own exception, with its traceback
    raise first.error


def decide_on_rank_zero(channel: RankChannel, decide: Callable[[], T]) -> T:
    """Run ``decide`` on rank 0 only while the others wait; every rank gets its result or its error.

    Raises:
        Exception: Rank 0's exception on every rank (itself when it pickles, else a `RuntimeError`
            quoting it).
    """
    if channel.world_size == 1:
        return decide()  # nothing to share: the exception propagates as it is
    result: T | None = None
    own: BaseException | None = None
    failure: RankFailure | None = None
    if channel.rank == 0:
        try:
            result = decide()
        except Exception as exc:  # every rank must learn about it, or the others wait forever
            own, failure = exc, RankFailure.of(0, exc)
    result, failure = channel.broadcast((result, failure))
    _raise_first([failure], own, channel)
    return result  # type: ignore[return-value]


def on_every_rank(channel: RankChannel, step: Callable[[], T]) -> list[T]:
    """Run ``step`` on every rank and gather the (small, picklable) results, by rank.

    Raises:
        Exception: The lowest failing rank's exception, on every rank.
    """
    if channel.world_size == 1:
        return [step()]
    result: T | None = None
    own: BaseException | None = None
    failure: RankFailure | None = None
    try:
        result = step()
    except Exception as exc:
        own, failure = exc, RankFailure.of(channel.rank, exc)
    gathered = channel.all_gather((result, failure))
    _raise_first([f for _, f in gathered], own, channel)
    return [r for r, _ in gathered]


def check_same_fingerprint(rank: int, fingerprint: str, rank_zero: str, tokenizer_dir: Path) -> None:
    """Raise `TokenizerMismatchError` when this rank's fit fingerprint is not rank 0's."""
    if fingerprint != rank_zero:
        raise TokenizerMismatchError(
            f"global rank {rank} computed fit fingerprint {fingerprint} but rank 0 computed {rank_zero}: "
            "the ranks see different mixture files or dataset statistics. Fix: make every rank read the "
            "same mixture and datasets",
            expected=rank_zero,
            found=fingerprint,
            tokenizer_dir=tokenizer_dir,
        )
