"""JSON pointers (RFC 6901): joining a token, reading the last one, and the closest enclosing pointer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__all__ = ["Location", "closest", "last_token", "pointer_join"]

#: ``(file, line)`` of a value; either part may be unknown.
Location = tuple[Path | None, int | None]


def pointer_join(pointer: str, key: str | int) -> str:
    """``pointer`` extended by ``key``, escaped (``~`` -> ``~0``, ``/`` -> ``~1``)."""
    token = str(key).replace("~", "~0").replace("/", "~1")
    return f"{pointer}/{token}"


def last_token(pointer: str) -> str:
    """The unescaped last token of a non-empty ``pointer`` (the key it ends in)."""
    return pointer.rsplit("/", 1)[1].replace("~1", "/").replace("~0", "~")


def closest(pointer: str, lookup: Callable[[str], Location | None], default: Location) -> Location:
    """``lookup`` of ``pointer`` or of its closest enclosing pointer (a value may lack its own line)."""
    current = pointer
    while True:
        found = lookup(current)
        if found is not None:
            return found
        if not current:
            return default
        current = current.rsplit("/", 1)[0]
