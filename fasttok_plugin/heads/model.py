"""`NormHeads`: per-head normalization stats of a mixture plus every problem met building them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fasttok_plugin.errors import NormHeadsError
from fasttok_plugin.heads.fingerprint import QUANTILE_STATS, norm_heads_fingerprint
from fasttok_plugin.heads.issues import (
    DimOverflow,
    DuplicateFallback,
    FilledDim,
    IncompatibleDims,
    MissingTag,
    NonFiniteStat,
    SkippedEntry,
)
from fasttok_plugin.heads.keys import HeadKey
from fasttok_plugin.heads.pooling import STATS

if TYPE_CHECKING:  # pragma: no cover - typing only
    from collections.abc import Sequence

    from fasttok_plugin.stats import DataStats
    from fasttok_plugin.transforms import ActionTransform

__all__ = ["NormHeads"]


@dataclass(frozen=True, eq=False)  # arrays: compare heads by `fingerprint`, hash by identity
class NormHeads:
    """Per-head normalization statistics of a mixture plus everything a preflight reports.

    Stats arrays are ``(H, max_action_dim)`` float64, finite and read-only; dims beyond a member's
    native dim are zero-padded exactly like the data.

    One index space for entries: ``dataset_to_head``, ``entry_names``, ``entry_keys`` and ``entry_dims``
    are indexed by entry position in ``ResolvedMixture.entries``, and ``head_members``,
    ``fallback_entries`` and every record's ``entry``/``entries`` hold such positions (for
    `resolve_mixture` output a position is also the entry's index in the mixture file).

    Heads are identified by ``head_keys`` (typed `HeadKey`); ``keys`` holds their display names
    (``"rt::cm"`` or the fallback entry's name), which two heads may share, e.g. tags
    ``("x::y", "z")`` and ``("x", "y::z")``.
    """

    keys: tuple[str, ...]
    max_action_dim: int
    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    counts: np.ndarray
    native_dims: tuple[int, ...]
    entry_names: tuple[str, ...]
    dataset_to_head: tuple[int, ...]
    head_members: tuple[tuple[int, ...], ...]
    fallback_entries: tuple[int, ...]
    missing_tags: tuple[MissingTag, ...]
    dim_overflows: tuple[DimOverflow, ...]
    nonfinite: tuple[NonFiniteStat, ...]
    filled_dims: tuple[FilledDim, ...]
    incompatible_dims: tuple[IncompatibleDims, ...]
    duplicate_fallbacks: tuple[DuplicateFallback, ...]
    skipped_entries: tuple[SkippedEntry, ...]
    require_non_empty_robot_type: bool
    require_non_empty_control_mode: bool
    fingerprint: str
    entry_keys: tuple[str | None, ...] = ()  # display key per entry; None when metadata could not be read
    entry_dims: tuple[int | None, ...] = ()  # native action dim per entry; None when unknown
    head_keys: tuple[HeadKey, ...] = ()  # typed identity per head; keys[h] == head_keys[h].display
    grouping: str = "robot_control"  # how entries were grouped (defaults.HEAD_GROUPINGS)
    stats_source: str = "stored"  # "stored" (the datasets' stats.json) or "data" (`with_data_stats`)
    q01: np.ndarray | None = None  # (H, max_action_dim) quantiles of the frames; only with source "data"
    q10: np.ndarray | None = None
    q90: np.ndarray | None = None
    q99: np.ndarray | None = None

    def with_data_stats(
        self,
        stats: DataStats,
        *,
        transforms: Sequence[ActionTransform | None] | None = None,
        key: str | None = None,
    ) -> NormHeads:
        """These heads with the frames' stats (`compute_head_stats`) in place of the stored ones.

        min/max/mean/std are replaced, q01/q10/q90/q99 are added, ``stats_source`` becomes ``"data"`` and
        the fingerprint covers the new stats and the source (stored heads keep theirs).

        Args:
            stats: The stats of these heads' frames.
            transforms: The entries' transforms the stats were computed with: a column selection makes
                the entry's (and its head's) native dim the number of selected columns.
            key: The content key the stats must carry (`stats_key` of these heads), when known.

        Raises:
            ValueError: ``stats`` belong to other heads (keys, width or content key differ) or hold
                non-finite values.
        """
        if tuple(stats.keys) != self.keys or stats.max_action_dim != self.max_action_dim:
            raise ValueError(
                f"data stats are for heads {list(stats.keys)} x {stats.max_action_dim}, these heads are "
                f"{list(self.keys)} x {self.max_action_dim}; compute them from these heads"
            )
        if key is not None and stats.key != key:
            raise ValueError(
                f"data stats were computed for content key {stats.key[:12]}, these heads' data has key "
                f"{key[:12]} (other episodes, files, grouping or transforms); compute them from these heads"
            )
        entry_dims, native_dims = self._selected_dims(transforms)
        names = ("min", "max", "mean", "std", "q01", "q10", "q90", "q99")
        arrays = {n: _frozen(getattr(stats, n)) for n in names}
        bad = [n for n, a in arrays.items() if not np.isfinite(a).all()]
        if bad:
            raise ValueError(f"data stats hold non-finite {', '.join(bad)}: " + "; ".join(stats.problems()))
        fingerprint = norm_heads_fingerprint(
            keys=self.head_keys,
            max_action_dim=self.max_action_dim,
            native_dims=native_dims,
            stats=[arrays[n] for n in STATS],
            dataset_to_head=self.dataset_to_head,
            entry_names=self.entry_names,
            grouping=self.grouping,
            quantiles=[arrays[n] for n in QUANTILE_STATS],
        )
        return dataclasses.replace(
            self,
            **arrays,
            stats_source="data",
            fingerprint=fingerprint,
            native_dims=native_dims,
            entry_dims=entry_dims,
        )

    def _selected_dims(
        self, transforms: Sequence[ActionTransform | None] | None
    ) -> tuple[tuple[int | None, ...], tuple[int, ...]]:
        """``(entry_dims, native_dims)`` after the transforms' column selections."""
        if transforms is None or not self.entry_dims or all(t is None or t.is_identity for t in transforms):
            return self.entry_dims, self.native_dims
        entry_dims = tuple(
            d if d is None or t is None else t.output_dim(d)
            for d, t in zip(self.entry_dims, transforms, strict=True)
        )
        native_dims = tuple(
            max((entry_dims[i] or 0 for i in members), default=self.native_dims[h])
            for h, members in enumerate(self.head_members)
        )
        return entry_dims, native_dims

    @property
    def num_heads(self) -> int:
        """Number of heads ``H``."""
        return len(self.keys)

    def errors(self) -> list[str]:
        """Return every problem that makes these heads unfit for training, one readable line each.

        Covers require_non_empty violations, dim overflow, incompatible dims within a head,
        skipped entries and filled dims. Masked non-finite stats and duplicate fallbacks are
        warnings (`warnings`).
        """
        # Entry problems in mixture order (stable: kinds keep their order per entry), then head problems.
        per_entry: list[SkippedEntry | MissingTag | DimOverflow] = sorted(
            [*self.skipped_entries, *self.missing_tags, *self.dim_overflows], key=lambda r: r.entry
        )
        per_head: list[IncompatibleDims | FilledDim] = sorted(
            [*self.incompatible_dims, *self.filled_dims], key=lambda r: r.head
        )
        return [r.message() for r in (*per_entry, *per_head)]

    def warnings(self) -> list[str]:
        """Return non-fatal findings: masked non-finite stats and duplicate fallback repo ids."""
        return [r.message() for r in (*self.nonfinite, *self.duplicate_fallbacks)]

    def raise_for_errors(self) -> None:
        """Raise `NormHeadsError` listing all `errors` (does nothing when there are none)."""
        errors = self.errors()
        if errors:
            raise NormHeadsError(errors)


def _frozen(array: np.ndarray) -> np.ndarray:
    out = np.array(array, dtype=np.float64)
    out.flags.writeable = False
    return out
