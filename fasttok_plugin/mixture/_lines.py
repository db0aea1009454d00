"""The line index: for every value of a JSON text, the line it starts on, keyed by its JSON pointer.

A small scanner walks the (already validated) JSON text once; an object's or list's line is the line of
its opening bracket. It also records keys repeated within one object, which ``json`` would silently drop.
"""

from __future__ import annotations

import bisect
import json
import re

from fasttok_plugin.mixture._pointers import pointer_join

__all__ = ["index_lines"]

_NUMBER = re.compile(r"-?(?:Infinity|(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?)|NaN|true|false|null")
_WS = re.compile(r"[ \t\n\r]*")


def index_lines(text: str, out: dict[str, int], duplicates: list[tuple[str, int]]) -> None:
    """Record, for every value in ``text``, the 1-based line where it starts, keyed by JSON pointer.

    Keys repeated within one object are appended to ``duplicates`` as ``(pointer, line)``.
    """
    newlines = [m.start() for m in re.finditer("\n", text)]

    def line_at(pos: int) -> int:
        return bisect.bisect_left(newlines, pos) + 1

    scanstring = json.decoder.scanstring  # type: ignore[attr-defined]

    def skip_ws(pos: int) -> int:
        return _WS.match(text, pos).end()  # type: ignore[union-attr]

    def value(pos: int, pointer: str) -> int:
        pos = skip_ws(pos)
        out[pointer] = line_at(pos)
        char = text[pos]
        if char == "{":
            pos = skip_ws(pos + 1)
            if text[pos] == "}":
                return pos + 1
            seen: set[str] = set()
            while True:
                key_line = line_at(pos)
                key, pos = scanstring(text, pos + 1)
                if key in seen:
                    duplicates.append((pointer_join(pointer, key), key_line))
                seen.add(key)
                pos = skip_ws(pos)  # at ':'
                pos = value(pos + 1, pointer_join(pointer, key))
                pos = skip_ws(pos)
                if text[pos] == "}":
                    return pos + 1
                pos = skip_ws(pos + 1)  # after ',' at the next key's quote
        if char == "[":
            pos = skip_ws(pos + 1)
            if text[pos] == "]":
                return pos + 1
            index = 0
            while True:
                pos = value(pos, f"{pointer}/{index}")
                pos = skip_ws(pos)
                if text[pos] == "]":
                    return pos + 1
                pos += 1
                index += 1
        if char == '"':
            return scanstring(text, pos + 1)[1]
        match = _NUMBER.match(text, pos)
        if match is None:
            raise ValueError(f"unexpected character at {pos}")
        return match.end()

    value(0, "")
