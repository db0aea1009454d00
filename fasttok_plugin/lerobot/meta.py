"""`read_dataset_meta`: a local LeRobot dataset's metadata (v2.x or v3.0), never its action data."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fasttok_plugin.errors import DatasetError
from fasttok_plugin.lerobot.episodes import check_unique, select_episodes, v2_episodes, v3_episodes
from fasttok_plugin.lerobot.info import Info, read_info, tag
from fasttok_plugin.lerobot.model import ActionStats, DatasetMeta, EpisodeInfo
from fasttok_plugin.lerobot.stats import STATS_FIELDS, aggregate_episode_stats, read_stats_json

__all__ = ["read_dataset_meta"]

logger = logging.getLogger(__name__)


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
    _check_root(root, name)
    info = read_info(root, action_key, name)
    selection_active = episodes is not None or bool(excluded_episodes)
    stats_path = root / "meta" / "stats.json"
    # stats.json describes every episode: a selection must re-aggregate the selected episodes' stats.
    use_stats_json = stats_path.is_file() and not selection_active
    stats_columns = (
        () if use_stats_json else tuple(f"stats/{info.action_key}/{f}" for f in (*STATS_FIELDS, "count"))
    )
    all_episodes, stats_values, episodes_path = _all_episodes(root, info, stats_columns, name)
    chosen = select_episodes(all_episodes, episodes, excluded_episodes, episodes_path, name)
    stats: ActionStats | None = None
    stats_error: DatasetError | None = None
    try:
        if use_stats_json:
            stats = read_stats_json(stats_path, info.action_key, info.action_dim, info.raw, name)
        else:
            stats = aggregate_episode_stats(
                root,
                info.action_key,
                info.action_dim,
                chosen,
                stats_values,
                info.is_v3,
                selection_active,
                name,
            )
    except DatasetError as exc:
        stats_error = exc
        logger.debug("stats unusable for %s: %s", name or root, exc)
    return _assemble(root, info, all_episodes, chosen, stats, stats_error, selection_active, name)


def _check_root(root: Path, name: str | None) -> None:
    try:
        is_dir = root.is_dir()
    except (OSError, ValueError) as exc:
        # A name longer than the filesystem allows, a NUL or an unencodable character in the path.
        raise DatasetError(
            "root_missing",
            f"dataset folder cannot be accessed: {exc.strerror if isinstance(exc, OSError) else exc}",
            path=root,
            hint="fix `root` (or `repo_id`, which names the default root) in the mixture entry",
            dataset=name,
        ) from None
    if not is_dir:
        raise DatasetError(
            "root_missing",
            "dataset folder does not exist" if not root.exists() else "dataset root is not a folder",
            path=root,
            hint="download the dataset to that folder (e.g. `huggingface-cli download --repo-type dataset "
            "<repo_id> --local-dir <root>`) or fix `root` in the mixture entry",
            dataset=name,
        )


def _all_episodes(
    root: Path, info: Info, stats_columns: Sequence[str], name: str | None
) -> tuple[list[EpisodeInfo], dict[int, dict[str, Any]] | None, Path]:
    """Every episode sorted by index (each once), the v3.0 stats column values, and the episodes' table."""
    stats_values = None
    if info.is_v3:
        all_episodes, stats_values = v3_episodes(root, info.raw, stats_columns, name)
        episodes_path = root / "meta" / "episodes"
    else:
        all_episodes = v2_episodes(root, info.raw, name)
        episodes_path = root / "meta" / "episodes.jsonl"
    all_episodes.sort(key=lambda ep: ep.index)
    check_unique(all_episodes, episodes_path, name)
    return all_episodes, stats_values, episodes_path


def _assemble(
    root: Path,
    info: Info,
    all_episodes: Sequence[EpisodeInfo],
    chosen: Sequence[EpisodeInfo],
    stats: ActionStats | None,
    stats_error: DatasetError | None,
    selection_active: bool,
    name: str | None,
) -> DatasetMeta:
    raw: Mapping[str, Any] = info.raw
    total_frames = raw.get("total_frames")
    total_episodes = raw.get("total_episodes")
    return DatasetMeta(
        root=root,
        version=info.version,
        fps=info.fps,
        robot_type=tag(raw.get("robot_type")),
        control_mode=tag(raw.get("control_mode")),
        total_frames=int(total_frames)
        if isinstance(total_frames, int)
        else sum(ep.length for ep in all_episodes),
        total_episodes=int(total_episodes) if isinstance(total_episodes, int) else len(all_episodes),
        features=info.features,
        action_key=info.action_key,
        action_dim=info.action_dim,
        episodes=tuple(chosen),
        stats=stats,
        stats_error=stats_error,
        selected_frames=sum(ep.length for ep in chosen),
        selection_active=selection_active,
        name=name,
    )
