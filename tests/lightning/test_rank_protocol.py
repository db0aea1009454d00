"""The rank protocol of the callback's setup: rank 0 decides, every rank gets its outcome or the same error.

The ranks here are threads joined by an in-memory channel with the semantics of the real collectives
(every rank blocks until all have called); the real two-process gloo runs are in test_ddp.py.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fasttok_plugin.errors import FasttokError, TokenizerMismatchError
from fasttok_plugin.fit import FitSource
from fasttok_plugin.fitting import FitSource as OldFitSource
from fasttok_plugin.lightning import TokenizerSource
from fasttok_plugin.lightning._copies import (
    LocalCopy,
    holds_exactly,
    is_writer,
    read_folder,
    share_folder,
)
from fasttok_plugin.lightning._distributed import (
    _SingleProcess,
    check_same_fingerprint,
    decide_on_rank_zero,
    on_every_rank,
)


class _Hub:
    """Shared state of the thread "ranks": one slot per rank and a barrier around each exchange."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.barrier = threading.Barrier(world_size, timeout=30)
        self.slots: list[Any] = [None] * world_size
        self.calls = 0


class _ThreadChannel:
    def __init__(self, hub: _Hub, rank: int) -> None:
        self.hub, self.rank, self.world_size = hub, rank, hub.world_size

    def all_gather(self, obj: Any) -> list[Any]:
        obj = pickle.loads(pickle.dumps(obj))  # what crosses a process group is a pickled copy
        self.hub.barrier.wait()
        self.hub.slots[self.rank] = obj
        self.hub.barrier.wait()
        out = list(self.hub.slots)
        self.hub.barrier.wait()
        return out

    def broadcast(self, obj: Any) -> Any:
        return self.all_gather(obj)[0]


