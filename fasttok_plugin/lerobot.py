"""Read a local LeRobot dataset's metadata (v2.1 and v3.0) and, on request, one episode's actions.

Metadata reading touches only JSON files and the small v3.0 episode tables (only the needed columns),
never the action data. Stats come from ``meta/stats.json`` or, when it is absent or an episode selection
is active, are aggregated from the per-episode stats (v2.1 ``meta/episodes_stats.jsonl``, v3.0
``stats/...`` columns of ``meta/episodes/*.parquet``) with min of mins, max of maxes, count-weighted mean
and pooled variance.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fasttok_plugin.errors import DatasetError

__all__ = [
    "ActionStats",
    "DatasetError",
    "DatasetMeta",
    "EpisodeInfo",
    "action_array",
    "aggregate_stats",
    "load_json",
    "read_dataset_meta",
    "read_episode_frames",
]

logger = logging.getLogger(__name__)

SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")
DEFAULT_V2_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
DEFAULT_V3_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_CHUNKS_SIZE = 1000
STATS_FIELDS = ("min", "max", "mean", "std")
V3_EPISODE_COLUMNS = (
    "episode_index",
    "length",
    "data/chunk_index",
    "data/file_index",
    "dataset_from_index",
    "dataset_to_index",
)


@dataclass(frozen=True, slots=True)
class ActionStats:
    """Stats of the action feature.

    Attributes:
        min, max, mean, std: float64 arrays of shape ``(d,)``; may hold NaN/±Inf as found on disk.
        count: Frames the stats cover (the selected episodes when re-aggregated).
        source: ``meta/stats.json``, ``meta/episodes_stats.jsonl`` or ``meta/episodes (stats columns)``.
    """

    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    count: int
    source: str


@dataclass(frozen=True, slots=True)
class EpisodeInfo:
    """One episode.

    Attributes:
        index: ``episode_index``.
        length: Frames.
        data_file: Parquet file holding its frames.
        from_index: v3.0 ``dataset_from_index`` (global ``index`` of the first frame); ``None`` for v2.x.
        to_index: v3.0 ``dataset_to_index`` (exclusive); ``None`` for v2.x.
        file_row_start: Row of the first frame inside ``data_file`` (0 for v2.x; v3.0 assumes the episodes
            of a file are stored contiguously in index order, as LeRobot writes them, and verifies it when
            reading).
    """

    index: int
    length: int
    data_file: Path
    from_index: int | None
    to_index: int | None
    file_row_start: int = 0


@dataclass(frozen=True, slots=True)
class DatasetMeta:
    """Everything the package needs from a dataset, read from metadata only.

    Attributes:
        root: Dataset folder.
        version: ``codebase_version``.
        fps: Frames per second.
        robot_type: Raw ``robot_type`` from ``info.json`` (no override applied).
        control_mode: Raw ``control_mode`` from ``info.json`` (``None`` when absent).
        total_frames: ``info.json``'s ``total_frames`` (all episodes).
        total_episodes: ``info.json``'s ``total_episodes`` (all episodes).
        features: ``info.json``'s ``features``.
        action_key: The action column.
        action_dim: Native action dim (from the feature's shape).
        episodes: The *selected* episodes, sorted by index.
        stats: Action stats (of the selected episodes), ``None`` when unusable.
        stats_error: Why ``stats`` is ``None`` (or unusable); reported by the preflight, never raised here.
        selected_frames: Frames of the selected episodes.
        selection_active: ``True`` when ``episodes``/``excluded_episodes`` restricted the episodes.
        name: The dataset name used in messages.
    """

    root: Path
    version: str
    fps: float
    robot_type: str | None
    control_mode: str | None
    total_frames: int
    total_episodes: int
    features: Mapping[str, Any]
    action_key: str
    action_dim: int
    episodes: tuple[EpisodeInfo, ...]
    stats: ActionStats | None
    stats_error: DatasetError | None
    selected_frames: int = 0
    selection_active: bool = False
    name: str | None = None


def load_json(path: Path) -> Any:
    """Read a JSON file, accepting the ``NaN`` / ``Infinity`` / ``-Infinity`` tokens found in the wild."""
    # Python's json accepts these tokens by default; this function pins that contract in one place.
    # utf-8-sig: a byte-order mark written by some editors/tools is not a JSON error.
    with open(path, encoding="utf-8-sig") as handle:
        return json.load(handle)


def _load_json_or_error(
    path: Path, reason_missing: str, reason_invalid: str, hint: str, name: str | None
) -> Any:
    try:
        return load_json(path)
    except FileNotFoundError:
        raise DatasetError(
            reason_missing, f"{path.name} not found", path=path, hint=hint, dataset=name
        ) from None
    except json.JSONDecodeError as exc:
        raise DatasetError(
            reason_invalid,
            f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            path=path,
            hint=f"repair {path.name}",
            dataset=name,
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(
            reason_invalid, f"cannot read {path.name}: {exc}", path=path, hint="check the file", dataset=name
        ) from None


# ---------------------------------------------------------------------------------------------------------
# stats


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


def _stats_from_entry(
    entry: Any, dim: int, *, what: str, path: Path, source: str, default_count: int, name: str | None
) -> ActionStats:
    """Validate one ``{min,max,mean,std,count}`` mapping (raise stats_invalid naming ``what``)."""
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


def _v2_episode_stats(
    path: Path, key: str, dim: int, wanted: Mapping[int, int], name: str | None
) -> list[ActionStats]:
    """Per-episode action stats of the wanted episodes from ``episodes_stats.jsonl``."""
    source = "meta/episodes_stats.jsonl"
    found: dict[int, ActionStats] = {}
    hint = "recompute per-episode stats or fix the line"
    with open(path, encoding="utf-8-sig") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(
                    "stats_invalid",
                    f"{source} line {lineno} is not valid JSON ({exc.msg})",
                    path=path,
                    hint=hint,
                    dataset=name,
                ) from None
            if not isinstance(row, dict) or not isinstance(row.get("episode_index"), int):
                raise DatasetError(
                    "stats_invalid",
                    f"{source} line {lineno} has no integer episode_index",
                    path=path,
                    hint=hint,
                    dataset=name,
                )
            index = row["episode_index"]
            if index not in wanted:
                continue
            stats = row.get("stats")
            if not isinstance(stats, Mapping) or key not in stats:
                raise DatasetError(
                    "stats_invalid",
                    f"{source} line {lineno} (episode {index}) has no stats for '{key}'",
                    path=path,
                    hint=hint,
                    dataset=name,
                )
            found[index] = _stats_from_entry(
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
            f"{source} has no stats for episodes {_short_list(missing)}",
            path=path,
            hint="recompute per-episode stats for every episode",
            dataset=name,
        )
    return [found[i] for i in sorted(found)]


def _short_list(values: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return (
        f"[{shown}{', ...' if len(values) > limit else ''}] ({len(values)})"
        if len(values) > limit
        else f"[{shown}]"
    )


# ---------------------------------------------------------------------------------------------------------
# arrays


def _list_values_to_numpy(values: pa.Array) -> np.ndarray:
    if not pa.types.is_floating(values.type) and not pa.types.is_integer(values.type):
        raise TypeError(f"list values are {values.type}, not numbers")
    # Null elements become NaN: they are then counted as non-finite downstream, never silently zeroed.
    return values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)


def _chunk_to_numpy(chunk: pa.Array, dim: int) -> np.ndarray:
    n = len(chunk)
    if chunk.null_count:
        raise ValueError(f"{chunk.null_count} rows are null")
    if pa.types.is_fixed_size_list(chunk.type):
        size = chunk.type.list_size
        if size != dim:
            raise ValueError(f"rows have {size} values, expected {dim}")
        flat = _list_values_to_numpy(chunk.flatten())
        return flat.reshape(n, dim)
    if pa.types.is_list(chunk.type) or pa.types.is_large_list(chunk.type):
        offsets = chunk.offsets.to_numpy()
        lengths = np.diff(offsets)
        bad = np.flatnonzero(lengths != dim)
        if bad.size:
            raise ValueError(
                f"{bad.size} of {n} rows do not have {dim} values "
                f"(row {int(bad[0])} has {int(lengths[bad[0]])})"
            )
        flat = _list_values_to_numpy(chunk.flatten())
        return flat.reshape(n, dim)
    raise TypeError(f"column type {chunk.type} is not a list of numbers")


def action_array(
    column: pa.Array | pa.ChunkedArray, dim: int, *, path: Path | None = None, dataset: str | None = None
) -> np.ndarray:
    """Convert a ``list``/``large_list``/``fixed_size_list`` column to an ``(n, dim)`` float32 array.

    Works on the Arrow buffers (``flatten`` + offset checks), never through Python objects.

    Args:
        column: The action column.
        dim: Expected values per row.
        path: File the column came from (for the error message).
        dataset: Dataset name (for the error message).

    Returns:
        ``(n, dim)`` float32 array.

    Raises:
        DatasetError: ``data_invalid`` when rows are null, not lists of numbers, or not ``dim`` long.
    """
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    try:
        parts = [_chunk_to_numpy(chunk, dim) for chunk in chunks]
    except (ValueError, TypeError, pa.ArrowException) as exc:
        raise DatasetError(
            "data_invalid",
            f"action column cannot be read as {dim} values per frame: {exc}",
            path=path,
            hint="the action feature's shape in meta/info.json must match the data: "
            "rewrite the data or fix the shape",
            dataset=dataset,
        ) from None
    if not parts:
        return np.zeros((0, dim), dtype=np.float32)
    out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    return np.ascontiguousarray(out, dtype=np.float32)


# ---------------------------------------------------------------------------------------------------------
# metadata


def _info_error(detail: str, path: Path, hint: str, name: str | None) -> DatasetError:
    return DatasetError("info_invalid", detail, path=path, hint=hint, dataset=name)


def _choose_action_key(
    features: Mapping[str, Any], action_key: str | None, info_path: Path, name: str | None
) -> str:
    if action_key is not None:
        if action_key in features:
            return action_key
        candidates = [k for k in features if k in ("action", "actions") or "action" in k]
        raise DatasetError(
            "action_key_missing",
            f"action_key '{action_key}' is not a feature of the dataset"
            + (f" (action-like features: {candidates})" if candidates else ""),
            path=info_path,
            hint=f"set action_key in the mixture entry to one of {sorted(features)}",
            dataset=name,
        )
    for key in ("action", "actions"):
        if key in features:
            return key
    raise DatasetError(
        "action_key_missing",
        "the dataset has neither an 'action' nor an 'actions' feature",
        path=info_path,
        hint=f"set action_key in the mixture entry to the action column, one of {sorted(features)}",
        dataset=name,
    )


def _action_dim(feature: Any, key: str, info_path: Path, name: str | None) -> int:
    shape = feature.get("shape") if isinstance(feature, Mapping) else None
    if (
        not isinstance(shape, list)
        or len(shape) != 1
        or not isinstance(shape[0], int)
        or isinstance(shape[0], bool)
        or shape[0] < 1
    ):
        raise _info_error(
            f"features['{key}'].shape is {shape!r}, expected [d] with d >= 1",
            info_path,
            f"write the action dimension as \"shape\": [d] in features['{key}']",
            name,
        )
    return int(shape[0])


def _v2_episodes(root: Path, info: Mapping[str, Any], name: str | None) -> list[EpisodeInfo]:
    path = root / "meta" / "episodes.jsonl"
    if not path.is_file():
        raise DatasetError(
            "episodes_invalid",
            "meta/episodes.jsonl not found",
            path=path,
            hint="the dataset is incomplete: re-download or re-convert it",
            dataset=name,
        )
    template = info.get("data_path") or DEFAULT_V2_DATA_PATH
    chunks_size = info.get("chunks_size", DEFAULT_CHUNKS_SIZE)
    if chunks_size is None:
        chunks_size = DEFAULT_CHUNKS_SIZE
    if not isinstance(chunks_size, int) or isinstance(chunks_size, bool) or chunks_size < 1:
        # It places every episode's data file (chunk = index // chunks_size): a bad value must not guess.
        raise _info_error(
            f"meta/info.json chunks_size is {chunks_size!r}, expected a positive integer",
            root / "meta" / "info.json",
            f'write the episodes per chunk folder, e.g. "chunks_size": {DEFAULT_CHUNKS_SIZE}',
            name,
        )
    episodes = []
    with open(path, encoding="utf-8-sig") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                index, length = row["episode_index"], row["length"]
                if not isinstance(index, int) or not isinstance(length, int) or index < 0 or length < 0:
                    raise TypeError
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DatasetError(
                    "episodes_invalid",
                    f"meta/episodes.jsonl line {lineno} is not an object with integer "
                    "episode_index and length",
                    path=path,
                    hint="repair meta/episodes.jsonl",
                    dataset=name,
                ) from None
            try:
                rel = template.format(episode_chunk=index // chunks_size, episode_index=index)
            except (KeyError, IndexError, ValueError) as exc:
                raise _info_error(
                    f"data_path template {template!r} cannot be formatted ({exc})",
                    root / "meta" / "info.json",
                    f"use the v2.1 template {DEFAULT_V2_DATA_PATH!r}",
                    name,
                ) from None
            episodes.append(EpisodeInfo(index, length, root / rel, None, None, 0))
    return episodes


def _v3_episode_files(root: Path) -> list[Path]:
    return sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))


def _v3_episodes(
    root: Path, info: Mapping[str, Any], stats_columns: Sequence[str], name: str | None
) -> tuple[list[EpisodeInfo], dict[int, dict[str, Any]] | None]:
    """Episodes (and, when ``stats_columns`` is given, their stats column values) from the v3.0 tables."""
    files = _v3_episode_files(root)
    if not files:
        raise DatasetError(
            "episodes_invalid",
            "no meta/episodes/chunk-*/file-*.parquet episode tables",
            path=root / "meta" / "episodes",
            hint="the dataset is incomplete: re-download or re-convert it",
            dataset=name,
        )
    template = info.get("data_path") or DEFAULT_V3_DATA_PATH
    rows: list[tuple[int, int, int, int, int, int]] = []
    stats_values: dict[int, dict[str, Any]] | None = {} if stats_columns else None
    missing_stats: set[str] = set()
    for file in files:
        try:
            parquet = pq.ParquetFile(file)
            names = set(parquet.schema_arrow.names)
            absent = [c for c in V3_EPISODE_COLUMNS if c not in names]
            if absent:
                raise DatasetError(
                    "episodes_invalid",
                    f"episode table lacks columns {absent}",
                    path=file,
                    hint="re-convert the dataset with LeRobot's v3.0 converter",
                    dataset=name,
                )
            wanted_stats = [c for c in stats_columns if c in names]
            missing_stats.update(c for c in stats_columns if c not in names)
            table = parquet.read(columns=[*V3_EPISODE_COLUMNS, *wanted_stats])
        except (OSError, pa.ArrowException) as exc:
            raise DatasetError(
                "episodes_invalid",
                f"cannot read episode table: {exc}",
                path=file,
                hint="re-download it",
                dataset=name,
            ) from None
        nulls = [c for c in V3_EPISODE_COLUMNS if table.column(c).null_count]
        if nulls:
            raise DatasetError(
                "episodes_invalid",
                f"episode table has null values in {nulls}",
                path=file,
                hint="re-convert the dataset with LeRobot's v3.0 converter",
                dataset=name,
            )
        columns = [table.column(c).to_numpy() for c in V3_EPISODE_COLUMNS]
        rows.extend(zip(*(c.tolist() for c in columns), strict=True))
        if stats_values is not None and wanted_stats:
            indices = columns[0].tolist()
            for column_name in wanted_stats:
                column = table.column(column_name)
                for row, index in enumerate(indices):
                    stats_values.setdefault(index, {})[column_name] = column[row].as_py()
    if stats_values is not None and missing_stats:
        stats_values = None
    # Row offsets inside each data file: episodes of a file are contiguous, in dataset index order.
    file_starts: dict[tuple[int, int], int] = {}
    for _, _, chunk, fidx, start, _ in rows:
        key = (chunk, fidx)
        file_starts[key] = min(start, file_starts.get(key, start))
    episodes = []
    for index, length, chunk, fidx, start, stop in rows:
        if stop - start != length:
            # Readers slice data files by this range and by length: they must agree or frames go astray.
            raise DatasetError(
                "episodes_invalid",
                f"episode {index}: dataset_to_index - dataset_from_index = {stop - start} "
                f"but length = {length}",
                path=root / "meta" / "episodes",
                hint="the episode metadata is corrupt: re-download or re-convert the dataset",
                dataset=name,
            )
        try:
            rel = template.format(chunk_index=chunk, file_index=fidx)
        except (KeyError, IndexError, ValueError) as exc:
            raise _info_error(
                f"data_path template {template!r} cannot be formatted ({exc})",
                root / "meta" / "info.json",
                f"use the v3.0 template {DEFAULT_V3_DATA_PATH!r}",
                name,
            ) from None
        episodes.append(
            EpisodeInfo(
                int(index),
                int(length),
                root / rel,
                int(start),
                int(stop),
                int(start - file_starts[(chunk, fidx)]),
            )
        )
    return episodes, stats_values


def _select(
    episodes: list[EpisodeInfo],
    selected: Sequence[int] | None,
    excluded: Sequence[int] | None,
    path: Path,
    name: str | None,
) -> list[EpisodeInfo]:
    by_index = {ep.index: ep for ep in episodes}
    known = sorted(by_index)
    if not known:
        raise DatasetError(
            "episodes_invalid",
            "the dataset lists no episodes",
            path=path,
            hint="the dataset is empty or its episode metadata is incomplete: re-download or re-convert it",
            dataset=name,
        )
    span = f"{known[0]}..{known[-1]}" if known else "none"
    for label, values in (("episodes", selected), ("excluded_episodes", excluded)):
        unknown = sorted(set(values or ()) - set(by_index))
        if unknown:
            raise DatasetError(
                "episodes_invalid",
                f"{label} lists episodes {_short_list(unknown)} that the dataset does not have "
                f"({len(known)} episodes, indices {span})",
                path=path,
                hint=f"fix {label} in the mixture entry",
                dataset=name,
            )
    chosen = sorted(set(selected)) if selected is not None else known
    if excluded:
        drop = set(excluded)
        chosen = [i for i in chosen if i not in drop]
    if not chosen:
        raise DatasetError(
            "episodes_invalid",
            "the episode selection leaves no episodes",
            path=path,
            hint="select at least one episode (check episodes / excluded_episodes in the mixture entry)",
            dataset=name,
        )
    return [by_index[i] for i in chosen]


def read_dataset_meta(
    root: Path,
    *,
    action_key: str | None = None,
    episodes: Sequence[int] | None = None,
    excluded_episodes: Sequence[int] | None = None,
    name: str | None = None,
) -> DatasetMeta:
    """Read a local LeRobot dataset's metadata (v2.x or v3.0), never its action data.

    Args:
        root: Dataset folder.
        action_key: Action column; default ``action``, else ``actions``.
        episodes: Episode indices to keep (``None``: all).
        excluded_episodes: Episode indices to drop.
        name: Dataset name for messages (e.g. ``entry 3 (org/name)``).

    Returns:
        The metadata; stats problems are stored in ``stats_error`` rather than raised.

    Raises:
        DatasetError: Root or info missing/invalid, unsupported version, action key missing, episode tables
            unreadable, or a selection naming unknown episodes.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            "root_missing",
            "dataset folder does not exist" if not root.exists() else "dataset root is not a folder",
            path=root,
            hint="download the dataset to that folder (e.g. `huggingface-cli download --repo-type dataset "
            "<repo_id> --local-dir <root>`) or fix `root` in the mixture entry",
            dataset=name,
        )
    info_path = root / "meta" / "info.json"
    info = _load_json_or_error(
        info_path,
        "info_missing",
        "info_invalid",
        "point `root` at a LeRobot dataset folder (it holds meta/info.json)",
        name,
    )
    if not isinstance(info, Mapping):
        raise _info_error("meta/info.json is not a JSON object", info_path, "repair meta/info.json", name)
    version = info.get("codebase_version")
    if version not in SUPPORTED_VERSIONS:
        raise DatasetError(
            "unsupported_version",
            f"codebase_version {version!r} is not supported (supported: {', '.join(SUPPORTED_VERSIONS)})",
            path=info_path,
            hint="convert the dataset with LeRobot's conversion scripts "
            "(e.g. lerobot.datasets.v30.convert_dataset_v21_to_v30)",
            dataset=name,
        )
    fps = info.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0:
        raise _info_error(
            f"meta/info.json has no valid fps (got {fps!r})",
            info_path,
            'add the recording rate, e.g. "fps": 30',
            name,
        )
    features = info.get("features")
    if not isinstance(features, Mapping) or not features:
        raise _info_error(
            "meta/info.json has no features",
            info_path,
            'add "features" with the action feature, e.g. {"action": {"dtype": "float32", "shape": [7]}}',
            name,
        )
    key = _choose_action_key(features, action_key, info_path, name)
    dim = _action_dim(features[key], key, info_path, name)

    selection_active = episodes is not None or bool(excluded_episodes)
    stats_path = root / "meta" / "stats.json"
    use_stats_json = stats_path.is_file() and not selection_active
    stats_columns = () if use_stats_json else tuple(f"stats/{key}/{f}" for f in (*STATS_FIELDS, "count"))

    is_v3 = version.startswith("v3")
    stats_values = None
    if is_v3:
        all_episodes, stats_values = _v3_episodes(root, info, stats_columns, name)
        episodes_path = root / "meta" / "episodes"
    else:
        all_episodes = _v2_episodes(root, info, name)
        episodes_path = root / "meta" / "episodes.jsonl"
    all_episodes.sort(key=lambda ep: ep.index)
    repeated = sorted({a.index for a, b in itertools.pairwise(all_episodes) if a.index == b.index})
    if repeated:
        raise DatasetError(
            "episodes_invalid",
            f"episodes {_short_list(repeated)} are listed more than once",
            path=episodes_path,
            hint="the episode metadata is corrupt: re-download or re-convert the dataset",
            dataset=name,
        )
    chosen = _select(all_episodes, episodes, excluded_episodes, episodes_path, name)

    stats: ActionStats | None = None
    stats_error: DatasetError | None = None
    try:
        if use_stats_json:
            stats = _read_stats_json(stats_path, key, dim, info, name)
        else:
            stats = _aggregate_episode_stats(
                root, key, dim, chosen, stats_values, is_v3, selection_active, name
            )
    except DatasetError as exc:
        stats_error = exc
        logger.debug("stats unusable for %s: %s", name or root, exc)

    total_frames = info.get("total_frames")
    total_episodes = info.get("total_episodes")
    return DatasetMeta(
        root=root,
        version=str(version),
        fps=float(fps),
        robot_type=_tag(info.get("robot_type")),
        control_mode=_tag(info.get("control_mode")),
        total_frames=int(total_frames)
        if isinstance(total_frames, int)
        else sum(ep.length for ep in all_episodes),
        total_episodes=int(total_episodes) if isinstance(total_episodes, int) else len(all_episodes),
        features=features,
        action_key=key,
        action_dim=dim,
        episodes=tuple(chosen),
        stats=stats,
        stats_error=stats_error,
        selected_frames=sum(ep.length for ep in chosen),
        selection_active=selection_active,
        name=name,
    )


