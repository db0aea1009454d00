"""Episode tables (v2.x ``meta/episodes.jsonl``, v3.0 ``meta/episodes/*.parquet``) and episode selection.

Only the small episode tables are read (and of the v3.0 ones only the needed columns), never action data.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fasttok_plugin.errors import DatasetError
from fasttok_plugin.lerobot._messages import short_list
from fasttok_plugin.lerobot.info import info_error
from fasttok_plugin.lerobot.model import EpisodeInfo

__all__ = [
    "DEFAULT_CHUNKS_SIZE",
    "DEFAULT_V2_DATA_PATH",
    "DEFAULT_V3_DATA_PATH",
    "V3_EPISODE_COLUMNS",
    "check_unique",
    "select_episodes",
    "v2_episodes",
    "v3_episodes",
]

DEFAULT_V2_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
DEFAULT_V3_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_CHUNKS_SIZE = 1000
#: Largest episode index or length (frame indices and offsets are int64).
MAX_INDEX = 2**63 - 1
V3_EPISODE_COLUMNS = (
    "episode_index",
    "length",
    "data/chunk_index",
    "data/file_index",
    "dataset_from_index",
    "dataset_to_index",
)
_CORRUPT = "the episode metadata is corrupt: re-download or re-convert the dataset"
_V3_CONVERT = "re-convert the dataset with LeRobot's v3.0 converter"

#: One v3.0 episode-table row: index, length, data chunk, data file, dataset_from_index, dataset_to_index.
_Row = tuple[int, int, int, int, int, int]
TIMESTAMP_STATS_COLUMNS = ("stats/timestamp/min", "stats/timestamp/max")


# --------------------------------------------------------------------------------------------------- v2.x


def v2_episodes(root: Path, info: Mapping[str, Any], name: str | None) -> list[EpisodeInfo]:
    """Every episode of ``meta/episodes.jsonl``, its data file placed by ``data_path`` and ``chunks_size``.

    Raises:
        DatasetError: ``episodes_invalid`` (file missing, a malformed line) or ``info_invalid`` (bad
            ``chunks_size`` or ``data_path``).
    """
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
    chunks_size = _chunks_size(root, info, name)
    episodes = []
    for lineno, line in enumerate(_text_lines(path, name), start=1):
        if not line.strip():
            continue
        index, length = _v2_line(line, lineno, path, name)
        data_file = _data_file(
            root,
            template,
            "v2.1",
            name,
            episode_chunk=index // chunks_size,
            episode_index=index,
        )
        episodes.append(EpisodeInfo(index, length, data_file, None, None, 0))
    return episodes


def _text_lines(path: Path, name: str | None) -> list[str]:
    """The lines of a UTF-8 JSONL file (a byte-order mark accepted).

    Raises:
        DatasetError: ``episodes_invalid`` when it cannot be read or is not UTF-8.
    """
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return handle.readlines()
    except (OSError, ValueError) as exc:
        raise DatasetError(
            "episodes_invalid",
            f"cannot read {path.name}: {exc}",
            path=path,
            hint=f"repair {path.name} (JSON Lines, UTF-8) or re-download the dataset",
            dataset=name,
        ) from None


def _chunks_size(root: Path, info: Mapping[str, Any], name: str | None) -> int:
    chunks_size = info.get("chunks_size", DEFAULT_CHUNKS_SIZE)
    if chunks_size is None:
        chunks_size = DEFAULT_CHUNKS_SIZE
    if not isinstance(chunks_size, int) or isinstance(chunks_size, bool) or chunks_size < 1:
        # It places every episode's data file (chunk = index // chunks_size): a bad value must not guess.
        raise info_error(
            f"meta/info.json chunks_size is {chunks_size!r}, expected a positive integer",
            root / "meta" / "info.json",
            f'write the episodes per chunk folder, e.g. "chunks_size": {DEFAULT_CHUNKS_SIZE}',
            name,
        )
    return chunks_size


def _v2_line(line: str, lineno: int, path: Path, name: str | None) -> tuple[int, int]:
    try:
        row = json.loads(line)
        index, length = row["episode_index"], row["length"]
        if not _is_count(index) or not _is_count(length):
            raise TypeError
    except (ValueError, KeyError, TypeError, IndexError, RecursionError):
        # ValueError covers malformed JSON and integers past Python's digit limit.
        raise DatasetError(
            "episodes_invalid",
            f"meta/episodes.jsonl line {lineno} is not an object with integer episode_index and length "
            f"(each in 0..{MAX_INDEX})",
            path=path,
            hint="repair meta/episodes.jsonl",
            dataset=name,
        ) from None
    return index, length


def _is_count(value: Any) -> bool:
    """An episode index or length: an int in ``0..MAX_INDEX`` (stored as int64 everywhere)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INDEX


