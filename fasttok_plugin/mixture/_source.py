"""One JSON file of a mixture (the mixture or a ``$ref`` target): read it, parse it, index its lines.

Reading failures become an ``unreadable`` :class:`MixtureError` that names the include chain.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

from fasttok_plugin.errors import MixtureError
from fasttok_plugin.mixture._lines import index_lines
from fasttok_plugin.mixture.model import MixtureProblem

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_JSON_DEPTH",
    "NotRegularFileError",
    "Source",
    "chain_text",
    "read_json",
    "read_regular_file",
]

#: Largest mixture or ``$ref`` file read (a mixture is metadata; a bigger file is a mistake or an attack).
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Deepest nesting of objects and lists accepted in one file (and in the expanded document).
MAX_JSON_DEPTH = 100
# Python refuses to convert longer integers (``sys.get_int_max_str_digits``, 4300 by default; 0 = no limit).
_MAX_DIGITS = sys.get_int_max_str_digits() or 4300
_LONG_INTEGER = re.compile(rf"\d{{{_MAX_DIGITS + 1},}}")


class Source:
    """A JSON file's text and the line on which each value (by JSON pointer in that file) starts."""

    def __init__(self, path: Path | None, text: str | None, base_dir: Path | None = None) -> None:
        self.path = path
        # Folder that $ref paths written in this source resolve against.
        self.base_dir = (
            base_dir if base_dir is not None else (path.parent if path is not None else Path.cwd())
        )
        self.lines: dict[str, int] = {}
        # (pointer, line) of keys repeated inside one object: JSON would silently keep the last one.
        self.duplicates: list[tuple[str, int]] = []
        if text is not None:
            try:
                index_lines(text, self.lines, self.duplicates)
            except (ValueError, IndexError, RecursionError):
                # The index is best effort: json already accepted the text, lines are only decoration.
                self.lines = {}
                self.duplicates = []

    def line(self, pointer: str) -> int | None:
        """Line of the value at ``pointer`` (a pointer inside this file), when known."""
        return self.lines.get(pointer)


def chain_text(chain: list[Path]) -> str:
    """The include chain for messages: ``a.json -> b.json`` (``<document>`` for an in-memory one)."""
    return " -> ".join(p.name for p in chain) if chain else "<document>"


def read_json(path: Path, *, chain: list[Path], pointer: str, including: Path | None) -> tuple[Any, Source]:
    """Read a JSON file (NaN/Infinity accepted); raise an unreadable MixtureError naming the include chain.

    Args:
        path: The file to read.
        chain: Files being included, outermost first (empty for the top-level mixture).
        pointer: Merged pointer of the ``$ref`` that names ``path`` (``""`` for the mixture).
        including: The file whose ``$ref`` names ``path`` (``None`` for the mixture).
    """
    # The MixtureError names the top-level mixture file (None when parsing an in-memory document).
    error_path = chain[0] if chain else (path if including is None else None)
    text = _read_text(path, chain=chain, pointer=pointer, including=including, error_path=error_path)
    try:
        document = json.loads(text)
        too_deep = _too_deep(document)
    except json.JSONDecodeError as exc:
        suffix = f" (include chain: {chain_text(chain)} -> {path.name})" if including is not None else ""
        problem = MixtureProblem(
            "",
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{suffix}",
            "fix the JSON syntax at that position (trailing commas and comments are not JSON)",
            exc.lineno,
            path,
        )
        raise MixtureError([problem], unreadable=True, path=error_path) from None
    except RecursionError:
        too_deep = True
    except ValueError:
        # json gives up on an integer longer than Python's int conversion limit, without a position.
        raise MixtureError([_long_integer(text, path)], unreadable=True, path=error_path) from None
    if too_deep:
        problem = MixtureProblem(
            "",
            f"JSON nested more than {MAX_JSON_DEPTH} levels deep",
            "flatten the document (a mixture needs a handful of levels)",
            None,
            path,
        )
        raise MixtureError([problem], unreadable=True, path=error_path)
    return document, Source(path, text)


def _too_deep(document: Any) -> bool:
    """True when ``document`` nests objects/lists deeper than ``MAX_JSON_DEPTH`` (iterative, no recursion)."""
    stack = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                return True
            members = value.values() if isinstance(value, dict) else value
            stack.extend((member, depth + 1) for member in members)
    return False


def _long_integer(text: str, path: Path | None) -> MixtureProblem:
    match = _LONG_INTEGER.search(text)
    line = text.count("\n", 0, match.start()) + 1 if match else None
    where = f" at line {line}" if line else ""
    digits = f"{len(match.group())} digits" if match else "too many digits"
    return MixtureProblem(
        "",
        f"a number with {digits}{where}: numbers of more than {_MAX_DIGITS} digits cannot be read",
        "write a number of ordinary size (weights, sizes and indices need a few digits)",
        line,
        path,
    )


def _read_text(
    path: Path, *, chain: list[Path], pointer: str, including: Path | None, error_path: Path | None
) -> str:
    try:
        # utf-8-sig: a byte-order mark some editors write is not a JSON error.
        return read_regular_file(path).decode("utf-8-sig")
    except NotRegularFileError as exc:
        problem = MixtureProblem(
            pointer,
            f"cannot read {path}: {exc}" + (f" (include chain: {chain_text(chain)})" if chain else ""),
            "point at a regular JSON file"
            + ("; it is relative to the including file's folder" if including is not None else ""),
            None,
            including or path,
        )
        raise MixtureError([problem], unreadable=True, path=error_path) from None
    except FileNotFoundError:
        if including is None:
            problem = MixtureProblem("", f"mixture file not found: {path}", "check the path", None, path)
        else:
            problem = MixtureProblem(
                pointer,
                f"$ref target not found: {path} (include chain: {chain_text(chain)} -> {path.name})",
                "fix the $ref path; it is relative to the including file's folder",
                None,
                including,
            )
        raise MixtureError([problem], unreadable=True, path=error_path) from None
    except (OSError, ValueError) as exc:
        # ValueError: not UTF-8 (UnicodeDecodeError), or a path Python cannot pass to the system (NUL).
        problem = MixtureProblem(
            pointer, f"cannot read {path}: {exc}", "check the file", None, including or path
        )
        raise MixtureError([problem], unreadable=True, path=error_path) from None


class NotRegularFileError(OSError):
    """The path names something other than a regular file of a sensible size."""


def read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, refusing FIFOs, devices and directories and files over ``MAX_FILE_BYTES``.

    Opened non-blocking so a FIFO cannot hang the open; checked on the open descriptor, so what is read is
    what was checked.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise NotRegularFileError(f"{kind} (only regular files are read)")
    with os.fdopen(fd, "rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        limit = MAX_FILE_BYTES // (1024 * 1024)
        raise NotRegularFileError(f"larger than {limit} MiB (a mixture is metadata)")
    return data
