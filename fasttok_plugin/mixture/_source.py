"""One JSON file of a mixture (the mixture or a ``$ref`` target): read it, parse it, index its lines.

Reading failures become an ``unreadable`` :class:`MixtureError` that names the include chain.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fasttok_plugin.errors import MixtureError
from fasttok_plugin.mixture._lines import index_lines
from fasttok_plugin.mixture.model import MixtureProblem

__all__ = ["Source", "chain_text", "read_json"]


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
        problem = MixtureProblem("", "JSON nested too deeply", "flatten the document", None, path)
        raise MixtureError([problem], unreadable=True, path=error_path) from None
    return document, Source(path, text)


def _read_text(
    path: Path, *, chain: list[Path], pointer: str, including: Path | None, error_path: Path | None
) -> str:
    try:
        # utf-8-sig: a byte-order mark some editors write is not a JSON error.
        return path.read_text(encoding="utf-8-sig")
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
    except (OSError, UnicodeDecodeError) as exc:
        problem = MixtureProblem(
            pointer, f"cannot read {path}: {exc}", "check the file", None, including or path
        )
        raise MixtureError([problem], unreadable=True, path=error_path) from None
