"""The fit's output directory: refuse a bad one before any compute, and write the result in one rename."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from fasttok_plugin.atomic import replace_directory
from fasttok_plugin.errors import OutDirError
from fasttok_plugin.tokenizer_dir import FolderState, check_replaceable

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.fit.report import FitReport


def check_out_dir(out_dir: Path) -> None:
    """Refuse early (before any compute) to replace a directory that is not a tokenizer directory."""
    if check_replaceable(out_dir, error=OutDirError) is not FolderState.MISSING:
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


def save_atomically(tokenizer: FastTokenizer, report: FitReport, out_dir: Path) -> Path:
    """Tokenizer files + fit_report.json built in one temp directory, then renamed into place."""
    target = out_dir.absolute()
    check_out_dir(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging_root = Path(tempfile.mkdtemp(prefix=f".{target.name}.fit-", dir=target.parent))
    try:
        staged = tokenizer.save(staging_root / "tokenizer")
        report.save(staged)
        replace_directory(staged, target)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
    return target
