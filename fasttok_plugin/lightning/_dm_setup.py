"""The datamodule's setup steps: its convention, grouping, layout and stats source resolved, the heads and
the sampler built; and the warning about entries a sampling round never draws."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from fasttok_plugin.conventions import convention_from_dict
from fasttok_plugin.defaults import DEFAULT_HEAD_GROUPING, resolve_setting
from fasttok_plugin.lightning._arguments import data_source_for

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.mixture import MixtureConfig
    from fasttok_plugin.resolve import ResolvedMixture
    from fasttok_plugin.sampling import ChunkSampler

__all__ = ["build_heads_and_sampler", "warn_starved_entries"]


def build_heads_and_sampler(
    dm: Any, config: MixtureConfig, resolved: ResolvedMixture, max_action_dim: int, chunk_size: int
) -> tuple[NormHeads, ChunkSampler, str]:
    """Resolve ``dm``'s convention, layout and stats source (set on ``dm``); return its heads, sampler and
    grouping, each by the one "argument, else mixture, else default" rule.
    """
    from fasttok_plugin.heads import build_norm_heads
    from fasttok_plugin.sampling import ChunkSampler

    named = resolve_setting(dm._convention_arg, config.convention, None)
    dm.convention = convention_from_dict(named) if named is not None else None
    by_convention = dm.convention.head_grouping if dm.convention is not None else None
    grouping = resolve_setting(
        dm._head_grouping_arg, config.head_grouping, by_convention or DEFAULT_HEAD_GROUPING
    )
    by_convention = dm.convention.layout if dm.convention is not None else "padded"
    dm._layout = str(resolve_setting(dm._layout_arg, config.layout, by_convention))
    transforms = config.entry_transforms(dm.transform)
    dm.stats_source = data_source_for(dm._stats_source_arg, transforms)
    if dm.convention is not None:
        if dm._stats_source_arg is None and dm.stats_source == "stored":
            dm.stats_source = dm.convention.source
        dm.convention = dm.convention.replace(
            head_grouping=grouping, stats_source=dm.stats_source, layout=dm._layout
        )
    heads = build_norm_heads(
        resolved, max_action_dim, grouping=grouping, stats_source=dm.stats_source, transforms=transforms
    )
    if dm.stats_source == "data" and not heads.errors():
        # The fit's own helper: the callback's fit and Normalize see exactly these stats. Heads with
        # errors are left stored so the callback's preflight can list every problem first.
        from fasttok_plugin.fit.source import heads_with_data_stats

        heads = heads_with_data_stats(
            resolved, heads, transforms=transforms, chunk_size=chunk_size, action_freq=config.action_freq
        )
    # The sampler keeps its default seed: the loaders pass their own seeds, and the sampler's settings
    # enter the tokenizer fingerprint, so a new training seed must not invalidate a cached tokenizer.
    sampler = ChunkSampler(
        resolved, heads, chunk_size=chunk_size, workers=dm.sampler_workers, transforms=transforms
    )
    return heads, sampler, grouping


def warn_starved_entries(dm: Any) -> None:
    """Warn (rank 0) about entries whose share of a sampling round is below one chunk: never drawn."""
    round_chunks = max(dm.round_chunks, dm.batch_size)
    budgets = dm.chunk_sampler.budgets(round_chunks)
    weights = dm.resolved_mixture.config.weights
    starved = [
        entry.name
        for position, entry in enumerate(dm.resolved_mixture.entries)
        if budgets[position] == 0
        and dm.norm_heads.dataset_to_head[position] >= 0
        and isinstance(weights[position], (int, float))
        and weights[position] > 0
    ]
    if starved:
        rank_zero_warn(
            f"MixtureDataModule: round_chunks={round_chunks} gives {len(starved)} dataset(s) a share "
            "below one chunk, so they are never drawn "
            f"({', '.join(starved[:5])}{', ...' if len(starved) > 5 else ''}); raise round_chunks"
        )
