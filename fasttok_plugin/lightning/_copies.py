"""Rank 0's tokenizer folder as bytes, and each rank's own copy of it (node-local disks work, DESIGN §14).

Rank 0 reads every file of the folder it fit or found (a few small files); the bytes travel with its
decision, and every other rank makes its own ``tokenizer_dir`` hold exactly those bytes before loading it:
a rank that shares rank 0's folder finds them already there; a rank with a node-local folder writes them.
Per folder (host and resolved path) only the lowest rank writes, so local ranks never race each other.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fasttok_plugin.atomic import write_bytes_atomic
from fasttok_plugin.lightning._distributed import RankChannel, on_every_rank
from fasttok_plugin.tokenizer_dir import write_tokenizer_dir

__all__ = [
    "LocalCopy",
    "RankZeroDecision",
    "holds_exactly",
    "is_writer",
    "local_copy",
    "read_folder",
    "share_folder",
    "write_copy",
]

log = logging.getLogger("fasttok_plugin.lightning.callback")


@dataclass(frozen=True)
class RankZeroDecision:
    """What global rank 0 decided in ``setup``; sent to every rank so all act on the same tokenizer.

    Attributes:
        fingerprint: The fit fingerprint rank 0 computed.
        fitted: Whether rank 0 fit a new tokenizer (else it found a matching one).
        files: Every file of rank 0's tokenizer folder (empty in a single-process run).
        portable: Rank 0's fingerprint without the datasets' file identities (paths, sizes, mtimes): what
            every rank must agree on, since nodes may hold their own copies of the datasets.
    """

    fingerprint: str
    fitted: bool
    files: Mapping[str, bytes] = field(default_factory=dict)
    portable: str = ""


def read_folder(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder``, by POSIX path relative to it."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


def holds_exactly(folder: Path, files: Mapping[str, bytes]) -> bool:
    """Whether ``folder`` holds exactly ``files`` (the same names, the same bytes, nothing else)."""
    if not folder.is_dir():
        return False
    try:
        return read_folder(folder) == dict(files)
    except OSError:
        return False


@dataclass(frozen=True)
class LocalCopy:
    """Where one rank's ``tokenizer_dir`` is, and whether it lacks rank 0's bytes."""

    host: str
    path: str
    needs_write: bool


def local_copy(folder: Path, files: Mapping[str, bytes], *, rank: int) -> LocalCopy:
    """This rank's `LocalCopy` of rank 0's ``files`` (rank 0's own folder is the original)."""
    needs_write = rank != 0 and not holds_exactly(folder, files)
    return LocalCopy(socket.gethostname(), str(folder.resolve()), needs_write)


def share_folder(
    channel: RankChannel, folder: Path, files: Mapping[str, bytes], *, check: Callable[[bool], None]
) -> None:
    """Make every rank's ``folder`` hold rank 0's ``files``; a failure on any rank fails every rank.

    Args:
        channel: The ranks of the job.
        folder: This rank's ``tokenizer_dir``.
        files: Rank 0's folder, from `read_folder`.
        check: Runs on every rank but 0 with "must this rank write its folder"; raises when the rank
            cannot use rank 0's tokenizer (another fingerprint, a folder that must not be replaced).
    """
    if channel.world_size == 1:
        return

    def plan() -> LocalCopy:
        copy = local_copy(folder, files, rank=channel.rank)
        if channel.rank != 0:
            check(copy.needs_write)
        return copy

    copies = on_every_rank(channel, plan)
    # A step of its own, so the ranks sharing a folder load it only once it is complete.
    on_every_rank(
        channel,
        lambda: write_copy(folder, files, rank=channel.rank) if is_writer(copies, channel.rank) else None,
    )


def is_writer(copies: Sequence[LocalCopy], rank: int) -> bool:
    """Whether ``rank`` writes its folder: the lowest rank needing a write among ranks sharing the folder."""
    mine = copies[rank]
    if not mine.needs_write:
        return False
    sharing = [
        r for r, c in enumerate(copies) if (c.host, c.path) == (mine.host, mine.path) and c.needs_write
    ]
    return sharing[0] == rank


def write_copy(folder: Path, files: Mapping[str, bytes], *, rank: int) -> None:
    """Make ``folder`` hold exactly ``files``, through the one tokenizer-folder writer.

    The caller has checked that ``folder`` may be replaced (missing, empty, or our tokenizer folder);
    `write_tokenizer_dir` checks again under the folder's lock and swaps the copy in crash-safely.
    """
    target = folder.absolute()

    def fill(staged: Path) -> None:
        for name, data in files.items():
            path = staged / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, data)

    write_tokenizer_dir(target, fill, error=FileExistsError, prefix=f"tokenizer_dir (global rank {rank}): ")
    log.info("global rank %d: wrote rank 0's tokenizer (%d files) to %s", rank, len(files), target)
