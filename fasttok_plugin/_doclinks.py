"""Where the user docs are, so help texts and errors name a file that exists.

The wheel ships ``docs/*.md`` inside the package as ``fasttok_plugin/_docs`` (see pyproject.toml); a source
checkout has them in ``docs/`` next to the package.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["doc_path"]

_HERE = Path(__file__).resolve().parent


def doc_path(name: str) -> str:
    """The path of the doc ``name`` (e.g. ``"fitting.md"``): installed copy first, then the checkout's."""
    for candidate in (_HERE / "_docs" / name, _HERE.parent / "docs" / name):
        if candidate.is_file():
            return str(candidate)
    # Neither exists only in a broken install; the name still tells people which doc to look for.
    return f"docs/{name}"