def _tag(value: Any) -> str | None:
    # Tags are compared as strings; a non-string value (rare) keeps its text rather than vanishing.
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _read_stats_json(
    path: Path, key: str, dim: int, info: Mapping[str, Any], name: str | None
) -> ActionStats:
    document = _load_json_or_error(
        path, "stats_missing", "stats_invalid", "recompute the dataset stats", name
    )
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
    return _stats_from_entry(
        document[key],
        dim,
        what=f"meta/stats.json['{key}']",
        path=path,
        source="meta/stats.json",
        default_count=int(total) if isinstance(total, int) else 0,
        name=name,
    )


def _aggregate_episode_stats(
    root: Path,
    key: str,
    dim: int,
    chosen: Sequence[EpisodeInfo],
    stats_values: Mapping[int, Mapping[str, Any]] | None,
    is_v3: bool,
    selection_active: bool,
    name: str | None,
) -> ActionStats:
    why = (
        "an episode selection is active, so stats must"
        if selection_active
        else "meta/stats.json is absent, so stats must"
    )
    lengths = {ep.index: ep.length for ep in chosen}
    if not is_v3:
        path = root / "meta" / "episodes_stats.jsonl"
        if not path.is_file():
            raise DatasetError(
                "stats_missing",
                f"{why} come from meta/episodes_stats.jsonl, which does not exist",
                path=path,
                hint="compute the dataset stats "
                "(LeRobot writes meta/stats.json and meta/episodes_stats.jsonl)",
                dataset=name,
            )
        return aggregate_stats(_v2_episode_stats(path, key, dim, lengths, name), "meta/episodes_stats.jsonl")
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
            _stats_from_entry(
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


# ---------------------------------------------------------------------------------------------------------
# data


def read_episode_frames(meta: DatasetMeta, episode: EpisodeInfo) -> tuple[np.ndarray, np.ndarray]:
    """Read one episode's timestamps and actions (only those columns, plus ``episode_index`` for v3.0).

    Args:
        meta: The dataset's metadata.
        episode: One of ``meta.episodes``.

    Returns:
        ``(timestamps (n,) float64, actions (n, d) float32)``.

    Raises:
        DatasetError: ``data_missing`` (file absent) or ``data_invalid`` (columns missing, wrong dim,
            rows not matching the episode metadata).
    """
    path = episode.data_file
    name = meta.name
    if not path.is_file():
        raise DatasetError(
            "data_missing",
            f"data file for episode {episode.index} not found",
            path=path,
            hint="the dataset is incomplete: re-download it",
            dataset=name,
        )
    is_v3 = episode.from_index is not None
    columns = ["timestamp", meta.action_key] + (["episode_index"] if is_v3 else [])
    try:
        parquet = pq.ParquetFile(path)
        absent = [c for c in columns if c not in parquet.schema_arrow.names]
        if absent:
            raise DatasetError(
                "data_invalid",
                f"data file lacks columns {absent}",
                path=path,
                hint="check action_key in the mixture entry and the dataset's data files",
                dataset=name,
            )
        table = parquet.read(columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(
            "data_invalid", f"cannot read data file: {exc}", path=path, hint="re-download it", dataset=name
        ) from None
    if is_v3:
        piece = table.slice(episode.file_row_start, episode.length)
        ep_col = piece.column("episode_index").to_numpy()
        if piece.num_rows != episode.length or not np.all(ep_col == episode.index):
            # The contiguous layout assumption does not hold for this file: fall back to filtering.
            mask = table.column("episode_index").to_numpy() == episode.index
            piece = table.filter(pa.array(mask))
        table = piece
    if table.num_rows != episode.length:
        raise DatasetError(
            "data_invalid",
            f"episode {episode.index} has {table.num_rows} frames in the data "
            f"but {episode.length} in the metadata",
            path=path,
            hint="the metadata and data disagree: re-download or re-convert the dataset",
            dataset=name,
        )
    timestamps = table.column("timestamp").to_numpy().astype(np.float64, copy=False)
    actions = action_array(table.column(meta.action_key), meta.action_dim, path=path, dataset=name)
    return timestamps, actions
