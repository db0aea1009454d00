"""What each mixture entry contributed to a sampling run: requested, delivered, skipped, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DatasetSampleReport", "EntryTally"]


@dataclass(frozen=True, slots=True)
class DatasetSampleReport:
    """What one mixture entry contributed to the last `ChunkSampler.sample` run.

    Attributes:
        entry: Mixture entry index.
        name: Entry name (``repo_id``, ``#i`` when repeated).
        requested: Budget of the entry.
        sampled: Chunks delivered (``requested - skipped_nonfinite`` unless ``error``).
        skipped_nonfinite: Chunks dropped because they held NaN/Inf.
        error: Why the entry delivered nothing (unreadable data, no valid start, skipped head), or None.
        head: Norm-head index (-1 when the heads skipped the entry).
        valid_starts: Number of valid start frames over the selected episodes.
        repeated_starts: Draws that reused a start because the budget exceeded ``valid_starts``.
        freq: Resampling rate in Hz (None when the entry was not read).
    """

    entry: int
    name: str
    requested: int
    sampled: int
    skipped_nonfinite: int
    error: str | None
    head: int = -1
    valid_starts: int = 0
    repeated_starts: int = 0
    freq: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "entry": self.entry,
            "name": self.name,
            "requested": self.requested,
            "sampled": self.sampled,
            "skipped_nonfinite": self.skipped_nonfinite,
            "error": self.error,
            "head": self.head,
            "valid_starts": self.valid_starts,
            "repeated_starts": self.repeated_starts,
            "freq": self.freq,
        }


@dataclass(slots=True)
class EntryTally:
    """Running totals of one entry while its parts come in (becomes its `DatasetSampleReport`)."""

    requested: int = 0
    sampled: int = 0
    skipped: int = 0
    valid: int = 0
    repeated: int = 0
    errors: list[str] = field(default_factory=list)
