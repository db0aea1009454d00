"""The values an entry contributes to its head's stats under an `ActionTransform` (DESIGN §11, §12).

The rule (documented in docs/fitting.md, "Transforms"):

* **Column selection only**: every frame of every selected episode, its selected columns (the frame rule
  of the stats without transforms, unchanged).
* **Relative actions**: every chunk the sampler can draw, i.e. every valid start of the shared start rule
  (`fasttok_plugin.sampling.valid_start_rows`) at the entry's rate (``action_freq``, else the native fps,
  resampled exactly as the sampler does), each of its ``chunk_size`` steps minus the state at its first
  frame (`fasttok_plugin.sampling._part.chunk_values`, the sampler's own code). This is what openpi's
  ``compute_norm_stats`` does by running ``DeltaActions`` over the chunks it loads, over every chunk instead
  of a sample. A head then pools ``sum(valid starts) x chunk_size`` values per dim; quantiles stay exact
  (the two-pass accumulator holds no values per frame). Chunks holding NaN/Inf (in a frame they use or in
  the state at their start) are left out, as the sampler leaves them out, and counted as ``chunk_size``
  non-finite values each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import numpy as np

from fasttok_plugin.errors import StatsError
from fasttok_plugin.lerobot import Frames
from fasttok_plugin.resolve import ResolvedMixture
from fasttok_plugin.stats._accumulate import BLOCK_VALUES
from fasttok_plugin.transforms import ActionTransform

__all__ = ["ChunkRule", "transformed_blocks", "transforms_key"]


class ChunkRule:
    """Chunk size and rate of the sampler whose chunks relative-action stats cover."""

    __slots__ = ("action_freq", "chunk_size")

    def __init__(self, chunk_size: int | None, action_freq: float | None) -> None:
        self.chunk_size = chunk_size
        self.action_freq = action_freq

    def freq(self, fps: float) -> float:
        """The entry's chunk rate: ``action_freq``, else its native fps."""
        return float(fps) if self.action_freq is None else float(self.action_freq)


def transforms_key(transforms: Sequence[ActionTransform | None], rule: ChunkRule) -> str | None:
    """The transforms' part of the stats cache key (None when every entry is untransformed)."""
    keys = [None if t is None or t.is_identity else t.key for t in transforms]
    if all(k is None for k in keys):
        return None
    relative = any(t is not None and t.needs_state for t in transforms)
    document = {
        "transforms": keys,
        # Relative stats cover the sampler's chunks: their size and rate are part of what they depend on.
        "chunk_size": rule.chunk_size if relative else None,
        "action_freq": rule.action_freq if relative else None,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def transformed_blocks(
    resolved: ResolvedMixture,
    position: int,
    frames_of: Frames,
    transform: ActionTransform,
    rule: ChunkRule,
) -> Iterator[tuple[np.ndarray, int]]:
    """``(values (n, d') float32, left-out values)`` blocks of entry ``position`` under ``transform``."""
    if not transform.needs_state:
        yield transform.apply(frames_of.actions, None), 0
        return
    from fasttok_plugin.sampling._part import chunk_values  # the sampler's own chunk rule
    from fasttok_plugin.sampling.starts import valid_start_rows

    meta = resolved.entries[position].meta
    assert meta is not None
    if rule.chunk_size is None:
        raise StatsError(
            "stats of relative actions cover the sampler's chunks: pass chunk_size to compute_head_stats"
        )
    size, freq = int(rule.chunk_size), rule.freq(meta.fps)
    rows = valid_start_rows(frames_of, chunk_size=size, freq=freq)
    width = transform.output_dim(int(meta.action_dim))
    step = max(1, BLOCK_VALUES // (size * max(1, int(meta.action_dim))))
    for start in range(0, rows.size, step):
        block = rows[start : start + step]
        values, keep = chunk_values(frames_of, block, size, freq, transform)
        yield values.reshape(-1, width), (block.size - keep.size) * size
