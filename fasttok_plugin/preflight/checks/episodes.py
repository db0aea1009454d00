"""The episode-lengths check: episodes shorter than one chunk at the target frequency."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fasttok_plugin.preflight.checks._base import ERROR, WARNING, _Check
from fasttok_plugin.preflight.context import PreflightContext
from fasttok_plugin.preflight.findings import Finding, Rule
from fasttok_plugin.sampling.starts import chunk_span, longest_chunk, valid_start_counts

__all__ = ["EpisodeLengths"]


class EpisodeLengths(_Check):
    """Episodes shorter than one chunk at the target frequency are never sampled."""

    name = "episode_lengths"
    rules = (
        Rule(
            "FT401",
            "no-episode-fits-chunk",
            ERROR,
            "No selected episode of the entry is long enough for one chunk at the target frequency.",
            "Lower chunk_size or action_freq, or drop the entry.",
        ),
        Rule(
            "FT402",
            "short-episodes",
            WARNING,
            "Some episodes are shorter than one chunk at the target frequency and are never sampled.",
            "Exclude them with excluded_episodes, or lower chunk_size.",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        chunk_size = context.chunk_size
        for resolved in context.entries:
            meta = resolved.meta
            if meta is None or resolved.error is not None:
                continue
            fps = float(meta.fps)
            freq = float(context.action_freq) if context.action_freq else fps
            lengths = np.fromiter((e.length for e in meta.episodes), dtype=np.int64, count=len(meta.episodes))
            if lengths.size == 0:
                yield context.finding(
                    "FT401",
                    ERROR,
                    "selects no episodes, so no chunk can be sampled",
                    entry=resolved,
                    field="episodes",
                    hint="check the entry's episodes/excluded_episodes against the dataset",
                )
                continue
            # The sampler's own rule: an episode fits when it has a valid chunk start.
            starts = valid_start_counts(lengths, fps=fps, chunk_size=chunk_size, freq=freq)
            n_fit = int((starts > 0).sum())
            if n_fit == lengths.size:
                continue
            longest = int(lengths.max())
            longest_span = (longest - 1) / fps
            rate = f"{chunk_size} steps at {freq:g} Hz spans {chunk_span(chunk_size, freq):.3g} s"
            if n_fit == 0:
                max_chunk = longest_chunk(longest, fps=fps, freq=freq)
                yield context.finding(
                    "FT401",
                    ERROR,
                    f"no episode fits one chunk: a chunk of {rate}, the longest of {lengths.size} episodes "
                    f"spans {longest_span:.3g} s ({longest} frames at {fps:g} fps)",
                    entry=resolved,
                    hint=f"lower chunk_size to at most {max_chunk} (or raise action_freq), or drop the entry",
                )
            else:
                short = lengths.size - n_fit
                yield context.finding(
                    "FT402",
                    WARNING,
                    f"{short} of {lengths.size} episodes ({short / lengths.size:.0%}) are shorter than one "
                    f"chunk (a chunk of {rate}) and are never sampled",
                    entry=resolved,
                    hint="exclude them with excluded_episodes, or lower chunk_size",
                )
