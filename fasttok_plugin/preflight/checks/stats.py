"""The stats check: stats missing, holding NaN/Infinity or min > max, or a head dim without a finite value."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import numpy as np

from fasttok_plugin.preflight.checks._base import ERROR, WARNING, _Check, _first_line
from fasttok_plugin.preflight.context import PreflightContext
from fasttok_plugin.preflight.findings import Finding, Rule

__all__ = ["StatsChecks"]


class StatsChecks(_Check):
    """Stats that are missing, lack the action key, or hold NaN/Infinity."""

    name = "stats"
    rules = (
        Rule(
            "FT202",
            "stats-missing",
            ERROR,
            "The dataset has no usable action stats (missing, or lacking the action key).",
            "Recompute the dataset stats (meta/stats.json or per-episode stats).",
        ),
        Rule(
            "FT203",
            "stats-non-finite",
            WARNING,
            "Action stats contain NaN or Infinity; they are masked when pooling the head.",
            "Recompute the stats; check the action data for NaN/Inf.",
        ),
        Rule(
            "FT204",
            "head-dim-no-finite-value",
            ERROR,
            "A head dimension has no finite min/max in any member; it was filled with [-1, 1].",
            "Recompute the stats of the members listed in the message.",
        ),
        Rule(
            "FT205",
            "stats-min-above-max",
            ERROR,
            "Action stats have min > max in some dims; min-max normalization would flip their sign.",
            "Recompute the dataset stats (min and max may have been swapped by the writer).",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        # Stats from the data need no stored stats: the fit computes them from the frames.
        from_data = context.data_stats
        for resolved in context.entries:
            meta = resolved.meta
            if resolved.error is None and meta is not None and meta.stats_error is not None and not from_data:
                yield context.finding(
                    "FT202",
                    ERROR,
                    _first_line(meta.stats_error),
                    entry=resolved,
                    hint=getattr(meta.stats_error, "hint", "") or "recompute the dataset stats",
                )
        yield from _min_above_max(context)
        heads = context.norm_heads
        if heads is None:
            return
        per_entry: dict[int, list[str]] = defaultdict(list)
        for record in heads.nonfinite:
            for index in record.entries:
                per_entry[int(index)].append(f"{record.stat}[{record.dim}]")
        for index, items in sorted(per_entry.items()):
            yield context.finding(
                "FT203",
                WARNING,
                f"action stats contain NaN/Infinity at {', '.join(sorted(set(items), key=_stat_order))}; "
                "these values are ignored when pooling the head",
                entry=index,
                hint="recompute the dataset stats and check the action data for NaN/Inf",
            )
        for record in heads.filled_dims:
            members = heads.head_members[record.head] if record.head < len(heads.head_members) else ()
            names = ", ".join(context.entries[i].name for i in members) or "no members"
            yield context.finding(
                "FT204",
                ERROR,
                f"head {record.key!r} dim {record.dim} has no finite min/max in any member ({names}); "
                "it was filled with [-1, 1]",
                entry=members[0] if members else None,
                hint="recompute the stats of these datasets; the dim cannot be normalized meaningfully",
            )


def _min_above_max(context: PreflightContext) -> Iterator[Finding]:
    """FT205: finite ``min > max`` per entry (NaN/Inf are FT203's), naming the dims and both values."""
    for resolved in context.entries:
        meta = resolved.meta
        if resolved.error is not None or meta is None or meta.stats is None:
            continue
        lo, hi = np.asarray(meta.stats.min, np.float64), np.asarray(meta.stats.max, np.float64)
        if lo.shape != hi.shape:
            continue
        dims = np.flatnonzero(np.isfinite(lo) & np.isfinite(hi) & (lo > hi)).tolist()
        if not dims:
            continue
        shown = ", ".join(f"dim {d} (min {lo[d]:.6g} > max {hi[d]:.6g})" for d in dims[:8])
        more = f" and {len(dims) - 8} more" if len(dims) > 8 else ""
        yield context.finding(
            "FT205",
            ERROR,
            f"action stats '{meta.action_key}' from {meta.stats.source} have min > max at {shown}{more}; "
            "min-max normalization would flip the sign of these dims",
            entry=resolved,
            hint=f"recompute the dataset stats ({meta.stats.source}): min and max look swapped",
        )


def _stat_order(item: str) -> tuple[str, int]:
    stat, _, dim = item.partition("[")
    return (stat, int(dim.rstrip("]") or 0))
