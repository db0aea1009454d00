"""The fit's output directory: refuse a bad one before any compute, and write the result crash-safely."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fasttok_plugin.errors import OutDirError
from fasttok_plugin.tokenizer_dir import FolderState, check_replaceable, write_tokenizer_dir

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.fit.report import FitReport


def check_out_dir(out_dir: Path, *, protect: Iterable[Path] = ()) -> None:
    """Refuse early (before any compute) a target that is not ours to replace (see ``tokenizer_dir``).

    Args:
        out_dir: The fit's output folder.
        protect: Paths whose folders must never be replaced (the CLI passes the mixture file).

    Raises:
        OutDirError: The target is refused, or cannot be created.
    """
    if check_replaceable(out_dir, error=OutDirError, protect=protect) is not FolderState.MISSING:
        return
    # The tokenizer is staged next to out_dir: its nearest existing ancestor must be a writable folder,
    # or the fit would only fail at the very end.
    ancestor = out_dir.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutDirError(
            f"cannot create {out_dir}: {ancestor} is a file, not a directory; choose another path"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutDirError(f"cannot create {out_dir}: {ancestor} is not writable; choose another path")


def save_atomically(
    tokenizer: FastTokenizer,
    report: FitReport,
    out_dir: Path,
    *,
    protect: Iterable[Path] = (),
    norm_stats: dict[str, Any] | None = None,
) -> Path:
    """Tokenizer files + fit_report.json (+ norm_stats.json) built in one staging folder, then swapped in."""
    from fasttok_plugin.codec.files import fill_directory
    from fasttok_plugin.norm_stats import write_norm_stats

    def fill(folder: Path) -> None:
        fill_directory(tokenizer, folder)
        report.save(folder)
        if norm_stats is not None:
            write_norm_stats(folder, norm_stats)

    return write_tokenizer_dir(out_dir, fill, error=OutDirError, protect=protect)
