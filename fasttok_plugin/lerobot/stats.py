"""Action stats: parse ``meta/stats.json`` and per-episode stats, and pool per-episode stats exactly.

Stats come from ``meta/stats.json`` or, when it is absent or an episode selection is active, are
aggregated from the per-episode stats (v2.1 ``meta/episodes_stats.jsonl``, v3.0 ``stats/...`` columns of
``meta/episodes/*.parquet``) with min of mins, max of maxes, count-weighted mean and pooled variance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fasttok_plugin.errors import DatasetError
from fasttok_plugin.lerobot._json import load_json_or_error
from fasttok_plugin.lerobot._messages import short_list
from fasttok_plugin.lerobot.model import ActionStats, EpisodeInfo

__all__ = [
    "STATS_FIELDS",
    "aggregate_episode_stats",
    "aggregate_stats",
    "read_stats_json",
    "stats_from_entry",
]

STATS_FIELDS = ("min", "max", "mean", "std")
_V2_HINT = "recompute per-episode stats or fix the line"


def _stat_vector(value: Any, dim: int) -> np.ndarray | None:
    """A stats field as a float64 ``(dim,)`` vector, or ``None`` when it has the wrong shape/type."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.ndim != 1 or arr.shape[0] != dim:
        # Some writers store (1, d) or (d, 1); accept exactly d values and nothing else.
        if arr.size == dim and arr.ndim == 2 and 1 in arr.shape:
            return arr.reshape(dim)
        return None
    return arr


def _count_value(value: Any) -> int | None:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    if arr.size < 1 or not np.isfinite(arr[0]) or arr[0] < 0:
        return None
    return int(arr[0])


def stats_from_entry(
    entry: Any, dim: int, *, what: str, path: Path, source: str, default_count: int, name: str | None
) -> ActionStats:
    """Validate one ``{min,max,mean,std,count}`` mapping as `ActionStats`.

    Args:
        entry: The mapping as found on disk.
        dim: Action dim the vectors must have.
        what: How messages name the entry (e.g. ``meta/stats.json['action']``).
        path: File the entry came from.
        source: Recorded as the result's ``source``.
        default_count: Frames the stats cover when the entry has no ``count``.
        name: Dataset name for messages.

    Raises:
        DatasetError: ``stats_invalid`` naming ``what`` (not a mapping, a field missing or misshapen).
    """
    hint = "recompute the dataset stats (e.g. with LeRobot's compute_stats) or fix the file"
    if not isinstance(entry, Mapping):
        raise DatasetError(
            "stats_invalid", f"{what} is not an object of stats", path=path, hint=hint, dataset=name
        )
    vectors: dict[str, np.ndarray] = {}
    for field in STATS_FIELDS:
        if field not in entry:
            raise DatasetError("stats_invalid", f"{what} lacks '{field}'", path=path, hint=hint, dataset=name)
        vector = _stat_vector(entry[field], dim)
        if vector is None:
            got = np.asarray(entry[field], dtype=object).shape
            raise DatasetError(
                "stats_invalid",
                f"{what}.{field} has shape {got}, expected ({dim},) for action dim {dim}",
                path=path,
                hint=hint,
                dataset=name,
            )
        vectors[field] = vector
    count = default_count
    if "count" in entry:
        parsed = _count_value(entry["count"])
        if parsed is None:
            raise DatasetError(
                "stats_invalid",
                f"{what}.count is not a frame count: {entry['count']!r}",
                path=path,
                hint=hint,
                dataset=name,
            )
        count = parsed
    return ActionStats(vectors["min"], vectors["max"], vectors["mean"], vectors["std"], count, source)


def aggregate_stats(parts: Sequence[ActionStats], source: str) -> ActionStats:
    """Pool per-episode stats: min of mins, max of maxes, count-weighted mean, pooled variance.

    ``var = sum(n_i * (std_i**2 + (mean_i - mean)**2)) / sum(n_i)``; NaN/Inf propagate like numpy does
    over the raw data, so the result equals stats computed over the concatenated frames.

    Args:
        parts: Per-episode stats (same dim).
        source: Recorded as the result's ``source``.

    Returns:
        The pooled stats.

    Raises:
        ValueError: ``parts`` is empty.
    """
    if not parts:
        raise ValueError("aggregate_stats needs at least one part")
    mins = np.stack([p.min for p in parts])
    maxs = np.stack([p.max for p in parts])
    means = np.stack([p.mean for p in parts])
    stds = np.stack([p.std for p in parts])
    counts = np.asarray([p.count for p in parts], dtype=np.float64)
    total = float(counts.sum())
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if total > 0:
            weights = counts[:, None] / total
            mean = (weights * means).sum(axis=0)
            var = (weights * (stds**2 + (means - mean) ** 2)).sum(axis=0)
        else:
            mean = np.full(means.shape[1], np.nan)
            var = np.full(means.shape[1], np.nan)
        std = np.sqrt(np.where(var < 0, 0.0, var))  # tiny negative from rounding only
    return ActionStats(mins.min(axis=0), maxs.max(axis=0), mean, std, int(total), source)


