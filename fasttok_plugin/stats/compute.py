"""`compute_head_stats`: exact per-head stats of the frames each head trains on, cached by content key.

Memory is bounded independently of the total frame count: per head being computed, a histogram of
``max_action_dim x 65536`` int64 counts in pass 1 (16 MiB at 32 dims), then the candidate values of the
bins holding the quantiles' order statistics, as distinct values with counts (at most 65536 per bin, at
most ``10 x max_action_dim`` bins); plus block temporaries (`BLOCK_VALUES` values) and the one dataset
`read_frames` holds. Heads are computed one after another; each member is read once per pass (a
one-member head's second pass is served by `read_frames`' in-process cache).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from fasttok_plugin.errors import StatsError
from fasttok_plugin.heads import NormHeads
from fasttok_plugin.lerobot import DatasetMeta, read_frames
from fasttok_plugin.resolve import ResolvedMixture, entry_label
from fasttok_plugin.stats._accumulate import HeadAccumulator, HeadResult
from fasttok_plugin.stats._transformed import ChunkRule, transformed_blocks, transforms_key
from fasttok_plugin.stats.cache import default_cache_dir, load_cached, stats_key, store
from fasttok_plugin.stats.model import QUANTILES, DataStats

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.transforms import ActionTransform

__all__ = ["FrameTransform", "compute_head_stats"]

logger = logging.getLogger(__name__)


@runtime_checkable
class FrameTransform(Protocol):
    """Turns a dataset's raw actions into what the policy sees (column selection, relative actions ...).

    ``key`` names the transform and all its settings (it goes into the cache key: two transforms with the
    same key must give the same values). Called once per dataset and pass with the ``(n, d)`` float32
    actions of its selected episodes (episodes contiguous, in index order) and its metadata; returns
    ``(n, d')`` values with ``d' <= max_action_dim`` (cast to float32, the dtype of every batch).
    """

    key: str

    def __call__(self, actions: np.ndarray, meta: DatasetMeta) -> np.ndarray:  # pragma: no cover - protocol
        """The transformed ``(n, d')`` actions."""
        ...


def compute_head_stats(
    resolved: ResolvedMixture,
    heads: NormHeads,
    *,
    cache_dir: Path | None = None,
    cache: bool = True,
    progress: bool = False,
    transform: FrameTransform | None = None,
    transforms: ActionTransform | Sequence[ActionTransform | None] | None = None,
    chunk_size: int | None = None,
    action_freq: float | None = None,
) -> DataStats:
    """Per-head stats of every frame of every selected episode of the head's members (DESIGN §12).

    Two streamed passes per head (see `fasttok_plugin.stats` for exactness and memory); the result is
    cached as JSON under ``cache_dir`` by a content key (`stats_key`), so a second run reads no frame.

    Args:
        resolved: The mixture (``episodes``/``excluded_episodes`` already applied to each ``meta``).
        heads: Head of each entry (``dataset_to_head``; ``-1``: skipped) and ``max_action_dim``.
        cache_dir: Cache folder (default `default_cache_dir`).
        cache: Read and write the cache.
        progress: Show a tqdm bar over the datasets read.
        transform: Applied to each dataset's actions before pooling (needs a ``key`` string).
        transforms: The `ActionTransform` of every entry (one for all or one per entry), applied as the
            sampler applies it (see `fasttok_plugin.stats._transformed` for the values pooled: frames
            for a column selection, every drawable chunk minus its start state for relative actions).
        chunk_size: The sampler's chunk size (needed by relative actions).
        action_freq: The sampler's rate (None: each dataset's native fps), for relative actions.

    Returns:
        The stats, heads in ``heads`` order.

    Raises:
        DatasetError: A data file is missing or unreadable (from `read_frames`, naming the entry).
        StatsError: The transform has no ``key`` or returns the wrong shape; both kinds of transform.
    """
    per_entry = _per_entry(transforms, len(resolved.entries))
    rule = ChunkRule(chunk_size, action_freq)
    transform_key = _transform_key(transform)
    typed_key = transforms_key(per_entry, rule)
    if typed_key is not None and transform_key is not None:
        raise StatsError("give either transform (a FrameTransform) or transforms (ActionTransform), not both")
    key = stats_key(resolved, heads, transform_key if typed_key is None else typed_key)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if cache:
        cached = load_cached(folder, key, tuple(heads.keys), heads.max_action_dim)
        if cached is not None:
            logger.info("data stats served from the cache %s", folder / f"{key}.json")
            return cached
    source = _Source(resolved, width=heads.max_action_dim, frame=transform, typed=per_entry, rule=rule)
    stats = _compute(resolved, heads, key, progress, source)
    if cache:
        store(folder, stats)
    return stats


def _transform_key(transform: FrameTransform | None) -> str | None:
    if transform is None:
        return None
    key = getattr(transform, "key", None)
    if not callable(transform) or not isinstance(key, str) or not key:
        raise StatsError(
            f"the stats transform {transform!r} needs a non-empty string attribute 'key' naming it and its "
            "settings (it is part of the stats cache key) and must be callable as (actions, meta)"
        )
    return key


def _per_entry(
    transforms: ActionTransform | Sequence[ActionTransform | None] | None, entries: int
) -> tuple[ActionTransform | None, ...]:
    from fasttok_plugin.transforms import ActionTransform

    if transforms is None or isinstance(transforms, ActionTransform):
        return (transforms,) * entries
    out = tuple(transforms)
    if len(out) != entries:
        raise StatsError(f"transforms: {len(out)} given for {entries} entries; give one per entry")
    return out


class _Source:
    """Where an entry's pooled values come from: raw frames, a `FrameTransform`, or an ActionTransform."""

    def __init__(
        self,
        resolved: ResolvedMixture,
        *,
        width: int,
        frame: FrameTransform | None,
        typed: Sequence[ActionTransform | None],
        rule: ChunkRule,
    ) -> None:
        self.resolved, self.width, self.frame, self.typed, self.rule = resolved, width, frame, typed, rule

    def blocks(self, position: int) -> Iterator[tuple[np.ndarray, int]]:
        """``(values, left-out values)`` blocks of the entry at ``position``."""
        typed = self.typed[position]
        if typed is None or typed.is_identity:
            yield _actions(self.resolved, position, self.width, self.frame), 0
            return
        entry = self.resolved.entries[position]
        assert entry.meta is not None
        label = entry_label(entry.index, entry.name)
        past = [m for kind, m in typed.problems(int(entry.meta.action_dim), None) if kind != "state_key"]
        if past:
            raise StatsError(f"{label}: the transform {typed.describe()!r}: " + "; ".join(past))
        state_key = typed.state_key if typed.needs_state else None
        frames = read_frames(entry.meta, label, state_key=state_key)
        if typed.output_dim(int(entry.meta.action_dim)) > self.width:
            raise StatsError(
                f"{label}: the transform {typed.describe()!r} gives "
                f"{typed.output_dim(int(entry.meta.action_dim))} dims, more than max_action_dim "
                f"({self.width}); select fewer columns or raise max_action_dim"
            )
        yield from transformed_blocks(self.resolved, position, frames, typed, self.rule)


def _compute(
    resolved: ResolvedMixture,
    heads: NormHeads,
    key: str,
    progress: bool,
    source: _Source,
) -> DataStats:
    width = heads.max_action_dim
    members = [
        [i for i in heads.head_members[h] if resolved.entries[i].meta is not None]
        for h in range(heads.num_heads)
    ]
    entry_counts = [0] * len(resolved.entries)
    entry_nonfinite = [0] * len(resolved.entries)
    results: list[HeadResult] = []
    with _bar(progress, 2 * sum(len(m) for m in members)) as bar:
        for h in range(heads.num_heads):
            acc = HeadAccumulator(width, np.array(QUANTILES))
            for i in members[h]:
                for values, left_out in source.blocks(i):
                    bad = acc.add(values)
                    acc.nonfinite += left_out
                    entry_counts[i] += values.shape[0] - bad
                    entry_nonfinite[i] += bad + left_out
                bar.update(1)
            if acc.plan():
                for i in members[h]:
                    for values, _ in source.blocks(i):
                        acc.collect(values)
                    bar.update(1)
                if not acc.consistent():
                    raise StatsError(
                        f"head {h} ({heads.keys[h]}): its frames changed between the two passes of the stats "
                        "(a data file rewritten during the run, or a transform that is not deterministic); "
                        "run again once the data is stable"
                    )
            else:
                bar.update(len(members[h]))
            results.append(acc.result())
    return _assemble(heads, results, key, entry_counts, entry_nonfinite)


def _actions(
    resolved: ResolvedMixture, position: int, width: int, transform: FrameTransform | None
) -> np.ndarray:
    """The float32 frames entry ``position`` contributes, after the transform."""
    entry = resolved.entries[position]
    meta = entry.meta
    assert meta is not None
    label = entry_label(entry.index, entry.name)
    actions = read_frames(meta, label).actions
    if transform is None:
        return actions
    out = np.asarray(transform(actions, meta))
    if (
        out.ndim != 2
        or out.shape[0] != actions.shape[0]
        or out.shape[1] > width
        or out.dtype.kind not in "fiu"
    ):
        raise StatsError(
            f"{label}: the stats transform {transform.key!r} returned an array of shape {out.shape} "
            f"({out.dtype}) for {actions.shape[0]} frames; expected ({actions.shape[0]}, d) numbers with "
            f"d <= max_action_dim ({width}). Fix the transform or raise max_action_dim"
        )
    return np.ascontiguousarray(out, dtype=np.float32)


def _assemble(
    heads: NormHeads,
    results: Sequence[HeadResult],
    key: str,
    entry_counts: Sequence[int],
    entry_nonfinite: Sequence[int],
) -> DataStats:
    width = heads.max_action_dim

    def stack(get: Callable[[HeadResult], np.ndarray]) -> np.ndarray:
        array = np.stack([get(r) for r in results]) if results else np.zeros((0, width))
        array = np.ascontiguousarray(array, dtype=np.float64)
        array.flags.writeable = False
        return array

    quantiles = {
        name: stack(lambda r, k=k: r.quantiles[k])
        for k, name in enumerate(("q01", "q10", "q50", "q90", "q99"))
    }
    return DataStats(
        keys=tuple(heads.keys),
        min=stack(lambda r: r.min),
        max=stack(lambda r: r.max),
        mean=stack(lambda r: r.mean),
        std=stack(lambda r: r.std),
        **quantiles,
        counts=np.array([r.count for r in results], dtype=np.int64),
        nonfinite=np.array([r.nonfinite for r in results], dtype=np.int64),
        entry_counts=tuple(int(c) for c in entry_counts),
        entry_nonfinite=tuple(int(c) for c in entry_nonfinite),
        key=key,
    )


def _bar(progress: bool, total: int) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, desc="data stats", unit="dataset", disable=not progress, leave=True, file=sys.stderr
    )
