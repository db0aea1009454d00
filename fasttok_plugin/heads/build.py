"""`build_norm_heads`: the single source of how a mixture's actions are normalized (DESIGN §5).

Entries are grouped into heads by typed `HeadKey` (by default their ``(robot_type, control_mode)`` tags,
or a singleton fallback on the entry itself when a tag is missing; the ``global`` and ``dataset``
groupings make one head over the mixture or one per entry), each head's stats are pooled over its
members (zero-padded to ``max_action_dim``, non-finite values masked, count-weighted mean and pooled
variance: `fasttok_plugin.heads.pooling`), and every problem met is returned as a record. It never raises
on bad data: whether a problem is fatal is the caller's policy (`NormHeads.raise_for_errors`).

Entries are addressed by their position in ``ResolvedMixture.entries`` throughout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from fasttok_plugin._validate import MAX_ACTION_DIM, positive_int
from fasttok_plugin.defaults import DEFAULT_HEAD_GROUPING
from fasttok_plugin.heads.fingerprint import norm_heads_fingerprint
from fasttok_plugin.heads.issues import (
    DimOverflow,
    DuplicateFallback,
    FilledDim,
    IncompatibleDims,
    MissingTag,
    NonFiniteStat,
    SkippedEntry,
)
from fasttok_plugin.heads.keys import HeadKey, check_head_grouping, grouped_key, is_missing_tag
from fasttok_plugin.heads.model import NormHeads
from fasttok_plugin.heads.pooling import STATS, PooledStats, nonfinite_cells, pool_stats

if TYPE_CHECKING:  # pragma: no cover - typing only; heads never needs these at runtime
    from fasttok_plugin.lerobot import DatasetMeta
    from fasttok_plugin.resolve import ResolvedEntry, ResolvedMixture
    from fasttok_plugin.transforms import ActionTransform

__all__ = ["build_norm_heads"]

logger = logging.getLogger(__name__)

_TAG_FIELDS = ("robot_type", "control_mode")


@dataclass(frozen=True, slots=True, eq=False)  # holds an array
class _Member:
    """One entry pooled into a head."""

    position: int
    name: str
    dim: int
    weight: int
    stats: np.ndarray  # (4, width) in STATS order, zero-padded to the head width


@dataclass(frozen=True, slots=True)
class _EntryOutcome:
    """What one entry contributes: its key and dim when readable, and its member row or why it has none."""

    name: str
    key: HeadKey | None = None  # None: metadata could not be read
    dim: int | None = None
    member: _Member | None = None  # None: the entry gets no head
    missing_tags: tuple[MissingTag, ...] = ()
    skipped: SkippedEntry | None = None
    overflow: DimOverflow | None = None


@dataclass(frozen=True, slots=True)
class _Head:
    """A head's key and its members, in mixture order."""

    key: HeadKey
    members: tuple[_Member, ...]


@dataclass(frozen=True, slots=True)
class _PooledHead:
    """A head's pooled stats with the head-level problems met pooling it."""

    stats: PooledStats
    count: int
    native_dim: int
    nonfinite: tuple[NonFiniteStat, ...]
    filled: tuple[FilledDim, ...]
    incompatible: IncompatibleDims | None


