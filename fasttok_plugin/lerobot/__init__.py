"""Read a local LeRobot dataset (v2.1 and v3.0): its metadata and, through the one frame reader, its actions.

Metadata reading (`read_dataset_meta`) touches only JSON files and the small v3.0 episode tables (only the
needed columns), never the action data. Stats come from ``meta/stats.json`` or, when it is absent or an
episode selection is active, are aggregated from the per-episode stats (`aggregate_stats`). Action data is
read by `read_frames` (what the sampler uses) and `read_episode_frames` (one episode, on top of it).

Modules: ``model`` (value objects), ``info`` (``meta/info.json``), ``episodes`` (episode tables and
selection), ``stats``, ``arrays`` (Arrow list columns to numpy), ``meta`` (`read_dataset_meta`) and
``frames`` (the frame reader).
"""

from __future__ import annotations

from fasttok_plugin.errors import DatasetError
from fasttok_plugin.lerobot._json import load_json
from fasttok_plugin.lerobot.arrays import action_array
from fasttok_plugin.lerobot.frames import (
    Frames,
    clear_frames_cache,
    read_episode_frames,
    read_frames,
    state_width,
)
from fasttok_plugin.lerobot.info import SUPPORTED_VERSIONS
from fasttok_plugin.lerobot.meta import read_dataset_meta
from fasttok_plugin.lerobot.model import ActionStats, DatasetMeta, EpisodeInfo
from fasttok_plugin.lerobot.stats import aggregate_stats

__all__ = [
    "SUPPORTED_VERSIONS",
    "ActionStats",
    "DatasetError",
    "DatasetMeta",
    "EpisodeInfo",
    "Frames",
    "action_array",
    "aggregate_stats",
    "clear_frames_cache",
    "load_json",
    "read_dataset_meta",
    "read_episode_frames",
    "read_frames",
    "state_width",
]
