"""Norm heads: the single source of truth for how a mixture's actions are normalized (DESIGN §5).

`build_norm_heads` groups the entries of a resolved mixture into heads keyed by
``"<robot_type>::<control_mode>"`` (or the entry name when a tag is missing), pools each head's
statistics over its members (zero-padded to ``max_action_dim``, ``±Inf`` masked, count-weighted
mean and pooled variance) and returns every problem it met as structured records. It never raises
on bad data: whether a problem is fatal is the caller's policy (`NormHeads.raise_for_errors`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fasttok_plugin.errors import NormHeadsError

if TYPE_CHECKING:  # pragma: no cover - typing only; heads never needs these at runtime
    from fasttok_plugin.resolve import ResolvedMixture

__all__ = [
    "DimOverflow",
    "DuplicateFallback",
    "FilledDim",
    "IncompatibleDims",
    "MissingTag",
    "NonFiniteStat",
    "NormHeads",
    "NormHeadsError",
    "SkippedEntry",
    "build_norm_heads",
    "compute_norm_key",
    "is_missing_tag",
]

logger = logging.getLogger(__name__)

#: Bumped whenever the fingerprint serialization changes, so old fingerprints never match new ones.
_FINGERPRINT_VERSION = "fasttok-norm-heads/1"
_STATS = ("min", "max", "mean", "std")
_TAG_FIELDS = ("robot_type", "control_mode")


def is_missing_tag(value: object) -> bool:
    """Return True when a robot_type/control_mode tag is unusable: None, blank, or "unknown" (any case)."""
    if value is None:
        return True
    text = str(value).strip()
    return not text or text.lower() == "unknown"


def compute_norm_key(robot_type: object, control_mode: object, name: str) -> tuple[str, bool]:
    """Return ``(key, fallback)`` for an entry.

    Args:
        robot_type: Effective robot type (mixture override, else ``info.json``).
        control_mode: Effective control mode (mixture override, else ``info.json``).
        name: The entry's unique name (``repo_id``, with ``#i`` when the repo id repeats).

    Returns:
        ``("<robot_type>::<control_mode>", False)`` when both tags are usable, else ``(name, True)``:
        the entry becomes a singleton head named after itself.
    """
    if is_missing_tag(robot_type) or is_missing_tag(control_mode):
        return name, True
    return f"{robot_type}::{control_mode}", False


def _where(pointer: str) -> str:
    return f" at {pointer}" if pointer else ""


@dataclass(frozen=True, slots=True)
class MissingTag:
    """An entry whose tag is missing while the mixture sets ``require_non_empty_<field>``."""

    entry: int
    name: str
    field: str  # "robot_type" | "control_mode"
    value: object
    pointer: str = ""  # JSON pointer of the entry in the mixture file

    def message(self) -> str:
        """Return a one-line description naming the entry, the field and the fix."""
        return (
            f"entry {self.entry} ({self.name}): {self.field} is missing (value {self.value!r}) but "
            f'require_non_empty_{self.field} is set; add "{self.field}": "<{self.field}>" to the '
            f"entry{_where(self.pointer)} or to the dataset's meta/info.json"
        )


@dataclass(frozen=True, slots=True)
class DimOverflow:
    """An entry whose native action dim exceeds ``max_action_dim`` (excluded from pooling)."""

    entry: int
    name: str
    dim: int
    max_action_dim: int
    pointer: str = ""

    def message(self) -> str:
        """Return a one-line description naming the entry, the field and the fix."""
        return (
            f"entry {self.entry} ({self.name}): action dim {self.dim} exceeds max_action_dim "
            f"{self.max_action_dim}; raise max_action_dim to at least {self.dim} or remove the entry"
            f"{_where(self.pointer)}"
        )


@dataclass(frozen=True, slots=True)
class NonFiniteStat:
    """A non-finite (NaN or ±Inf) stat value that was masked out before pooling."""

    head: int
    key: str
    dim: int
    stat: str  # "min" | "max" | "mean" | "std"
    entries: tuple[int, ...]
    names: tuple[str, ...] = ()

    def message(self) -> str:
        """Return a one-line description of the masked values."""
        who = ", ".join(f"{i} ({n})" for i, n in zip(self.entries, self.names, strict=False)) or str(
            self.entries
        )
        return (
            f"head {self.head} ({self.key}): non-finite {self.stat} in dim {self.dim} from entries {who}; "
            f"masked before pooling (fix the dataset's meta/stats.json)"
        )


@dataclass(frozen=True, slots=True)
class FilledDim:
    """A head dim where no member had a finite value, filled with a default.

    ``stats`` says what was filled: ``("min", "max")`` -> ``[-1, 1]``; ``("mean", "std")`` -> ``0, 1``.
    """

    head: int
    key: str
    dim: int
    stats: tuple[str, ...] = ("min", "max")

    def message(self) -> str:
        """Return a one-line description naming the head, the dim and the fix."""
        filled = []
        if "min" in self.stats:
            filled.append("min/max filled with [-1, 1]")
        if "mean" in self.stats:
            filled.append("mean/std filled with 0/1")
        return (
            f"head {self.head} ({self.key}): dim {self.dim} has no finite {'/'.join(self.stats)} in any "
            f"member; {' and '.join(filled)}; fix the members' meta/stats.json"
        )


@dataclass(frozen=True, slots=True)
class IncompatibleDims:
    """Entries sharing a (non-fallback) head key but with different native action dims."""

    head: int
    key: str
    dims: tuple[tuple[int, int], ...]  # (entry index, native dim)
    names: tuple[str, ...] = ()

    def message(self) -> str:
        """Return a one-line description naming the entries and the fix."""
        names = self.names or tuple(str(i) for i, _ in self.dims)
        who = ", ".join(f"entry {i} ({n}) d={d}" for (i, d), n in zip(self.dims, names, strict=False))
        return (
            f"head {self.head} ({self.key}): members have different action dims: {who}; "
            f"give them distinct robot_type/control_mode overrides or fix the action_key"
        )


@dataclass(frozen=True, slots=True)
class DuplicateFallback:
    """The same ``repo_id`` listed more than once without usable tags (identical singleton heads)."""

    repo_id: str
    entries: tuple[int, ...]
    names: tuple[str, ...] = ()

    def message(self) -> str:
        """Return a one-line description and the likely fix."""
        return (
            f"repo_id {self.repo_id!r} appears in fallback entries {list(self.entries)} "
            f"({', '.join(self.names)}): each becomes its own singleton head instead of sharing one "
            f"(identical stats unless their episode selections differ); remove the duplicate or set "
            f"robot_type/control_mode on the entries"
        )


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """An entry that got no head: its metadata or stats could not be read."""

    entry: int
    name: str
    reason: str
    pointer: str = ""

    def message(self) -> str:
        """Return a one-line description naming the entry and the reason (which carries the fix)."""
        label = f"entry {self.entry} ({self.name})"
        if label in self.reason:  # dataset errors already name the entry: don't say it twice
            return f"{self.reason} (entry skipped, no norm head{_where(self.pointer)})"
        return f"{label}{_where(self.pointer)} was skipped (no norm head): {self.reason}"


@dataclass(frozen=True, eq=False)  # arrays: compare heads by `fingerprint`, hash by identity
class NormHeads:
    """Per-head normalization statistics of a mixture plus everything a preflight reports.

    Stats arrays are ``(H, max_action_dim)`` float64, finite and read-only; dims beyond a member's
    native dim are zero-padded exactly like the data.
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
    entry_keys: tuple[str | None, ...] = ()  # per entry; None when metadata could not be read
    entry_dims: tuple[int | None, ...] = ()  # native action dim per entry; None when unknown

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


