"""The tokenizer folder (DESIGN §13): which folders hold a tokenizer, which ones a save may replace, and how.

One rule for every writer and reader of tokenizer folders (the codec's ``save``, ``fit_tokenizer``'s
``out_dir`` and the Lightning callback's ``tokenizer_dir``):

- a folder *holds a tokenizer* when it contains ``processor_config.json`` (the reference processor's file)
  or ``fasttok.json`` (our sidecar); such a folder can be loaded;
- a folder is *ours*, and only then may be replaced, when it holds nothing but the files this package
  writes (:data:`OWNED_NAMES`) and its ``fasttok.json`` carries our format marker. A reference folder
  written by another tool, a model checkpoint that ships a ``processor_config.json``, a project or a run
  folder is refused, never emptied; so are the current directory and its parents.

Writers go through :func:`write_tokenizer_dir`: under a lock (a sibling ``.NAME.lock``) it undoes or
finishes a swap a crash interrupted, removes our stale staging folders, builds the new folder next to the
target and swaps it in (:func:`fasttok_plugin.atomic.replace_directory`).
"""

from __future__ import annotations

import enum
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from fasttok_plugin.atomic import (
    journal_path,
    locked,
    make_directory,
    recover_replace,
    remove_tree,
    replace_directory,
)

__all__ = [
    "FORMAT_KEY",
    "FORMAT_MARKER",
    "LOCK_TIMEOUT",
    "OWNED_NAMES",
    "PROCESSOR_CONFIG_NAME",
    "SIDECAR_NAME",
    "TOKENIZER_MARKERS",
    "FolderState",
    "check_replaceable",
    "folder_state",
    "is_tokenizer_dir",
    "lock_path",
    "readable_path",
    "write_tokenizer_dir",
]

logger = logging.getLogger(__name__)

PROCESSOR_CONFIG_NAME: Final = "processor_config.json"
SIDECAR_NAME: Final = "fasttok.json"
# A folder holding any of these holds a tokenizer (a reference processor directory or one of ours).
TOKENIZER_MARKERS: Final = frozenset({PROCESSOR_CONFIG_NAME, SIDECAR_NAME})
# Every file this package writes into a tokenizer folder: codec/files.py's layout (the reference processor
# files, the processor module, the sidecar), fit_report.json (fit/report.py) and norm_stats.json (§13).
# tests/test_tokenizer_dir.py pins that each writer writes nothing outside this set.
OWNED_NAMES: Final = frozenset(
    {
        PROCESSOR_CONFIG_NAME,
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "processing_fasttok.py",
        SIDECAR_NAME,
        "fit_report.json",
        "norm_stats.json",
    }
)
# fasttok.json's ownership marker: FORMAT_KEY = FORMAT_MARKER.
FORMAT_KEY: Final = "format"
FORMAT_MARKER: Final = "fasttok_plugin.tokenizer"
# Seconds a writer waits for another writer of the same folder before giving up with a clear error.
LOCK_TIMEOUT: Final = 300.0
_SIDECAR_MAX_BYTES: Final = 64 << 20
_STAGING_MARKER: Final = ".fasttok-staging"  # first thing in every staging folder, removed last
_STAGED: Final = "tokenizer"  # the staged folder inside a staging folder
_TEMP_FILE: Final = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp")  # atomic.write_file_atomic's temp files


class FolderState(enum.Enum):
    """What a path is, as far as holding a tokenizer goes."""

    MISSING = "missing"
    NOT_A_DIRECTORY = "not_a_directory"
    EMPTY = "empty"
    TOKENIZER = "tokenizer"  # ours: only our files and our marker; may be replaced
    UNOWNED = "unowned"  # holds a tokenizer, but not only our files or no marker: loadable, never replaced
    FOREIGN = "foreign"  # non-empty and holds no tokenizer: never replaced

    @property
    def replaceable(self) -> bool:
        """Whether a tokenizer may be saved at a path in this state (created, or replacing ours)."""
        return self in (FolderState.MISSING, FolderState.EMPTY, FolderState.TOKENIZER)


def _has_marker(folder: Path) -> bool:
    sidecar = folder / SIDECAR_NAME
    try:
        if sidecar.stat().st_size > _SIDECAR_MAX_BYTES:
            return False
        document = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(document, dict) and document.get(FORMAT_KEY) == FORMAT_MARKER


