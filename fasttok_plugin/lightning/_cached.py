"""The load half of load-or-fit: does ``tokenizer_dir`` already hold the tokenizer this run needs?

A folder is reused only when the tokenizer in it records the run's fit fingerprint. Anything else is an
error naming the fix (a file, a non-empty folder that holds no tokenizer, an unreadable tokenizer, another
fingerprint), or, under ``on_mismatch="refit"``, a warning before the folder is replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from fasttok_plugin.errors import TokenizerMismatchError
from fasttok_plugin.fit.fingerprint import FINGERPRINT_KEY, describe_difference
from fasttok_plugin.fit.report import REPORT_NAME, FitReport
from fasttok_plugin.tokenizer_dir import FolderState, folder_state

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.fit.settings import FitSettings
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.lightning._copies import RankZeroDecision
    from fasttok_plugin.lightning.protocol import TokenizerSource

log = logging.getLogger("fasttok_plugin.lightning.callback")

__all__ = [
    "PreparedTokenizer",
    "existing_matches",
    "explainer",
    "fit_into",
    "load_matching",
    "load_report",
    "prepared",
]


@dataclass(frozen=True)
class PreparedTokenizer:
    """The tokenizer the callback prepared for one datamodule's heads (reused by later stages)."""

    heads: NormHeads
    fingerprint: str
    tokenizer: FastTokenizer
    report: FitReport | None
    fitted: bool


def prepared(
    heads: NormHeads, decision: RankZeroDecision, tokenizer: FastTokenizer, folder: Path
) -> PreparedTokenizer:
    """What the callback keeps after rank 0's ``decision``: the loaded tokenizer and the folder's report."""
    return PreparedTokenizer(heads, decision.fingerprint, tokenizer, load_report(folder), decision.fitted)


def existing_matches(
    folder: Path,
    fingerprint: str,
    *,
    on_mismatch: str,
    explain: Callable[[Mapping[str, Any]], str],
) -> bool:
    """Whether ``folder`` holds a tokenizer with ``fingerprint``; raises or warns on a mismatch.

    Args:
        folder: The callback's ``tokenizer_dir``.
        fingerprint: The fit fingerprint of this run.
        on_mismatch: ``"error"`` or ``"refit"`` (warn and return False).
        explain: Says what changed, from the existing tokenizer's sidecar metadata ("" if unknown).

    Raises:
        NotADirectoryError: ``folder`` is a file.
        FileExistsError: ``folder`` is not empty but holds no tokenizer.
        TokenizerMismatchError: Unreadable tokenizer or other fingerprint, under ``on_mismatch="error"``.
    """
    from fasttok_plugin.codec import FastTokenizer, TokenizerFormatError

    state = folder_state(folder)
    if state in (FolderState.MISSING, FolderState.EMPTY):
        return False
    if state is FolderState.NOT_A_DIRECTORY:
        raise NotADirectoryError(
            f"tokenizer_dir {folder} is a file; point tokenizer_dir at a folder (it is created if missing)"
        )
    if state is FolderState.FOREIGN:
        names = sorted(p.name for p in folder.iterdir())
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise FileExistsError(
            f"tokenizer_dir {folder} is not empty but holds no tokenizer (found {shown}); point "
            "tokenizer_dir at an empty or new folder (nothing was overwritten)"
        )
    try:
        existing = FastTokenizer.load(folder)
    except TokenizerFormatError as exc:
        if on_mismatch == "refit":
            rank_zero_warn(f"FastTokenizerCallback: replacing the unreadable tokenizer in {folder}: {exc}")
            return False
        raise TokenizerMismatchError(
            f"tokenizer_dir {folder} holds an unreadable tokenizer ({exc}); delete the folder, point "
            "tokenizer_dir at a new folder, or pass on_mismatch='refit' to replace it",
            expected=fingerprint,
            found=None,
            tokenizer_dir=folder,
        ) from exc
    found = existing.metadata.get(FINGERPRINT_KEY)
    if found == fingerprint:
        return True
    why = explain(existing.metadata)
    message = (
        f"tokenizer_dir {folder} holds a tokenizer fit for fingerprint {found or '<none recorded>'}, "
        "but the datamodule's norm heads and this callback's settings give fingerprint "
        f"{fingerprint}{f' ({why})' if why else ''}. Fix: point tokenizer_dir at a new folder for this "
        "mixture, restore the mixture and settings the tokenizer was fit for, or pass "
        "on_mismatch='refit' to replace it"
    )
    if on_mismatch == "refit":
        rank_zero_warn(f"FastTokenizerCallback: refitting. {message}")
        return False
    raise TokenizerMismatchError(message, expected=fingerprint, found=found, tokenizer_dir=folder)


def load_matching(folder: Path, fingerprint: str) -> FastTokenizer:
    """Load the tokenizer in ``folder``, which rank 0 found (or fit) with ``fingerprint``.

    Raises:
        TokenizerMismatchError: The folder changed since rank 0's decision.
    """
    from fasttok_plugin.codec import FastTokenizer

    tokenizer = FastTokenizer.load(folder)
    found = tokenizer.metadata.get(FINGERPRINT_KEY)
    if found != fingerprint:
        # Only possible if something rewrote the folder between rank 0's decision and this load.
        raise TokenizerMismatchError(
            f"tokenizer_dir {folder} changed while the ranks were loading it (expected "
            f"fingerprint {fingerprint}, found {found}); do not share one tokenizer_dir between "
            "concurrent runs",
            expected=fingerprint,
            found=found,
            tokenizer_dir=folder,
        )
    return tokenizer


def load_report(folder: Path) -> FitReport | None:
    """The fit report in ``folder`` (None, with a warning, when missing or unreadable)."""
    if not (folder / REPORT_NAME).is_file():
        return None
    try:
        return FitReport.load(folder)
    except Exception as exc:  # the report is informative; a broken one must not stop training
        rank_zero_warn(f"FastTokenizerCallback: could not read {folder / REPORT_NAME}: {exc}")
        return None


def explainer(source: TokenizerSource, settings: FitSettings) -> Callable[[Mapping[str, Any]], str]:
    """What changed between an existing tokenizer's sidecar metadata and this run (for the messages)."""
    sampler_settings = source.chunk_sampler.settings()
    return lambda metadata: describe_difference(metadata, source.norm_heads, settings, sampler_settings)


def fit_into(
    folder: Path, source: TokenizerSource, settings: FitSettings, fingerprint: str, *, progress: bool
) -> None:
    """Fit a tokenizer for ``source`` into ``folder`` (built next to it, then renamed into place)."""
    # Looked up on the module at call time, so a patched `pipeline.fit_tokenizer` (tests) takes effect.
    from fasttok_plugin.fit import pipeline

    log.info("fitting a FAST tokenizer into %s (fingerprint %s)", folder, fingerprint[:12])
    # A crash leaves either the previous folder or none, never a half-written tokenizer.
    pipeline.fit_tokenizer(source, settings, out_dir=folder, progress=progress, preflight=False)