def _pad(values: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros(width, dtype=np.float64)
    out[: values.shape[0]] = values
    return out


def _fingerprint(
    *,
    keys: Sequence[str],
    max_action_dim: int,
    native_dims: Sequence[int],
    stats: Sequence[np.ndarray],
    dataset_to_head: Sequence[int],
    entry_names: Sequence[str],
) -> str:
    """sha256 over a canonical serialization; independent of process, dict order and hash seeds."""
    digest = hashlib.sha256()
    header = json.dumps(
        {
            "version": _FINGERPRINT_VERSION,
            "keys": list(keys),
            "max_action_dim": int(max_action_dim),
            "native_dims": [int(d) for d in native_dims],
            "dataset_to_head": [int(h) for h in dataset_to_head],
            "entry_names": list(entry_names),
            "shape": [len(keys), int(max_action_dim)],
        },
        sort_keys=True,
        ensure_ascii=True,
        separators=(",", ":"),
    ).encode("ascii")
    digest.update(len(header).to_bytes(8, "little"))
    digest.update(header)
    for name, array in zip(_STATS, stats, strict=True):
        # + 0.0 turns -0.0 into 0.0 so equal values always hash equal; explicit little-endian bytes.
        payload = np.ascontiguousarray(np.asarray(array, dtype=np.float64) + 0.0, dtype="<f8").tobytes()
        digest.update(name.encode("ascii"))
        digest.update(len(payload).to_bytes(8, "little"))
        digest.update(payload)
    return digest.hexdigest()


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def build_norm_heads(resolved: ResolvedMixture, max_action_dim: int) -> NormHeads:
    """Group a resolved mixture into norm heads and pool their stats (DESIGN §5).

    Args:
        resolved: The resolved mixture (entries in mixture order, with metadata or the read error).
        max_action_dim: Width every action is zero-padded to; also the stats width.

    Returns:
        `NormHeads` with stacked ``(H, max_action_dim)`` stats and every problem as records. Entries
        whose metadata/stats could not be read or whose dim overflows get ``dataset_to_head == -1``.

    Raises:
        ValueError: If ``max_action_dim`` is not a positive integer (a programming error, not data).
    """
    if isinstance(max_action_dim, bool) or not isinstance(max_action_dim, (int, np.integer)):
        raise ValueError(f"max_action_dim must be a positive int, got {max_action_dim!r}")
    width = int(max_action_dim)
    if width <= 0:
        raise ValueError(f"max_action_dim must be a positive int, got {max_action_dim!r}")

    config = resolved.config
    require = {
        "robot_type": bool(getattr(config, "require_non_empty_robot_type", False)),
        "control_mode": bool(getattr(config, "require_non_empty_control_mode", False)),
    }

    entry_names: list[str] = []
    entry_keys: list[str | None] = []
    entry_dims: list[int | None] = []
    dataset_to_head: list[int] = []
    missing_tags: list[MissingTag] = []
    dim_overflows: list[DimOverflow] = []
    skipped: list[SkippedEntry] = []
    fallback_entries: list[int] = []
    fallback_by_repo: dict[str, list[int]] = {}

    head_index: dict[str, int] = {}
    head_keys: list[str] = []
    head_fallback: list[bool] = []
    head_members: list[list[int]] = []
    # per head: list of (entry position, native dim, weight, padded stats (4, width))
    head_rows: list[list[tuple[int, int, int, np.ndarray]]] = []

    for position, entry in enumerate(resolved.entries):
        index = int(entry.index)
        name = entry.name
        pointer = str(getattr(entry.entry, "pointer", "") or "")
        entry_names.append(name)
        meta = entry.meta
        if meta is None:
            # The tags of an unreadable dataset are unknown: report the read error, not a fallback.
            reason = str(entry.error) if entry.error is not None else "metadata could not be read"
            skipped.append(SkippedEntry(index, name, reason, pointer))
            entry_keys.append(None)
            entry_dims.append(None)
            dataset_to_head.append(-1)
            continue

        robot_type, control_mode = entry.robot_type, entry.control_mode
        key, fallback = compute_norm_key(robot_type, control_mode, name)
        entry_keys.append(key)
        for field, value in zip(_TAG_FIELDS, (robot_type, control_mode), strict=True):
            if require[field] and is_missing_tag(value):
                missing_tags.append(MissingTag(index, name, field, value, pointer))
        if fallback:
            fallback_entries.append(index)
            fallback_by_repo.setdefault(entry.entry.repo_id, []).append(position)

        dim = int(meta.action_dim)
        entry_dims.append(dim)
        stats = meta.stats
        if stats is None:
            reason = str(meta.stats_error) if meta.stats_error is not None else "the dataset has no stats"
            skipped.append(SkippedEntry(index, name, reason, pointer))
            dataset_to_head.append(-1)
            continue
        arrays = [np.asarray(getattr(stats, s), dtype=np.float64).reshape(-1) for s in _STATS]
        bad = [(s, a.shape[0]) for s, a in zip(_STATS, arrays, strict=True) if a.shape[0] != dim]
        if bad:
            # lerobot.py validates this; kept here so no caller can pool misaligned stats.
            detail = ", ".join(f"{s} has {n} values" for s, n in bad)
            reason = (
                f"stats ({stats.source}) do not match action dim {dim}: {detail}; "
                f"regenerate meta/stats.json or check the action_key"
            )
            skipped.append(SkippedEntry(index, name, reason, pointer))
            dataset_to_head.append(-1)
            continue
        if dim > width:
            dim_overflows.append(DimOverflow(index, name, dim, width, pointer))
            dataset_to_head.append(-1)
            continue

        head = head_index.get(key)
        if head is None:
            head = len(head_keys)
            head_index[key] = head
            head_keys.append(key)
            head_fallback.append(fallback)
            head_members.append([])
            head_rows.append([])
        head_members[head].append(index)
        # A stats.json "count" of 0 (seen from some writers) says nothing: weigh by info.json's frames.
        weight = int(stats.count) if int(stats.count) > 0 else int(meta.total_frames)
        head_rows[head].append((position, dim, max(weight, 0), np.stack([_pad(a, width) for a in arrays])))
        dataset_to_head.append(head)

    n_heads = len(head_keys)
    out = {s: np.zeros((n_heads, width), dtype=np.float64) for s in _STATS}
    counts = np.zeros(n_heads, dtype=np.int64)
    native_dims: list[int] = []
    nonfinite: list[NonFiniteStat] = []
    filled: list[FilledDim] = []
    incompatible: list[IncompatibleDims] = []

    for head, rows in enumerate(head_rows):
        key = head_keys[head]
        dims = [d for _, d, _, _ in rows]
        native_dims.append(max(dims))
        if not head_fallback[head] and len(set(dims)) > 1:
            incompatible.append(
                IncompatibleDims(
                    head,
                    key,
                    tuple((int(resolved.entries[p].index), d) for p, d, _, _ in rows),
                    tuple(resolved.entries[p].name for p, _, _, _ in rows),
                )
            )
        member_index = np.array([resolved.entries[p].index for p, _, _, _ in rows], dtype=np.int64)
        member_names = [resolved.entries[p].name for p, _, _, _ in rows]
        stacked = np.stack([r for _, _, _, r in rows], axis=1)  # (4, members, width)
        finite = np.isfinite(stacked)
        for s_i, s_name in enumerate(_STATS):
            for dim_i in np.flatnonzero(~finite[s_i].all(axis=0)):
                culprits = np.flatnonzero(~finite[s_i, :, dim_i])
                nonfinite.append(
                    NonFiniteStat(
                        head,
                        key,
                        int(dim_i),
                        s_name,
                        tuple(int(member_index[c]) for c in culprits),
                        tuple(member_names[c] for c in culprits),
                    )
                )
        masked = np.where(finite, stacked, np.nan)

        # min/max: nanmin/nanmax over members; a dim with no finite min or max becomes [-1, 1].
        has_range = finite[0].any(axis=0) & finite[1].any(axis=0)
        safe_min = np.where(finite[0], masked[0], np.inf).min(axis=0)
        safe_max = np.where(finite[1], masked[1], -np.inf).max(axis=0)
        out["min"][head] = np.where(has_range, safe_min, -1.0)
        out["max"][head] = np.where(has_range, safe_max, 1.0)

        # mean/std: count-weighted over members whose mean and std are both finite in that dim,
        # pooled variance = sum n_i (std_i^2 + (mean_i - mu)^2) / N (population variance).
        weights = np.array([w for _, _, w, _ in rows], dtype=np.float64)
        counts[head] = int(weights.sum())
        if weights.sum() <= 0:
            logger.warning("head %d (%s): members report no frames; pooling mean/std unweighted", head, key)
            weights = np.ones_like(weights)
        usable = finite[2] & finite[3]  # (members, width)
        w = np.where(usable, weights[:, None], 0.0)
        total = w.sum(axis=0)
        has_moments = total > 0
        denom = np.where(has_moments, total, 1.0)
        means = np.where(usable, masked[2], 0.0)
        stds = np.where(usable, masked[3], 0.0)
        mu = (w * means).sum(axis=0) / denom
        var = (w * (stds**2 + (means - mu) ** 2)).sum(axis=0) / denom
        out["mean"][head] = np.where(has_moments, mu, 0.0)
        out["std"][head] = np.where(has_moments, np.sqrt(np.maximum(var, 0.0)), 1.0)

        for dim_i in range(width):
            what = ()
            if not has_range[dim_i]:
                what += ("min", "max")
            if not has_moments[dim_i]:
                what += ("mean", "std")
            if what:
                filled.append(FilledDim(head, key, dim_i, what))

    duplicate_fallbacks = tuple(
        DuplicateFallback(
            repo_id,
            tuple(int(resolved.entries[p].index) for p in positions),
            tuple(resolved.entries[p].name for p in positions),
        )
        for repo_id, positions in fallback_by_repo.items()
        if len(positions) > 1
    )

    stats_arrays = [_readonly(out[s]) for s in _STATS]
    fingerprint = _fingerprint(
        keys=head_keys,
        max_action_dim=width,
        native_dims=native_dims,
        stats=stats_arrays,
        dataset_to_head=dataset_to_head,
        entry_names=entry_names,
    )
    heads = NormHeads(
        keys=tuple(head_keys),
        max_action_dim=width,
        min=stats_arrays[0],
        max=stats_arrays[1],
        mean=stats_arrays[2],
        std=stats_arrays[3],
        counts=_readonly(counts),
        native_dims=tuple(native_dims),
        entry_names=tuple(entry_names),
        dataset_to_head=tuple(dataset_to_head),
        head_members=tuple(tuple(m) for m in head_members),
        fallback_entries=tuple(fallback_entries),
        missing_tags=tuple(missing_tags),
        dim_overflows=tuple(dim_overflows),
        nonfinite=tuple(nonfinite),
        filled_dims=tuple(filled),
        incompatible_dims=tuple(incompatible),
        duplicate_fallbacks=duplicate_fallbacks,
        skipped_entries=tuple(skipped),
        require_non_empty_robot_type=require["robot_type"],
        require_non_empty_control_mode=require["control_mode"],
        fingerprint=fingerprint,
        entry_keys=tuple(entry_keys),
        entry_dims=tuple(entry_dims),
    )
    logger.debug("built %d norm heads from %d entries (%s)", n_heads, len(entry_names), fingerprint[:12])
    return heads
