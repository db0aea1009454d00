"""The tokenizer folder: which folders hold a tokenizer, and which ones a save may replace.

One rule for every writer and reader of tokenizer folders (the codec's ``save``, ``fit_tokenizer``'s
``out_dir`` and the Lightning callback's ``tokenizer_dir``): a folder holds a tokenizer when it contains
``processor_config.json`` (the reference processor's file) or ``fasttok.json`` (our sidecar). Any other
non-empty folder is foreign and is never replaced: a stray ``fit_report.json`` or a lone
``tokenizer.json`` does not make a folder a tokenizer folder (neither can be loaded on its own).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Final

__all__ = [
    "PROCESSOR_CONFIG_NAME",
    "SIDECAR_NAME",
    "TOKENIZER_MARKERS",
    "FolderState",
    "check_replaceable",
    "folder_state",
    "is_tokenizer_dir",
]

PROCESSOR_CONFIG_NAME: Final = "processor_config.json"
SIDECAR_NAME: Final = "fasttok.json"
# A folder holding any of these is a tokenizer folder (a reference processor directory or one of ours).
TOKENIZER_MARKERS: Final = frozenset({PROCESSOR_CONFIG_NAME, SIDECAR_NAME})


class FolderState(enum.Enum):
    """What a path is, as far as holding a tokenizer goes."""

    MISSING = "missing"
    NOT_A_DIRECTORY = "not_a_directory"
    EMPTY = "empty"
    TOKENIZER = "tokenizer"
    FOREIGN = "foreign"  # non-empty and not a tokenizer folder: never replaced

    @property
    def replaceable(self) -> bool:
        """Whether a tokenizer may be saved at a path in this state (created, or replacing a tokenizer)."""
        return self in (FolderState.MISSING, FolderState.EMPTY, FolderState.TOKENIZER)


def folder_state(path: Path) -> FolderState:
    """Classify ``path``: missing, not a directory, empty, a tokenizer folder, or a foreign folder."""
    if not path.exists():
        return FolderState.MISSING
    if not path.is_dir():
        return FolderState.NOT_A_DIRECTORY
    names = {entry.name for entry in path.iterdir()}
    if not names:
        return FolderState.EMPTY
    return FolderState.TOKENIZER if names & TOKENIZER_MARKERS else FolderState.FOREIGN


def is_tokenizer_dir(path: Path) -> bool:
    """Return True when ``path`` is a directory holding ``processor_config.json`` or ``fasttok.json``."""
    return folder_state(path) is FolderState.TOKENIZER


def check_replaceable(path: Path, *, error: type[Exception], prefix: str = "") -> FolderState:
    """Refuse a target that a tokenizer save must not replace; return its state otherwise.

    Args:
        path: The folder a tokenizer is about to be saved to.
        error: The exception type the caller's API promises (e.g. ``CodecError``, ``OutDirError``).
        prefix: Put before the message (e.g. ``"save: "``).

    Returns:
        ``MISSING``, ``EMPTY`` or ``TOKENIZER``.

    Raises:
        error: ``path`` is a file, or a non-empty folder that is not a tokenizer folder (nothing is touched).
    """
    state = folder_state(path)
    if state is FolderState.NOT_A_DIRECTORY:
        raise error(f"{prefix}{path} exists and is not a directory; choose another path")
    if state is FolderState.FOREIGN:
        raise error(
            f"{prefix}{path} is a non-empty directory that is not a tokenizer directory; choose another "
            "path (nothing was overwritten)"
        )
    return state
