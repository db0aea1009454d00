"""The stats cache: a content key over everything the stats depend on, and one JSON file per key.

The key (`stats_key`) covers, per entry with a head: the resolved root, the action column, the selected
episodes (index and length) and `DatasetMeta.data_identity` (every data file's size and ``mtime_ns``);
the head assignment and head keys, ``max_action_dim``, the transform's ``key`` and the format version.
Touching or rewriting a data file, changing the selection, the grouping or the transform changes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from fasttok_plugin.atomic import write_text_atomic
from fasttok_plugin.heads import NormHeads
from fasttok_plugin.mixture._source import read_regular_file
from fasttok_plugin.resolve import ResolvedMixture
from fasttok_plugin.stats.model import STATS_FORMAT, DataStats

__all__ = ["cache_path", "default_cache_dir", "load_cached", "stats_key", "store"]

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/fasttok_plugin/stats`` (when set to an absolute path), else ``~/.cache/...``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "fasttok_plugin" / "stats"


def stats_key(resolved: ResolvedMixture, heads: NormHeads, transform_key: str | None) -> str:
    """sha256 (hex) of everything `compute_head_stats` depends on (reads metadata and ``stat`` only)."""
    entries = []
    for position, entry in enumerate(resolved.entries):
        head = heads.dataset_to_head[position]
        if head < 0 or entry.meta is None:
            entries.append({"position": position, "head": -1})
            continue
        meta = entry.meta
        entries.append(
            {
                "position": position,
                "head": head,
                "root": os.path.realpath(meta.root),
                "action_key": meta.action_key,
                "action_dim": meta.action_dim,
                "episodes": [[int(e.index), int(e.length)] for e in meta.episodes],
                "data": meta.data_identity(),
            }
        )
    document = {
        "format": STATS_FORMAT,
        "max_action_dim": heads.max_action_dim,
        "heads": [k.to_json() for k in heads.head_keys] if heads.head_keys else list(heads.keys),
        "transform": transform_key,
        "entries": entries,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_path(cache_dir: Path, key: str) -> Path:
    """The file holding the stats of ``key``."""
    return Path(cache_dir) / f"{key}.json"


def load_cached(cache_dir: Path, key: str, keys: tuple[str, ...], width: int) -> DataStats | None:
    """The cached stats of ``key``, or ``None`` (absent; unreadable or not matching: warned and ignored)."""
    path = cache_path(cache_dir, key)
    try:
        data = read_regular_file(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("ignoring the stats cache file %s (%s); recomputing the stats", path, exc)
        return None
    try:
        stats = DataStats.from_json(json.loads(data.decode("utf-8")))
        if stats.key != key or stats.keys != keys or stats.max_action_dim != width:
            raise ValueError("it was written for other data")
    except (ValueError, RecursionError) as exc:
        logger.warning("ignoring the corrupt stats cache file %s (%s); recomputing the stats", path, exc)
        return None
    return stats


def store(cache_dir: Path, stats: DataStats) -> Path | None:
    """Write ``stats`` under its key atomically; a cache that cannot be written is warned about, not fatal."""
    path = cache_path(cache_dir, stats.key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(stats.to_json(), separators=(",", ":"), allow_nan=False))
    except OSError as exc:
        logger.warning("cannot write the stats cache %s (%s); the stats are not cached", path, exc)
        return None
    return path