def _run_ranks(
    world_size: int, body: Callable[[_ThreadChannel], Any]
) -> list[tuple[Any, BaseException | None]]:
    """Run ``body`` on every thread rank; return each rank's (result, exception)."""
    hub = _Hub(world_size)
    out: list[tuple[Any, BaseException | None]] = [(None, None)] * world_size

    def run(rank: int) -> None:
        try:
            out[rank] = (body(_ThreadChannel(hub, rank)), None)
        except BaseException as exc:
            out[rank] = (None, exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world_size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a rank hung"
    return out


def test_one_protocol_under_both_names() -> None:
    assert TokenizerSource is FitSource is OldFitSource


def test_rank_zero_decides_and_the_other_ranks_only_receive() -> None:
    decided: list[int] = []

    def body(channel: _ThreadChannel) -> Any:
        return decide_on_rank_zero(channel, lambda: decided.append(channel.rank) or {"fingerprint": "abc"})

    results = _run_ranks(3, body)
    assert decided == [0]
    assert [r for r, _ in results] == [{"fingerprint": "abc"}] * 3


def test_a_failure_on_rank_zero_is_raised_on_every_rank() -> None:
    error = TokenizerMismatchError("bad mixture", expected="a", found="b", tokenizer_dir=Path("t"))

    def fail() -> Any:
        raise error

    results = _run_ranks(2, lambda channel: decide_on_rank_zero(channel, fail))
    assert results[0][1] is error
    copy = results[1][1]
    assert type(copy) is TokenizerMismatchError
    assert str(copy) == "bad mixture"
    assert copy.expected == "a"


def test_a_failure_on_rank_one_alone_is_raised_on_every_rank() -> None:
    def body(channel: _ThreadChannel) -> Any:
        def step() -> str:
            if channel.rank == 1:
                raise FileExistsError("tokenizer_dir /node1/tok is not empty but holds no tokenizer")
            return "ok"

        return on_every_rank(channel, step)

    results = _run_ranks(3, body)
    errors = [exc for _, exc in results]
    assert all(type(exc) is FileExistsError for exc in errors), errors
    assert len({str(exc) for exc in errors}) == 1
    assert "/node1/tok" in str(errors[0])


def test_the_lowest_failing_rank_wins_so_every_rank_raises_the_same() -> None:
    def body(channel: _ThreadChannel) -> Any:
        def step() -> None:
            if channel.rank >= 1:
                raise FasttokError(f"broken on rank {channel.rank}")

        return on_every_rank(channel, step)

    errors = [exc for _, exc in _run_ranks(3, body)]
    assert {str(exc) for exc in errors} == {"broken on rank 1"}


def test_an_unpicklable_failure_reaches_every_rank_as_the_same_text() -> None:
    class Unpicklable(RuntimeError):
        def __init__(self) -> None:
            super().__init__("lock held")
            self.lock = threading.Lock()

    def body(channel: _ThreadChannel) -> Any:
        def step() -> None:
            if channel.rank == 1:
                raise Unpicklable

        return on_every_rank(channel, step)

    errors = [exc for _, exc in _run_ranks(2, body)]
    assert [type(exc) for exc in errors] == [RuntimeError, RuntimeError]
    assert {str(exc) for exc in errors} == {
        "FastTokenizerCallback failed on global rank 1: Unpicklable: lock held"
    }
    assert isinstance(errors[1].__cause__, Unpicklable)


def test_a_rank_with_another_fingerprint_is_a_mismatch_error() -> None:
    check_same_fingerprint(1, "abc", "abc", Path("tok"))
    with pytest.raises(
        TokenizerMismatchError, match="global rank 1 computed fit fingerprint xyz but rank 0"
    ) as info:
        check_same_fingerprint(1, "xyz", "abc", Path("tok"))
    assert isinstance(info.value, RuntimeError)
    assert (info.value.expected, info.value.found) == ("abc", "xyz")


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


FILES = {"fasttok.json": b'{"format_version": 1}\n', "tokenizer.json": b"{}", "sub/x.bin": b"\x00\x01"}


def test_rank_zero_bytes_reach_node_local_folders_and_shared_ones_are_left_alone(tmp_path) -> None:
    zero = _folder(tmp_path / "shared", FILES)
    before = {p: p.stat().st_mtime_ns for p in zero.rglob("*") if p.is_file()}
    # Ranks 0 and 1 share rank 0's folder; ranks 2 and 3 share an empty "node-local" one; rank 4 has its own.
    folders = [zero, zero, tmp_path / "node1", tmp_path / "node1", tmp_path / "rank4"]
    checked: list[tuple[int, bool]] = []

    def body(channel: _ThreadChannel) -> None:
        files = FILES if channel.rank == 0 else None
        files = channel.broadcast(files)
        share_folder(
            channel,
            folders[channel.rank],
            files,
            check=lambda needs_write: checked.append((channel.rank, needs_write)),
        )

    assert [exc for _, exc in _run_ranks(5, body)] == [None] * 5
    assert sorted(checked) == [(1, False), (2, True), (3, True), (4, True)]
    for folder in folders:
        assert holds_exactly(folder, FILES)
    assert {p: p.stat().st_mtime_ns for p in zero.rglob("*") if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging folders left behind"


def test_a_folder_the_check_refuses_fails_every_rank_and_stays_untouched(tmp_path) -> None:
    foreign = _folder(tmp_path / "run", {"NOTES.md": b"mine"})

    def refuse(needs_write: bool) -> None:
        if needs_write:
            raise FileExistsError(f"tokenizer_dir {foreign} is not empty but holds no tokenizer")

    def body(channel: _ThreadChannel) -> None:
        folder = tmp_path / "zero" if channel.rank == 0 else foreign
        share_folder(channel, folder, FILES, check=refuse)

    _folder(tmp_path / "zero", FILES)
    errors = [exc for _, exc in _run_ranks(2, body)]
    assert [type(e) for e in errors] == [FileExistsError, FileExistsError]
    assert str(errors[0]) == str(errors[1])
    assert read_folder(foreign) == {"NOTES.md": b"mine"}


def test_only_the_lowest_rank_per_folder_writes() -> None:
    copies = [
        LocalCopy("a", "/t", False),
        LocalCopy("a", "/t", False),
        LocalCopy("b", "/t", True),
        LocalCopy("b", "/t", True),
        LocalCopy("c", "/t", True),
    ]
    assert [is_writer(copies, r) for r in range(5)] == [False, False, True, False, True]


def test_a_single_process_run_raises_its_own_exceptions_unchanged() -> None:
    class Unpicklable(RuntimeError):
        def __init__(self) -> None:
            super().__init__("lock held")
            self.lock = threading.Lock()

    def fail() -> Any:
        raise Unpicklable

    channel = _SingleProcess()
    with pytest.raises(Unpicklable):
        decide_on_rank_zero(channel, fail)
    with pytest.raises(Unpicklable):
        on_every_rank(channel, fail)
    assert on_every_rank(channel, lambda: 7) == [7]
