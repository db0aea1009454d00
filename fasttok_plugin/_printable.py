"""Text from user files made safe to print: one escaping rule for every CLI output."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["printable", "printable_lines"]


# Control characters (C0, DEL, C1), lone surrogates and the XML non-characters: names and messages come from
# user files, and printed raw they could forge lines (a "\n::error::" is a GitHub Actions command), colors,
# invalid XML, or text that cannot be encoded at all.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """``text`` with every control character, lone surrogate and XML non-character as a visible escape."""
    return _UNPRINTABLE.sub(_escape_char, text)


def printable_lines(lines: Iterable[str]) -> str:
    """Join ``lines`` with newlines, each line made :func:`printable` (a line break inside one is escaped)."""
    return "\n".join(printable(line) for line in lines)