# --------------------------------------------------------------------------------------------------- v3.0


def v3_episodes(
    root: Path, info: Mapping[str, Any], stats_columns: Sequence[str], name: str | None
) -> tuple[list[EpisodeInfo], dict[int, dict[str, Any]] | None]:
    """Episodes (and, when ``stats_columns`` is given, their stats column values) from the v3.0 tables.

    Returns:
        The episodes in table order, and ``{episode_index: {column: value}}`` of the stats columns, or
        ``None`` when no stats column was asked for or one of them is absent from a table.

    Raises:
        DatasetError: ``episodes_invalid`` (no table, unreadable, columns missing or null, a row range
            disagreeing with its length) or ``info_invalid`` (bad ``data_path``).
    """
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise DatasetError(
            "episodes_invalid",
            "no meta/episodes/chunk-*/file-*.parquet episode tables",
            path=root / "meta" / "episodes",
            hint="the dataset is incomplete: re-download or re-convert it",
            dataset=name,
        )
    rows: list[_Row] = []
    time_spans: dict[int, float] = {}
    stats_values: dict[int, dict[str, Any]] | None = {} if stats_columns else None
    missing_stats: set[str] = set()
    for file in files:
        table, wanted_stats = _read_v3_table(file, stats_columns, name)
        missing_stats.update(c for c in stats_columns if c not in wanted_stats)
        columns = [table.column(c).to_numpy() for c in V3_EPISODE_COLUMNS]
        rows.extend(zip(*(c.tolist() for c in columns), strict=True))
        if stats_values is not None:
            _collect_stats(table, columns[0].tolist(), wanted_stats, stats_values)
        time_spans.update(_time_spans(table, columns[0].tolist()))
    if stats_values is not None and missing_stats:
        stats_values = None
    template = info.get("data_path") or DEFAULT_V3_DATA_PATH
    return _v3_episode_infos(root, rows, template, name, time_spans), stats_values


def _read_v3_table(file: Path, stats_columns: Sequence[str], name: str | None) -> tuple[pa.Table, list[str]]:
    """The episode columns and the present ``stats_columns`` of one table (those columns' names too)."""
    try:
        parquet = pq.ParquetFile(file)
        names = set(parquet.schema_arrow.names)
        absent = [c for c in V3_EPISODE_COLUMNS if c not in names]
        if absent:
            raise DatasetError(
                "episodes_invalid",
                f"episode table lacks columns {absent}",
                path=file,
                hint=_V3_CONVERT,
                dataset=name,
            )
        wanted_stats = [c for c in stats_columns if c in names]
        # Tiny per-episode columns the preflight's timing check needs: read now, not in a second pass.
        spans = [c for c in TIMESTAMP_STATS_COLUMNS if c in names and c not in wanted_stats]
        table = parquet.read(columns=[*V3_EPISODE_COLUMNS, *wanted_stats, *spans])
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(
            "episodes_invalid",
            f"cannot read episode table: {exc}",
            path=file,
            hint="re-download it",
            dataset=name,
        ) from None
    not_integer = [c for c in V3_EPISODE_COLUMNS if not pa.types.is_integer(table.schema.field(c).type)]
    if not_integer:
        raise DatasetError(
            "episodes_invalid",
            f"episode table columns {not_integer} do not hold integers",
            path=file,
            hint=_V3_CONVERT,
            dataset=name,
        )
    nulls = [c for c in V3_EPISODE_COLUMNS if table.column(c).null_count]
    if nulls:
        raise DatasetError(
            "episodes_invalid",
            f"episode table has null values in {nulls}",
            path=file,
            hint=_V3_CONVERT,
            dataset=name,
        )
    return table, wanted_stats