def read_stats_json(path: Path, key: str, dim: int, info: Mapping[str, Any], name: str | None) -> ActionStats:
    """The action stats of ``meta/stats.json`` (``count`` defaults to ``info.json``'s ``total_frames``).

    Raises:
        DatasetError: ``stats_missing`` / ``stats_invalid``.
    """
    document = load_json_or_error(path, "stats_missing", "stats_invalid", "recompute the dataset stats", name)
    if not isinstance(document, Mapping) or key not in document:
        raise DatasetError(
            "stats_invalid",
            f"meta/stats.json has no entry for the action feature '{key}'",
            path=path,
            hint="recompute the dataset stats (e.g. with LeRobot's compute_stats), or set action_key to the "
            "column the stats describe",
            dataset=name,
        )
    total = info.get("total_frames")
    return stats_from_entry(
        document[key],
        dim,
        what=f"meta/stats.json['{key}']",
        path=path,
        source="meta/stats.json",
        default_count=int(total) if isinstance(total, int) else 0,
        name=name,
    )


def aggregate_episode_stats(
    root: Path,
    key: str,
    dim: int,
    chosen: Sequence[EpisodeInfo],
    stats_values: Mapping[int, Mapping[str, Any]] | None,
    is_v3: bool,
    selection_active: bool,
    name: str | None,
) -> ActionStats:
    """Pool the chosen episodes' stats (v2.x ``episodes_stats.jsonl``, v3.0 episode-table columns).

    Args:
        root: Dataset folder.
        key: Action column.
        dim: Action dim.
        chosen: The selected episodes.
        stats_values: v3.0 ``stats/<key>/<field>`` column values per episode index (``None``: absent).
        is_v3: The dataset uses the v3.0 layout.
        selection_active: An episode selection is why the stats are aggregated (for the message).
        name: Dataset name for messages.

    Raises:
        DatasetError: ``stats_missing`` (no per-episode stats) or ``stats_invalid``.
    """
    why = (
        "an episode selection is active, so stats must"
        if selection_active
        else "meta/stats.json is absent, so stats must"
    )
    if is_v3:
        return _aggregate_v3(root, key, dim, chosen, stats_values, why, name)
    path = root / "meta" / "episodes_stats.jsonl"
    if not path.is_file():
        raise DatasetError(
            "stats_missing",
            f"{why} come from meta/episodes_stats.jsonl, which does not exist",
            path=path,
            hint="compute the dataset stats (LeRobot writes meta/stats.json and meta/episodes_stats.jsonl)",
            dataset=name,
        )
    lengths = {ep.index: ep.length for ep in chosen}
    return aggregate_stats(_v2_episode_stats(path, key, dim, lengths, name), "meta/episodes_stats.jsonl")


def _aggregate_v3(
    root: Path,
    key: str,
    dim: int,
    chosen: Sequence[EpisodeInfo],
    stats_values: Mapping[int, Mapping[str, Any]] | None,
    why: str,
    name: str | None,
) -> ActionStats:
    path = root / "meta" / "episodes"
    source = "meta/episodes (stats columns)"
    if stats_values is None:
        raise DatasetError(
            "stats_missing",
            f"{why} come from the episode tables' stats/{key}/* columns, which do not exist",
            path=path,
            hint="compute the dataset stats (LeRobot writes meta/stats.json and stats/... episode columns)",
            dataset=name,
        )
    parts = []
    for ep in chosen:
        values = stats_values.get(ep.index)
        if values is None:
            raise DatasetError(
                "stats_invalid",
                f"episode {ep.index} has no stats row",
                path=path,
                hint="recompute stats",
                dataset=name,
            )
        entry = {
            f: values.get(f"stats/{key}/{f}")
            for f in (*STATS_FIELDS, "count")
            if f"stats/{key}/{f}" in values
        }
        if entry.get("count") is None:
            entry.pop("count", None)
        parts.append(
            stats_from_entry(
                entry,
                dim,
                what=f"episode {ep.index} stats/{key}",
                path=path,
                source=source,
                default_count=ep.length,
                name=name,
            )
        )
    return aggregate_stats(parts, source)


def _v2_episode_stats(
    path: Path, key: str, dim: int, wanted: Mapping[int, int], name: str | None
) -> list[ActionStats]:
    """Per-episode action stats of the wanted episodes (index -> length) from ``episodes_stats.jsonl``."""
    source = "meta/episodes_stats.jsonl"
    found: dict[int, ActionStats] = {}
    with open(path, encoding="utf-8-sig") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            index, stats = _v2_stats_line(line, lineno, path, name)
            if index not in wanted:
                continue
            if not isinstance(stats, Mapping) or key not in stats:
                raise DatasetError(
                    "stats_invalid",
                    f"{source} line {lineno} (episode {index}) has no stats for '{key}'",
                    path=path,
                    hint=_V2_HINT,
                    dataset=name,
                )
            found[index] = stats_from_entry(
                stats[key],
                dim,
                what=f"episode {index} stats['{key}']",
                path=path,
                source=source,
                default_count=wanted[index],
                name=name,
            )
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise DatasetError(
            "stats_invalid",
            f"{source} has no stats for episodes {short_list(missing)}",
            path=path,
            hint="recompute per-episode stats for every episode",
            dataset=name,
        )
    return [found[i] for i in sorted(found)]


def _v2_stats_line(line: str, lineno: int, path: Path, name: str | None) -> tuple[int, Any]:
    """``(episode_index, stats)`` of one ``episodes_stats.jsonl`` line (``stats`` as found, maybe absent)."""
    source = "meta/episodes_stats.jsonl"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            "stats_invalid",
            f"{source} line {lineno} is not valid JSON ({exc.msg})",
            path=path,
            hint=_V2_HINT,
            dataset=name,
        ) from None
    if not isinstance(row, dict) or not isinstance(row.get("episode_index"), int):
        raise DatasetError(
            "stats_invalid",
            f"{source} line {lineno} has no integer episode_index",
            path=path,
            hint=_V2_HINT,
            dataset=name,
        )
    return row["episode_index"], row.get("stats")
