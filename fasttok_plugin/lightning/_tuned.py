"""The callback's tuned scale: ``tune_max_action_tokens`` picks ``scale`` for the policy's token budget.

Rank 0 reuses a folder tuned for the same request (same budget and quantile) when its fingerprint is the
fit at its recorded scale; otherwise it runs `tune_tokenizer` into the folder. Other ranks read the chosen
scale from rank 0's folder bytes, so every rank fingerprints the same settings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from fasttok_plugin.errors import TokenizerMismatchError
from fasttok_plugin.fit.report import REPORT_NAME
from fasttok_plugin.fit.tune import TUNE_KEY

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.fit.settings import FitSettings
    from fasttok_plugin.lightning.protocol import TokenizerSource

__all__ = ["TuneRequest", "recorded_scale", "scale_from_files", "tune_into", "untuned"]


@dataclass(frozen=True, slots=True)
class TuneRequest:
    """The callback's budget: every head's held-out ``quantile`` of token lengths <= ``max_action_tokens``."""

    max_action_tokens: int
    quantile: float

    @classmethod
    def of(cls, max_action_tokens: object, quantile: object) -> TuneRequest | None:
        """The request of the callback's arguments (None without a budget).

        Raises:
            ValueError: A budget that is not a positive integer or a quantile outside (0, 1].
        """
        if max_action_tokens is None:
            return None
        if (
            isinstance(max_action_tokens, bool)
            or not isinstance(max_action_tokens, int)
            or max_action_tokens < 1
        ):
            raise ValueError(
                f"FastTokenizerCallback: tune_max_action_tokens must be a positive integer or None, got "
                f"{max_action_tokens!r}"
            )
        if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0 < quantile <= 1:
            raise ValueError(f"FastTokenizerCallback: tune_quantile must be in (0, 1], got {quantile!r}")
        return cls(int(max_action_tokens), float(quantile))

    def matches(self, record: Any) -> bool:
        """Whether a report's tune record answered this request."""
        return (
            isinstance(record, Mapping)
            and record.get("goal") == "max_action_tokens"
            and record.get("max_action_tokens") == self.max_action_tokens
            and record.get("quantile") == self.quantile
        )


def _scale_of(report_text: bytes | str, request: TuneRequest) -> float | None:
    try:
        settings = json.loads(report_text).get("settings", {})
    except (ValueError, AttributeError):
        return None
    record = settings.get(TUNE_KEY) if isinstance(settings, Mapping) else None
    if not request.matches(record) or not isinstance(record.get("scale"), (int, float)):
        return None
    return float(record["scale"])


def recorded_scale(folder: Path, request: TuneRequest | None) -> float | None:
    """The scale a previous run tuned into ``folder`` for this request (None: none, another, no request)."""
    if request is None:
        return None
    path = folder / REPORT_NAME
    try:
        return _scale_of(path.read_bytes(), request) if path.is_file() else None
    except OSError:
        return None


def scale_from_files(files: Mapping[str, bytes], request: TuneRequest | None) -> float | None:
    """The scale rank 0's folder bytes record for this request (other ranks); None without a request."""
    text = files.get(REPORT_NAME)
    return _scale_of(text, request) if text is not None and request is not None else None


def tune_into(
    folder: Path, source: TokenizerSource, settings: FitSettings, request: TuneRequest, *, progress: bool
) -> float:
    """Tune for ``request`` on ``source`` and write the chosen tokenizer into ``folder``; return its scale."""
    from fasttok_plugin.fit.tune import tune_tokenizer

    _, _, result = tune_tokenizer(
        source,
        settings,
        max_action_tokens=request.max_action_tokens,
        quantile=request.quantile,
        out_dir=folder,
        progress=progress,
        preflight=False,
    )
    return result.scale


def untuned(folder: Path, request: TuneRequest | None, fingerprint: str, on_mismatch: str) -> bool:
    """May a tokenizer in ``folder`` with the right fingerprint but no tune record for ``request`` be reused?

    True without a request. Otherwise (a plain fit at the start scale has the same fingerprint) it is a
    mismatch: an error, or under ``on_mismatch="refit"`` a warning and False (the folder is tuned into).

    Raises:
        TokenizerMismatchError: Under ``on_mismatch="error"``.
    """
    if request is None:
        return True
    message = (
        f"tokenizer_dir {folder} holds a tokenizer that was not tuned for tune_max_action_tokens="
        f"{request.max_action_tokens} (tune_quantile={request.quantile}). Fix: point tokenizer_dir at a new "
        "folder, drop tune_max_action_tokens to use it as it is, or pass on_mismatch='refit' to tune into it"
    )
    if on_mismatch == "refit":
        rank_zero_warn(f"FastTokenizerCallback: tuning. {message}")
        return False
    raise TokenizerMismatchError(message, expected=fingerprint, found=fingerprint, tokenizer_dir=folder)