def stat_scalar(value: Any) -> float | None:
    """A per-episode stat as one finite float: LeRobot writes ``[x]`` (shape ``[1]``); a bare number too."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _time_spans(table: pa.Table, indices: list[int]) -> dict[int, float]:
    """``{episode_index: max - min}`` of the table's ``stats/timestamp`` columns (empty when absent)."""
    names = set(table.column_names)
    if TIMESTAMP_STATS_COLUMNS[1] not in names:
        return {}
    highs = table.column(TIMESTAMP_STATS_COLUMNS[1]).to_pylist()
    lows = (
        table.column(TIMESTAMP_STATS_COLUMNS[0]).to_pylist() if TIMESTAMP_STATS_COLUMNS[0] in names else None
    )
    out = {}
    for row, index in enumerate(indices):
        hi = stat_scalar(highs[row])
        lo = stat_scalar(lows[row]) if lows is not None else None
        if hi is not None:
            out[index] = hi - (lo if lo is not None else 0.0)
    return out


def _collect_stats(
    table: pa.Table, indices: list[int], columns: Sequence[str], into: dict[int, dict[str, Any]]
) -> None:
    for column_name in columns:
        column = table.column(column_name)
        for row, index in enumerate(indices):
            into.setdefault(index, {})[column_name] = column[row].as_py()


def _v3_episode_infos(
    root: Path, rows: Sequence[_Row], template: str, name: str | None, time_spans: Mapping[int, float]
) -> list[EpisodeInfo]:
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
                hint=_CORRUPT,
                dataset=name,
            )
        data_file = _data_file(root, template, "v3.0", name, chunk_index=chunk, file_index=fidx)
        row_start = int(start - file_starts[(chunk, fidx)])
        span = time_spans.get(int(index))
        episodes.append(
            EpisodeInfo(int(index), int(length), data_file, int(start), int(stop), row_start, span)
        )
    return episodes


def _data_file(root: Path, template: str, layout: str, name: str | None, **fields: int) -> Path:
    """The data file ``info.json``'s ``data_path`` template names for ``fields`` (v2.1 and v3.0 alike).

    Raises:
        DatasetError: ``info_invalid`` when the template cannot be formatted, naming the layout's default.
    """
    try:
        return root / template.format(**fields)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        default = DEFAULT_V2_DATA_PATH if layout == "v2.1" else DEFAULT_V3_DATA_PATH
        raise info_error(
            f"data_path template {template!r} cannot be formatted ({exc})",
            root / "meta" / "info.json",
            f"use the {layout} template {default!r}",
            name,
        ) from None


# -------------------------------------------------------------------------------------------- selection


def check_unique(episodes: Sequence[EpisodeInfo], path: Path, name: str | None) -> None:
    """Raise ``episodes_invalid`` when an episode index is listed twice (``episodes`` sorted by index)."""
    repeated = sorted({a.index for a, b in itertools.pairwise(episodes) if a.index == b.index})
    if repeated:
        raise DatasetError(
            "episodes_invalid",
            f"episodes {short_list(repeated)} are listed more than once",
            path=path,
            hint=_CORRUPT,
            dataset=name,
        )


def select_episodes(
    episodes: Sequence[EpisodeInfo],
    selected: Sequence[int] | None,
    excluded: Sequence[int] | None,
    path: Path,
    name: str | None,
) -> list[EpisodeInfo]:
    """The episodes a mixture entry keeps: ``selected`` (all when ``None``) minus ``excluded``, by index.

    Raises:
        DatasetError: ``episodes_invalid`` when the dataset has no episode, a selection names an unknown
            one, or nothing is left.
    """
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
    span = f"{known[0]}..{known[-1]}"
    for label, values in (("episodes", selected), ("excluded_episodes", excluded)):
        unknown = sorted(set(values or ()) - set(by_index))
        if unknown:
            raise DatasetError(
                "episodes_invalid",
                f"{label} lists episodes {short_list(unknown)} that the dataset does not have "
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
