"""`DataStats`: per-head statistics computed from the frames themselves, and their JSON form (the cache)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["QUANTILES", "QUANTILE_METHOD", "STATS_FORMAT", "DataStats"]

#: The quantile levels computed, in the order of the ``q..`` fields.
QUANTILES: tuple[float, ...] = (0.01, 0.10, 0.50, 0.90, 0.99)
#: How quantiles are defined: ``numpy.quantile(values, q, method="linear")`` (Hyndman & Fan type 7,
#: numpy's default) over the head's pooled finite frames as float64, i.e. ``x[k] + g * (x[k+1] - x[k])``
#: with ``k = floor((n-1) q)``, ``g = (n-1) q - k`` on the sorted values, computed as numpy does.
QUANTILE_METHOD = "linear"
#: Format marker and version of the JSON form; part of the cache key.
STATS_FORMAT = "fasttok_plugin.data_stats/1"

_ARRAYS = ("min", "max", "mean", "std", "q01", "q10", "q50", "q90", "q99")


@dataclass(frozen=True, eq=False)  # arrays: compare with `same_values`
class DataStats:
    """Per-head action statistics of exactly the frames each head trains on (DESIGN §12).

    Every frame of every selected episode of a head's members counts once (after the transform, as the
    float32 values a batch carries), zero-padded to ``max_action_dim`` like the data: dims past every
    member's width are 0 in every statistic (std 0). Frames holding NaN/Inf are excluded and counted in
    ``nonfinite``. A head without a finite frame has NaN statistics (reported by `problems`).

    Attributes:
        keys: Display name of each head (``NormHeads.keys``).
        min, max, mean, std, q01, q10, q50, q90, q99: ``(H, max_action_dim)`` float64. ``min``/``max`` and
            the quantiles are exact (quantiles as `QUANTILE_METHOD` defines); ``mean``/``std`` (population
            std, as LeRobot) are accumulated in float64.
        counts: ``(H,)`` int64 finite frames per head.
        nonfinite: ``(H,)`` int64 frames excluded because a value was NaN/Inf.
        entry_counts: Finite frames per entry position (0 for entries without a head).
        entry_nonfinite: Excluded frames per entry position.
        key: The content key (`stats_key`) the stats were computed for.
        quantile_method: `QUANTILE_METHOD`.
    """

    keys: tuple[str, ...]
    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    q01: np.ndarray
    q10: np.ndarray
    q50: np.ndarray
    q90: np.ndarray
    q99: np.ndarray
    counts: np.ndarray
    nonfinite: np.ndarray
    entry_counts: tuple[int, ...]
    entry_nonfinite: tuple[int, ...]
    key: str
    quantile_method: str = QUANTILE_METHOD

    @property
    def num_heads(self) -> int:
        """Number of heads ``H``."""
        return len(self.keys)

    @property
    def max_action_dim(self) -> int:
        """Width ``D`` of every array."""
        return int(self.min.shape[1])

    def quantile(self, q: float) -> np.ndarray:
        """The ``(H, D)`` quantile at level ``q`` (one of `QUANTILES`)."""
        for level, name in zip(QUANTILES, _ARRAYS[4:], strict=True):
            if math.isclose(q, level):
                return getattr(self, name)
        raise KeyError(f"quantile {q} is not computed; available: {', '.join(map(str, QUANTILES))}")

    def problems(self) -> list[str]:
        """One line per head with excluded (NaN/Inf) frames or without any finite frame."""
        lines = []
        for h, key in enumerate(self.keys):
            if self.nonfinite[h]:
                lines.append(
                    f"head {h} ({key}): {int(self.nonfinite[h])} frame(s) hold NaN/Inf and were left out of "
                    f"its stats ({int(self.counts[h])} used); fix or exclude those episodes"
                )
            if self.counts[h] == 0:
                lines.append(
                    f"head {h} ({key}): no finite frame, its stats are NaN; fix the data or drop its datasets"
                )
        return lines

    def same_values(self, other: DataStats) -> bool:
        """Equal in every field, arrays bit for bit (NaN equal to NaN)."""
        return (
            self.keys == other.keys
            and self.key == other.key
            and self.quantile_method == other.quantile_method
            and self.entry_counts == other.entry_counts
            and self.entry_nonfinite == other.entry_nonfinite
            and all(
                np.array_equal(getattr(self, n), getattr(other, n), equal_nan=True)
                for n in (*_ARRAYS, "counts", "nonfinite")
            )
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-able form; floats round-trip exactly (``repr``), NaN as ``null``."""
        document: dict[str, Any] = {
            "format": STATS_FORMAT,
            "key": self.key,
            "quantile_method": self.quantile_method,
            "keys": list(self.keys),
            "counts": [int(c) for c in self.counts],
            "nonfinite": [int(c) for c in self.nonfinite],
            "entry_counts": list(self.entry_counts),
            "entry_nonfinite": list(self.entry_nonfinite),
        }
        for name in _ARRAYS:
            array = getattr(self, name)
            document[name] = [[None if math.isnan(v) else v for v in row] for row in array.tolist()]
        return document

    @classmethod
    def from_json(cls, document: Any) -> DataStats:
        """Rebuild from `to_json` output.

        Raises:
            ValueError: Not this format, or fields missing, of the wrong type or shape.
        """
        if not isinstance(document, dict) or document.get("format") != STATS_FORMAT:
            raise ValueError(f"not a {STATS_FORMAT} document")
        try:
            keys = tuple(str(k) for k in document["keys"])
            arrays = {n: _array(document[n], len(keys)) for n in _ARRAYS}
            width = {a.shape[1] for a in arrays.values()}
            counts = np.array(document["counts"], dtype=np.int64)
            nonfinite = np.array(document["nonfinite"], dtype=np.int64)
            if len(width) != 1 or counts.shape != (len(keys),) or nonfinite.shape != (len(keys),):
                raise ValueError("arrays of different shapes")
            return cls(
                keys=keys,
                **arrays,
                counts=counts,
                nonfinite=nonfinite,
                entry_counts=tuple(int(c) for c in document["entry_counts"]),
                entry_nonfinite=tuple(int(c) for c in document["entry_nonfinite"]),
                key=str(document["key"]),
                quantile_method=str(document["quantile_method"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed {STATS_FORMAT} document: {exc!r}") from None


def _array(rows: Any, heads: int) -> np.ndarray:
    array = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != heads:
        raise ValueError(f"expected {heads} rows of equal width")
    array.flags.writeable = False
    return array
