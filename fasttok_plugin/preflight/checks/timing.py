"""The timing check: timestamp stats that disagree with the episode length at ``info.json``'s fps.

An episode of ``n`` frames at ``fps`` lasts ``(n - 1) / fps`` seconds. The metadata carries what the
timestamps really span as their stats: per episode in the v3.0 episode tables (``stats/timestamp/min``,
``stats/timestamp/max``) and v2.1 ``meta/episodes_stats.jsonl``, over the dataset in ``meta/stats.json``.
Millisecond timestamps span 1000x too long, an fps of 10 written for 30 Hz frames 3x too short: the
sampler would then resample near-constant chunks and the fit would report a flattering compression.
Only metadata is read; a dataset whose metadata carries no timestamp stats is not checked here (the
sampler reports off-grid timestamps when it reads the data).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any, Final

from fasttok_plugin.lerobot import DatasetMeta
from fasttok_plugin.lerobot.episodes import stat_scalar
from fasttok_plugin.preflight.checks._base import ERROR, WARNING, _Check
from fasttok_plugin.preflight.context import PreflightContext
from fasttok_plugin.preflight.findings import Finding, Rule

__all__ = ["TimestampStats", "episode_time_spans"]

#: Off by more than this factor (either way) is an error: not jitter or dropped frames but a wrong unit
#: or a wrong fps.
ERROR_FACTOR: Final = 2.0
# Dropped or late frames move a span a little: one frame and 1% pass.
_SLACK_FRAMES: Final = 1.0
_SLACK_SHARE: Final = 0.01


class TimestampStats(_Check):
    """Timestamp stats that do not match ``(length - 1) / fps``: milliseconds, or a wrong fps."""

    name = "timestamps"
    rules = (
        Rule(
            "FT501",
            "timestamps-disagree-with-fps",
            WARNING,
            "The timestamp stats span a different duration than the episode length at info.json fps "
            "(an error when off by more than 2x).",
            "Store timestamps in seconds, or set info.json fps to the rate the frames were recorded at.",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        for resolved in context.entries:
            meta = resolved.meta
            if meta is None or resolved.error is not None or not (float(meta.fps) > 0):
                continue
            worst = _worst_episode(meta)
            if worst is None:
                continue
            episode, length, span, implied, source = worst
            ratio = span / implied if implied > 0 else math.inf
            severity = ERROR if not (1 / ERROR_FACTOR <= ratio <= ERROR_FACTOR) else WARNING
            suggested = f"{(length - 1) / span:.4g} Hz" if span > 0 else "no rate (they do not advance)"
            yield context.finding(
                "FT501",
                severity,
                f"{episode}: timestamps span {span:.6g} s ({source}) but {length} frames at info.json "
                f"fps={float(meta.fps):g} last {implied:.6g} s (x{ratio:.3g}); the timestamps suggest "
                f"{suggested}",
                entry=resolved,
                hint="store timestamps in seconds (not milliseconds), or set info.json fps to the rate "
                f"the frames were recorded at ({suggested})",
            )


def _worst_episode(meta: DatasetMeta) -> tuple[str, int, float, float, str] | None:
    """``(what, length, span, implied, source)`` of the span farthest from its length, if off the slack."""
    fps = float(meta.fps)
    worst: tuple[float, tuple[str, int, float, float, str]] | None = None
    for what, length, span, source in _spans(meta):
        implied = (length - 1) / fps
        if length < 2 or not math.isfinite(span):
            continue
        if abs(span - implied) <= _SLACK_FRAMES / fps + _SLACK_SHARE * implied:
            continue
        score = abs(math.log(span / implied)) if span > 0 else math.inf
        if worst is None or score > worst[0]:
            worst = (score, (what, length, span, implied, source))
    return None if worst is None else worst[1]


def _spans(meta: DatasetMeta) -> Iterator[tuple[str, int, float, str]]:
    """Per selected episode ``(what, length, span, source)``; else the longest one against stats.json."""
    spans = episode_time_spans(meta)
    if spans is not None:
        for episode in meta.episodes:
            span = spans.get(episode.index)
            if span is not None:
                yield f"episode {episode.index}", int(episode.length), span, _source(meta)
        return
    if meta.selection_active or not meta.episodes:
        return  # stats.json covers every episode; the longest one may not be selected
    overall = _stats_json_span(meta)
    if overall is not None:
        longest = max(meta.episodes, key=lambda e: e.length)
        yield f"longest episode ({longest.index})", int(longest.length), overall, "meta/stats.json"


def _source(meta: DatasetMeta) -> str:
    return "meta/episodes stats/timestamp" if meta.version.startswith("v3") else "meta/episodes_stats.jsonl"


def episode_time_spans(meta: DatasetMeta) -> dict[int, float] | None:
    """``{episode_index: max - min}`` of the per-episode timestamp stats, or None when absent.

    Unreadable metadata gives None: the dataset checks already report it.
    """
    if meta.version.startswith("v3"):
        # Read with the episode tables by read_dataset_meta: no second pass over them here.
        spans = {e.index: e.time_span for e in meta.episodes if e.time_span is not None}
        return spans or None
    try:
        path = meta.root / "meta" / "episodes_stats.jsonl"
        if not path.is_file():
            return None
        stats: dict[int, Mapping[str, Any]] = {}
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    stats[int(record["episode_index"])] = record["stats"]["timestamp"]
        return _spans_of(stats)
    except Exception:  # any unreadable metadata is reported by the dataset checks
        return None


def _spans_of(stats: Mapping[int, Mapping[str, Any]]) -> dict[int, float] | None:
    out = {}
    for index, fields in stats.items():
        lo, hi = stat_scalar(fields.get("min")), stat_scalar(fields.get("max"))
        if hi is not None:
            out[index] = hi - (lo if lo is not None else 0.0)
    return out or None


def _stats_json_span(meta: DatasetMeta) -> float | None:
    try:
        stats = json.loads((meta.root / "meta" / "stats.json").read_text(encoding="utf-8"))
        fields = stats["timestamp"]
        lo, hi = stat_scalar(fields.get("min")), stat_scalar(fields.get("max"))
    except Exception:  # a stats.json without timestamp stats is not checked
        return None
    return None if hi is None else hi - (lo if lo is not None else 0.0)
