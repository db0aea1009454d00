"""JSON value kinds as messages name them, and which values count as JSON numbers."""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["is_number", "number_or_nan", "type_name", "user_path"]


def type_name(value: object) -> str:
    """The JSON name of ``value``'s kind: null, boolean, number, string, list or object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def is_number(value: object) -> bool:
    """True for a JSON number (``int`` or ``float``); ``true``/``false`` are not numbers."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number_or_nan(value: object) -> float:
    """``value`` as a float when it is a JSON number, else NaN (kept, so its problem can be reported)."""
    return float(value) if is_number(value) else math.nan  # type: ignore[arg-type]


def user_path(text: str) -> Path:
    """``text`` as a path with ``~`` / ``~user`` expanded.

    Raises:
        ValueError: ``text`` holds a NUL character, or ``~user`` names no known user.
    """
    if "\0" in text:
        raise ValueError("it contains a NUL character")
    try:
        return Path(text).expanduser()
    except RuntimeError:
        user = text.split("/", 1)[0]
        raise ValueError(f"{user!r} names no known user (or no home folder is set)") from None
