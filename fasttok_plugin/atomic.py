"""Crash-safe writes: a reader sees the old file/directory or the new one, never half of either.

Everything is staged next to its target (same filesystem, so the final ``os.replace`` is an atomic
rename) and flushed to disk before it is renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["replace_directory", "write_bytes_atomic", "write_file_atomic", "write_text_atomic"]


def write_file_atomic(path: Path, write: Callable[[str], None]) -> None:
    """Create ``path`` by calling ``write(temp_path)`` on a sibling temp file, then renaming it.

    Args:
        path: The file to create or replace.
        write: Writes the complete content to the temp path it is given (e.g. ``pq.write_table``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
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


def replace_directory(staged: Path, target: Path) -> None:
    """Rename the finished directory ``staged`` to ``target``, replacing an existing ``target``.

    The previous ``target`` is moved aside first and put back if the final rename fails, so a crash
    leaves either the old directory or the new one in place.

    Args:
        staged: A complete directory on the same filesystem as ``target``.
        target: Where it must appear.
    """
    if not target.exists():
        os.replace(staged, target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, aside / "dir")
    try:
        os.replace(staged, target)
    except BaseException:
        os.replace(aside / "dir", target)  # put the previous directory back
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
