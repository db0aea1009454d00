"""What each mixture entry contributed to a sampling run: requested, delivered, skipped, and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DatasetSampleReport", "EntryTally", "sample_warnings", "unsampled"]

# Observed and stated rates within 5% are the same rate (irregular frames, not a wrong unit or fps).
_SAME_RATE = 0.05


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
        weight: The entry's weight as the sampler used it (0 for heads-skipped entries).
        starved: The weight is positive but the budget rounded to 0 chunks (too small a weight for
            ``total_chunks``): the entry is in the mixture and contributes nothing.
        fps: The dataset's ``info.json`` fps (None when the entry was not read).
        observed_fps: Frames per second its timestamps show (None when not read).
        off_grid: The timestamps are not ``t_first + i / fps`` (e.g. milliseconds, or a wrong fps).
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
    weight: float = 0.0
    starved: bool = False
    fps: float | None = None
    observed_fps: float | None = None
    off_grid: bool = False

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
            "weight": self.weight,
            "starved": self.starved,
            "fps": self.fps,
            "observed_fps": self.observed_fps,
            "off_grid": self.off_grid,
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
    off_grid: bool = False
    observed_fps: float | None = None


def unsampled(reports: Sequence[Any]) -> tuple[list[Any], str]:
    """The entries that have a norm head but could not be sampled, and a bullet list naming each.

    One rule for the fit and the training stream: an entry the heads skipped is the preflight's to
    report; an entry with a head whose data could not be read changes the mixture.
    """
    failed = [r for r in reports if getattr(r, "error", None) and getattr(r, "head", -1) >= 0]
    return failed, "\n".join(f"  - entry {r.entry} ({r.name}): {r.error}" for r in failed)


def sample_warnings(reports: Sequence[DatasetSampleReport]) -> list[str]:
    """One warning per entry the run starved (positive weight, 0 chunks) or read off its fps grid."""
    out: list[str] = []
    for r in reports:
        if r.starved:
            out.append(
                f"entry {r.entry} ({r.name}): weight {r.weight:g} is positive but its budget rounded to 0 "
                "chunks; raise its weight (or total_chunks), or remove the entry"
            )
        if r.off_grid and r.error is None:
            out.append(_off_grid_warning(r))
    return out


def _off_grid_warning(r: DatasetSampleReport) -> str:
    where = f"entry {r.entry} ({r.name}): timestamps are off the 1/fps grid of info.json fps={r.fps:g}"
    if r.observed_fps is not None and r.fps and abs(r.observed_fps / r.fps - 1) <= _SAME_RATE:
        # The rate is right: dropped or late frames, which the resampling follows.
        return f"{where} but show its rate ({r.observed_fps:.4g} Hz): irregular frames, resampled as stamped"
    seen = f"{r.observed_fps:.4g} Hz" if r.observed_fps is not None else "an unknown rate"
    return f"{where} (they show {seen}); check that timestamps are in seconds and that info.json fps is right"