def _pad(values: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros(width, dtype=np.float64)
    out[: values.shape[0]] = values
    return out


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


# --- per entry -----------------------------------------------------------------------------------


def _missing_tags(
    position: int, entry: ResolvedEntry, require: Mapping[str, bool], pointer: str
) -> tuple[MissingTag, ...]:
    values = (entry.robot_type, entry.control_mode)
    return tuple(
        MissingTag(position, entry.name, field, value, pointer)
        for field, value in zip(_TAG_FIELDS, values, strict=True)
        if require[field] and is_missing_tag(value)
    )


def _stat_arrays(meta: DatasetMeta, dim: int) -> tuple[list[np.ndarray], int] | str:
    """The entry's four stats as flat float64 arrays with its pooling weight, or why they cannot be pooled."""
    stats = meta.stats
    if stats is None:
        return str(meta.stats_error) if meta.stats_error is not None else "the dataset has no stats"
    arrays = [np.asarray(getattr(stats, s), dtype=np.float64).reshape(-1) for s in STATS]
    bad = [(s, a.shape[0]) for s, a in zip(STATS, arrays, strict=True) if a.shape[0] != dim]
    if bad:
        # lerobot validates this; kept here so no caller can pool misaligned stats.
        detail = ", ".join(f"{s} has {n} values" for s, n in bad)
        return (
            f"stats ({stats.source}) do not match action dim {dim}: {detail}; "
            f"regenerate meta/stats.json or check the action_key"
        )
    # A stats.json "count" of 0 (seen from some writers) says nothing: weigh by info.json's frames.
    weight = int(stats.count) if int(stats.count) > 0 else int(meta.total_frames)
    return arrays, max(weight, 0)


def _entry_outcome(
    position: int,
    entry: ResolvedEntry,
    width: int,
    require: Mapping[str, bool],
    grouping: str,
    from_data: bool = False,
    transform: ActionTransform | None = None,
) -> _EntryOutcome:
    """Key, dim, member row and problems of the entry at ``position``.

    ``from_data``: the stats will come from the frames (`NormHeads.with_data_stats`), so stored stats
    that are missing or describe other columns (a selection) do not skip the entry: it gets zero
    placeholder stats, replaced before anything normalizes with them.
    """
    name = entry.name
    pointer = str(getattr(entry.entry, "pointer", "") or "")
    meta = entry.meta
    if meta is None:
        # The tags of an unreadable dataset are unknown: report the read error, not a fallback.
        reason = str(entry.error) if entry.error is not None else "metadata could not be read"
        return _EntryOutcome(name, skipped=SkippedEntry(position, name, reason, pointer))

    key = grouped_key(grouping, entry.robot_type, entry.control_mode, position, name)
    native = int(meta.action_dim)
    dim = native if transform is None else transform.output_dim(native)
    readable = _EntryOutcome(name, key, dim, missing_tags=_missing_tags(position, entry, require, pointer))
    read = _stat_arrays(meta, native)
    if from_data and (isinstance(read, str) or dim != native):
        read = [np.zeros(dim) for _ in STATS], max(int(meta.total_frames), 0)
    if isinstance(read, str):
        return replace(readable, skipped=SkippedEntry(position, name, read, pointer))
    if dim > width:
        return replace(readable, overflow=DimOverflow(position, name, dim, width, pointer))
    arrays, weight = read
    padded = np.stack([_pad(a, width) for a in arrays])
    return replace(readable, member=_Member(position, name, dim, weight, padded))


# --- grouping and pooling ------------------------------------------------------------------------


def _group(outcomes: Sequence[_EntryOutcome]) -> tuple[list[_Head], list[int]]:
    """Heads in order of first occurrence, and the head of every entry position (``-1``: none)."""
    row_of: dict[HeadKey, int] = {}
    members: list[list[_Member]] = []
    dataset_to_head: list[int] = []
    for outcome in outcomes:
        if outcome.member is None or outcome.key is None:
            dataset_to_head.append(-1)
            continue
        row = row_of.setdefault(outcome.key, len(members))
        if row == len(members):
            members.append([])
        members[row].append(outcome.member)
        dataset_to_head.append(row)
    return [_Head(key, tuple(members[row])) for key, row in row_of.items()], dataset_to_head


def _pool_head(row: int, head: _Head, width: int) -> _PooledHead:
    """Pool one head and collect its head-level problems (non-finite, filled, incompatible)."""
    key, members = head.key.display, head.members
    dims = [m.dim for m in members]
    incompatible = None
    # Only a tag pair promises one robot layout; a global head pads every member to the widest (as
    # OpenTau --no-per-head-norm and openpi do), a fallback or per-entry head has one member.
    if head.key.is_tagged and len(set(dims)) > 1:
        incompatible = IncompatibleDims(
            row, key, tuple((m.position, m.dim) for m in members), tuple(m.name for m in members)
        )
    stacked = np.stack([m.stats for m in members], axis=1)  # (4, members, width)
    nonfinite = tuple(
        NonFiniteStat(
            row,
            key,
            dim,
            stat,
            tuple(members[r].position for r in rows),
            tuple(members[r].name for r in rows),
        )
        for stat, dim, rows in nonfinite_cells(stacked)
    )
    weights = np.array([m.weight for m in members], dtype=np.float64)
    pooled = pool_stats(stacked, weights)
    if pooled.unweighted:
        logger.warning("head %d (%s): members report no frames; pooling mean/std unweighted", row, key)
    return _PooledHead(
        stats=pooled,
        count=int(weights.sum()),
        native_dim=max(dims),
        nonfinite=nonfinite,
        filled=_filled_dims(row, key, pooled, width),
        incompatible=incompatible,
    )


def _filled_dims(row: int, key: str, pooled: PooledStats, width: int) -> tuple[FilledDim, ...]:
    filled = []
    for dim in range(width):
        what: tuple[str, ...] = ()
        if not pooled.has_range[dim]:
            what += ("min", "max")
        if not pooled.has_moments[dim]:
            what += ("mean", "std")
        if what:
            filled.append(FilledDim(row, key, dim, what))
    return tuple(filled)


def _duplicate_fallbacks(
    resolved: ResolvedMixture, outcomes: Sequence[_EntryOutcome]
) -> tuple[DuplicateFallback, ...]:
    """Repo ids listed more than once among fallback entries (each became its own singleton head)."""
    by_repo: dict[str, list[int]] = {}
    for position, outcome in enumerate(outcomes):
        if outcome.key is not None and outcome.key.is_fallback:
            by_repo.setdefault(resolved.entries[position].entry.repo_id, []).append(position)
    return tuple(
        DuplicateFallback(repo_id, tuple(positions), tuple(outcomes[p].name for p in positions))
        for repo_id, positions in by_repo.items()
        if len(positions) > 1
    )


# --- the heads -----------------------------------------------------------------------------------


def _stacked(pooled: Sequence[_PooledHead], width: int) -> list[np.ndarray]:
    """The ``(H, width)`` min, max, mean and std arrays, read-only."""
    out = []
    for stat in STATS:
        rows = [getattr(p.stats, stat) for p in pooled]
        array = np.stack(rows) if rows else np.zeros((0, width), dtype=np.float64)
        out.append(_readonly(np.ascontiguousarray(array, dtype=np.float64)))
    return out


def _outcomes(
    resolved: ResolvedMixture,
    width: int,
    require: Mapping[str, bool],
    grouping: str,
    from_data: bool,
    transforms: Sequence[ActionTransform | None] | None,
) -> list[_EntryOutcome]:
    per_entry = tuple(transforms) if transforms is not None else (None,) * len(resolved.entries)
    return [
        _entry_outcome(p, entry, width, require, grouping, from_data, per_entry[p])
        for p, entry in enumerate(resolved.entries)
    ]


def build_norm_heads(
    resolved: ResolvedMixture,
    max_action_dim: int,
    *,
    grouping: str = DEFAULT_HEAD_GROUPING,
    stats_source: str = "stored",
    transforms: Sequence[ActionTransform | None] | None = None,
) -> NormHeads:
    """Group a resolved mixture into norm heads and pool their stats (DESIGN §5, §11 item 1).

    Args:
        resolved: The resolved mixture (entries in mixture order, with metadata or the read error).
        max_action_dim: Width every action is zero-padded to; also the stats width.
        grouping: ``"robot_control"`` (one head per ``(robot_type, control_mode)``, a fallback singleton
            per entry with a missing tag), ``"global"`` (one head over every usable entry, dims padded
            to the widest member) or ``"dataset"`` (one head per entry, named after it).
        stats_source: ``"data"`` (stats from the frames, `NormHeads.with_data_stats`): entries without
            usable stored stats or with a column selection get zero placeholder stats, not skipped.
        transforms: Each entry's `ActionTransform`: its native dim becomes the selected width.

    Returns:
        `NormHeads` with stacked ``(H, max_action_dim)`` stats and every problem as records. Entries
        are named by position in ``resolved.entries``; those whose metadata/stats could not be read or
        whose dim overflows get ``dataset_to_head == -1``.

    Raises:
        ValueError: If ``max_action_dim`` is not an integer in ``1..MAX_ACTION_DIM`` (4096), or
            ``grouping`` is not one of ``defaults.HEAD_GROUPINGS``.
    """
    width = positive_int(max_action_dim, "max_action_dim", maximum=MAX_ACTION_DIM)
    grouping = check_head_grouping(grouping, "grouping")
    require = {
        field: bool(getattr(resolved.config, f"require_non_empty_{field}", False)) for field in _TAG_FIELDS
    }
    outcomes = _outcomes(resolved, width, require, grouping, stats_source == "data", transforms)
    heads, dataset_to_head = _group(outcomes)
    pooled = [_pool_head(row, head, width) for row, head in enumerate(heads)]
    stats = _stacked(pooled, width)
    head_keys = tuple(head.key for head in heads)
    entry_names = tuple(o.name for o in outcomes)
    native_dims = tuple(p.native_dim for p in pooled)
    fingerprint = norm_heads_fingerprint(
        keys=head_keys,
        max_action_dim=width,
        native_dims=native_dims,
        stats=stats,
        dataset_to_head=dataset_to_head,
        entry_names=entry_names,
        grouping=grouping,
    )
    norm_heads = NormHeads(
        keys=tuple(key.display for key in head_keys),
        max_action_dim=width,
        min=stats[0],
        max=stats[1],
        mean=stats[2],
        std=stats[3],
        counts=_readonly(np.array([p.count for p in pooled], dtype=np.int64)),
        native_dims=native_dims,
        entry_names=entry_names,
        dataset_to_head=tuple(dataset_to_head),
        head_members=tuple(tuple(m.position for m in head.members) for head in heads),
        fallback_entries=tuple(p for p, o in enumerate(outcomes) if o.key is not None and o.key.is_fallback),
        missing_tags=tuple(tag for o in outcomes for tag in o.missing_tags),
        dim_overflows=tuple(o.overflow for o in outcomes if o.overflow is not None),
        nonfinite=tuple(record for p in pooled for record in p.nonfinite),
        filled_dims=tuple(record for p in pooled for record in p.filled),
        incompatible_dims=tuple(p.incompatible for p in pooled if p.incompatible is not None),
        duplicate_fallbacks=_duplicate_fallbacks(resolved, outcomes),
        skipped_entries=tuple(o.skipped for o in outcomes if o.skipped is not None),
        require_non_empty_robot_type=require["robot_type"],
        require_non_empty_control_mode=require["control_mode"],
        fingerprint=fingerprint,
        entry_keys=tuple(o.key.display if o.key is not None else None for o in outcomes),
        entry_dims=tuple(o.dim for o in outcomes),
        head_keys=head_keys,
        grouping=grouping,
    )
    logger.debug("built %d norm heads from %d entries (%s)", len(heads), len(outcomes), fingerprint[:12])
    return norm_heads