def _not_ours(folder: Path) -> list[str]:
    """Entries of ``folder`` this package does not write (other names, or our names but not plain files)."""
    return sorted(
        entry.name
        for entry in folder.iterdir()
        if entry.name not in OWNED_NAMES or entry.is_symlink() or not entry.is_file()
    )


def folder_state(path: Path) -> FolderState:
    """Classify ``path``: missing, not a directory, empty, ours, a tokenizer not ours, or foreign."""
    if not path.exists():
        return FolderState.MISSING
    if not path.is_dir():
        return FolderState.NOT_A_DIRECTORY
    names = {entry.name for entry in path.iterdir()}
    if not names:
        return FolderState.EMPTY
    if not _not_ours(path) and _has_marker(path):
        return FolderState.TOKENIZER
    return FolderState.UNOWNED if names & TOKENIZER_MARKERS else FolderState.FOREIGN


def is_tokenizer_dir(path: Path) -> bool:
    """Return True when ``path`` holds a tokenizer (``processor_config.json`` or ``fasttok.json``)."""
    return folder_state(path) in (FolderState.TOKENIZER, FolderState.UNOWNED)


def _shown(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _refuse_protected(path: Path, protect: Iterable[Path], error: type[Exception], prefix: str) -> None:
    """The current directory, its parents and the folders holding a protected path are never replaced."""
    resolved = path.resolve()
    try:
        cwd: Path | None = Path.cwd().resolve()
    except OSError:  # the working directory was deleted: nothing left to protect there
        cwd = None
    if cwd is not None and (resolved == cwd or resolved in cwd.parents):
        raise error(
            f"{prefix}{path} is the current directory or one of its parents; a tokenizer is written to a "
            f"folder of its own: choose a new path such as {path / 'tokenizer'} (nothing was touched)"
        )
    for kept in protect:
        kept_resolved = Path(kept).resolve()
        if resolved == kept_resolved or resolved in kept_resolved.parents:
            raise error(
                f"{prefix}{path} holds {kept}; a tokenizer is written to a folder of its own: choose a new "
                f"path such as {path / 'tokenizer'} (nothing was touched)"
            )


def check_replaceable(
    path: Path, *, error: type[Exception], prefix: str = "", protect: Iterable[Path] = ()
) -> FolderState:
    """Refuse a target that a tokenizer save must not replace; return its state otherwise.

    Args:
        path: The folder a tokenizer is about to be saved to.
        error: The exception type the caller's API promises (e.g. ``CodecError``, ``OutDirError``).
        prefix: Put before the message (e.g. ``"save: "``).
        protect: Paths whose folders must never be replaced (e.g. the mixture file being fit).

    Returns:
        ``MISSING``, ``EMPTY`` or ``TOKENIZER``.

    Raises:
        error: ``path`` is a file or a symlink, the current directory or a parent of it or of a protected
            path, or a non-empty folder that is not ours (nothing is touched).
    """
    _refuse_protected(path, protect, error, prefix)
    if path.is_symlink():
        raise error(f"{prefix}{path} is a symbolic link; save to the folder it points to, or another path")
    state = folder_state(path)
    if state is FolderState.NOT_A_DIRECTORY:
        raise error(f"{prefix}{path} exists and is not a directory; choose another path")
    if state in (FolderState.FOREIGN, FolderState.UNOWNED):
        foreign = _not_ours(path)
        if foreign:
            what = f"it holds {_shown(foreign)}, which fasttok_plugin does not write"
        elif (path / SIDECAR_NAME).exists():
            what = (
                f"its {SIDECAR_NAME} lacks the marker {FORMAT_KEY}={FORMAT_MARKER!r} (written by another "
                "tool or an older fasttok_plugin)"
            )
        else:
            what = (
                f"it has no {SIDECAR_NAME}: a processor folder written by another tool, loadable but not ours"
            )
        raise error(
            f"{prefix}{path} is a non-empty directory that is not a tokenizer directory; choose another path "
            f"(a new or empty folder), or delete it yourself if it is disposable ({what}; nothing was "
            "overwritten)"
        )
    return state


def readable_path(path: Path) -> Path:
    """Where to read the tokenizer of ``path``: ``path``, or the previous folder a crash left aside.

    Where the filesystem cannot swap two folders atomically, a writer killed between its two renames
    leaves ``path`` missing and the previous tokenizer at the journal; readers use it until the next
    writer puts it back (reading only, so readers need no lock and no write access).
    """
    if path.exists():
        return path
    journal = journal_path(path)
    if not journal.is_symlink() and folder_state(journal) is FolderState.TOKENIZER:
        return journal
    return path


def lock_path(target: Path) -> Path:
    """The lock file that serializes the writers of ``target``."""
    return target.with_name(f".{target.name}.lock")


def _is_staged_tree(folder: Path) -> bool:
    """Whether ``folder`` holds only what a writer stages: our files and their temp files."""
    for entry in folder.iterdir():
        match = _TEMP_FILE.fullmatch(entry.name)
        name = match["name"] if match else entry.name
        if name not in OWNED_NAMES or entry.is_symlink() or not entry.is_file():
            return False
    return True


def _remove_stale_staging(target: Path) -> None:
    """Remove the staging folders a crashed writer of ``target`` left (name pattern AND our marker)."""
    pattern = re.compile(re.escape(f".{target.name}.stage-") + "[0-9a-f]{8}")
    for entry in target.parent.iterdir():
        if not pattern.fullmatch(entry.name) or entry.is_symlink() or not entry.is_dir():
            continue
        names = {child.name for child in entry.iterdir()}
        staged = entry / _STAGED
        ours = not names or (
            _STAGING_MARKER in names
            and names <= {_STAGING_MARKER, _STAGED}
            and (
                not staged.exists()
                or (staged.is_dir() and not staged.is_symlink() and _is_staged_tree(staged))
            )
        )
        if ours:
            logger.info("removing %s, left by an interrupted save of %s", entry, target)
            remove_tree(entry, keep_last=(_STAGING_MARKER,))
        else:
            logger.warning("leaving %s alone: named like a staging folder but not one of ours", entry)


def _swap_in(target: Path, fill: Callable[[Path], None]) -> None:
    root = make_directory(target.parent, f".{target.name}.stage-")
    try:
        os.close(os.open(root / _STAGING_MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        staged = root / _STAGED
        os.mkdir(staged, 0o777)
        fill(staged)
        replace_directory(staged, target, keep_last=(SIDECAR_NAME,))
    finally:
        remove_tree(root, keep_last=(_STAGING_MARKER,))


def write_tokenizer_dir(
    path: str | os.PathLike[str],
    fill: Callable[[Path], None],
    *,
    error: type[Exception],
    prefix: str = "",
    protect: Iterable[Path] = (),
) -> Path:
    """Create or replace the tokenizer folder ``path`` with what ``fill`` writes, crash-safely.

    Args:
        path: The tokenizer folder.
        fill: Writes the complete folder into the (empty) staging directory it is given; every name it
            writes must be in :data:`OWNED_NAMES` and ``fasttok.json`` must carry the marker.
        error: The exception type the caller's API promises for a refused target.
        prefix: Put before refusal messages.
        protect: Paths whose folders must never be replaced (see :func:`check_replaceable`).

    Returns:
        The absolute path written.

    Raises:
        error: The target is refused (nothing is touched), or another writer held it for
            :data:`LOCK_TIMEOUT` seconds.
    """
    import filelock

    target = Path(os.path.abspath(path))
    protect = tuple(protect)
    check_replaceable(target, error=error, prefix=prefix, protect=protect)  # before creating anything
    lock = lock_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with locked(lock, timeout=LOCK_TIMEOUT):
            recover_replace(target, owned=lambda folder: folder_state(folder) is FolderState.TOKENIZER)
            _remove_stale_staging(target)
            check_replaceable(
                target, error=error, prefix=prefix, protect=protect
            )  # another writer may be done
            _swap_in(target, fill)
    except filelock.Timeout:
        raise error(
            f"{prefix}another process has been writing {target} for {LOCK_TIMEOUT:.0f} s (it holds {lock}); "
            "wait for it to finish, or write to another path"
        ) from None
    except (FileExistsError, NotADirectoryError, PermissionError) as exc:
        raise error(f"{prefix}cannot write {target}: {exc}; choose another path") from exc
    return target
