"""Stats from the data (DESIGN §12): per-head statistics of exactly the frames each head trains on.

`compute_head_stats` reads every frame of every selected episode of each head's members through the one
frame reader (`fasttok_plugin.lerobot.read_frames`), optionally transformed (`FrameTransform`, or the
entries' `ActionTransform`: a column selection pools frames, relative actions every drawable chunk, see
``_transformed``), and
returns `DataStats`: exact ``min``/``max``; ``mean``/``std`` (population) accumulated in float64 with
Chan's pooled update; and ``q01, q10, q50, q90, q99`` **exact** for the pooled frames, equal to
``numpy.quantile(values, q, method="linear")`` (`QUANTILE_METHOD`) over the head's finite frames as
float64. Frames holding NaN/Inf are excluded and counted (``DataStats.nonfinite``, `DataStats.problems`).

Exact quantiles in bounded memory: two passes per head. Pass 1 histograms each dim's values by the top 16
bits of an order-preserving integer key of the float32 value (no range needed); the bins holding the
wanted order statistics are then known, and pass 2 keeps only those bins' values (as distinct values with
counts: at most 65536 per bin). Memory per head: ``max_action_dim x 65536`` int64 (16 MiB at 32 dims)
plus those candidates, independent of the number of frames (see `compute_head_stats`' module).

The result is cached as JSON by a content key (`stats_key`: roots, episode selection, data file sizes and
mtimes, head assignment, ``max_action_dim``, the transform's ``key``, format version) under
`default_cache_dir` (``$XDG_CACHE_HOME/fasttok_plugin/stats``): a second run reads no frame.

Modules: ``model`` (`DataStats`), ``compute`` (`compute_head_stats`, `FrameTransform`), ``cache`` (key,
files); private ``_accumulate`` (the two passes) and ``_order`` (float keys, numpy's linear quantile).
"""

from __future__ import annotations

from fasttok_plugin.errors import StatsError
from fasttok_plugin.stats.cache import default_cache_dir, stats_key
from fasttok_plugin.stats.compute import FrameTransform, compute_head_stats
from fasttok_plugin.stats.model import QUANTILE_METHOD, QUANTILES, STATS_FORMAT, DataStats

__all__ = [
    "QUANTILES",
    "QUANTILE_METHOD",
    "STATS_FORMAT",
    "DataStats",
    "FrameTransform",
    "StatsError",
    "compute_head_stats",
    "default_cache_dir",
    "stats_key",
]
