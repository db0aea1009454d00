"""Crash-safe writes: a reader sees the old file/directory or the new one, never half of either.

Everything is staged next to its target (same filesystem, so the final rename is atomic) and flushed to
disk before it is renamed into place. New files and folders get the modes the umask gives (``0666`` /
``0777`` masked), like any other file the user creates. Replacing a non-empty directory uses Linux's
``renameat2(RENAME_EXCHANGE)`` (one atomic swap) when the filesystem supports it; elsewhere the old
directory is first renamed to a fixed sibling ``.NAME.old`` (the journal), so a crash between the two
renames is undone by :func:`recover_replace` on the next write.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Final

__all__ = [
    "journal_path",
    "locked",
    "make_directory",
    "recover_replace",
    "remove_tree",
    "replace_directory",
    "write_bytes_atomic",
    "write_file_atomic",
    "write_text_atomic",
]

_RENAME_EXCHANGE: Final = 2  # linux/fs.h
_AT_FDCWD: Final = -100


def _unique_sibling(parent: Path, prefix: str, suffix: str = "") -> Path:
    return parent / f"{prefix}{secrets.token_hex(4)}{suffix}"


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_atomic(path: Path, write: Callable[[str], None]) -> None:
    """Create ``path`` by calling ``write(temp_path)`` on a sibling temp file, then renaming it.

    Args:
        path: The file to create or replace.
        write: Writes the complete content to the temp path it is given (e.g. ``pq.write_table``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = str(_unique_sibling(path.parent, f".{path.name}.", ".tmp"))
        try:  # 0o666: the kernel applies the umask, as for any file the user creates
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        break
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Create or replace ``path`` with ``data`` atomically."""
    write_file_atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def write_text_atomic(path: Path, text: str) -> None:
    """Create or replace ``path`` with UTF-8 ``text`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def make_directory(parent: Path, prefix: str) -> Path:
    """Create a new uniquely named folder ``parent/<prefix><random>`` (mode ``0777`` minus the umask)."""
    while True:
        path = _unique_sibling(parent, prefix)
        try:
            os.mkdir(path, 0o777)
        except FileExistsError:
            continue
        return path


def journal_path(target: Path) -> Path:
    """Where the fallback swap keeps the previous ``target`` until the new one is in place."""
    return target.with_name(f".{target.name}.old")


def _exchange(staged: Path, target: Path) -> bool:
    """Swap two paths atomically with ``renameat2(RENAME_EXCHANGE)``; False when unsupported here."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl: no wrapper
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    result = renameat2(_AT_FDCWD, os.fsencode(staged), _AT_FDCWD, os.fsencode(target), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # filesystem or kernel without exchange
        return False
    raise OSError(code, os.strerror(code), str(staged), None, str(target))


def replace_directory(staged: Path, target: Path, *, keep_last: Collection[str] = ()) -> None:
    """Put the finished directory ``staged`` at ``target``, replacing an existing ``target``.

    At every instant either the old ``target`` or the new one is at ``target`` (exchange), or the old one
    is at :func:`journal_path` where :func:`recover_replace` puts it back (fallback). Call it under
    :func:`locked` and after :func:`recover_replace`, so no other writer and no journal is in the way.

    Args:
        staged: A complete directory on the same filesystem as ``target``; it is gone afterwards.
        target: Where it must appear.
        keep_last: Names :func:`remove_tree` deletes last from the previous directory (its ownership
            marker, so a half-deleted leftover is still recognizable).
    """
    try:
        os.replace(staged, target)  # target missing or an empty folder: one atomic rename
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    else:
        _fsync_directory(target.parent)
        return
    if _exchange(staged, target):
        _fsync_directory(target.parent)
        remove_tree(staged, keep_last=keep_last)  # staged now holds the previous directory
        return
    journal = journal_path(target)
    os.replace(target, journal)
    try:
        os.replace(staged, target)
    except BaseException:
        os.replace(journal, target)  # put the previous directory back
        raise
    _fsync_directory(target.parent)
    remove_tree(journal, keep_last=keep_last)


def recover_replace(target: Path, *, owned: Callable[[Path], bool]) -> None:
    """Finish or undo a fallback swap a crash interrupted (call it under :func:`locked`).

    Args:
        target: The directory a previous writer was replacing.
        owned: Whether a leftover journal is ours (never touch a folder that merely has the name).
    """
    journal = journal_path(target)
    if not journal.is_dir() or journal.is_symlink():
        return
    if not any(journal.iterdir()):  # killed at the journal's last rmdir: nothing in it to keep
        journal.rmdir()
        return
    if not owned(journal):
        return
    if target.exists() or target.is_symlink():
        remove_tree(journal)  # the new directory made it: the journal is the previous one
    else:
        os.replace(journal, target)  # crashed between the two renames: the previous one goes back
        _fsync_directory(target.parent)


def remove_tree(path: Path, *, keep_last: Collection[str] = ()) -> None:
    """Delete ``path``, its ``keep_last`` entries last, so a crash mid-way leaves them recognizable."""
    last = [path / name for name in keep_last if (path / name).exists()]
    for entry in list(path.iterdir()):
        if entry in last:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in last:
        entry.unlink()
    path.rmdir()


@contextlib.contextmanager
def locked(lock_path: Path, *, timeout: float) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``lock_path`` (a ``filelock`` file), removed afterwards.

    The holder unlinks the file before releasing it; a waiter that then gets the lock on the unlinked
    file sees that the path no longer names its file and takes the lock again, so two processes never
    both hold it.

    Raises:
        filelock.Timeout: Another process held the lock for ``timeout`` seconds.
    """
    import filelock

    while True:
        lock = filelock.FileLock(lock_path, timeout=timeout)
        lock.acquire()
        context = getattr(lock, "_context", None)
        fd = None if getattr(context, "soft_fallback", False) else getattr(context, "lock_file_fd", None)
        if fd is None or os.name != "posix":  # no way to check the inode: keep the file (filelock's default)
            break
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            break
        lock.release()  # the previous holder removed this file: lock the one at the path now
    try:
        yield
    finally:
        if fd is not None and os.name == "posix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_path)
        lock.release()
