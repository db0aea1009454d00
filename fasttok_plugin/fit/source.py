"""What a fit can be fed, and how it becomes the norm heads, sampler and settings the fit runs with.

A fit takes a mixture file, a parsed `MixtureConfig`, or any `FitSource`: an object exposing the norm
heads and the chunk sampler it was built with (the Lightning datamodule is one). The preflight runs on
those very objects, so it checks exactly what the fit will use.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from fasttok_plugin.errors import FitError, StatsError
from fasttok_plugin.sampling import ChunkSampler

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.fit._progress import PhaseClock
    from fasttok_plugin.fit.settings import FitSettings
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.mixture import MixtureConfig
    from fasttok_plugin.preflight import Finding, PreflightResult
    from fasttok_plugin.resolve import ResolvedMixture
    from fasttok_plugin.transforms import ActionTransform

__all__ = ["FitSource", "PreparedFit", "heads_with_data_stats", "prepare_fit", "run_fit_preflight"]

logger = logging.getLogger(__name__)


@runtime_checkable
class FitSource(Protocol):
    """Anything that can feed a fit: norm heads plus a chunk sampler (the Lightning datamodule is one).

    This is also what `~fasttok_plugin.lightning.FastTokenizerCallback` needs from ``trainer.datamodule``
    (there it is named ``TokenizerSource``). :class:`~fasttok_plugin.lightning.MixtureDataModule`
    implements it; so can any datamodule. The attributes must be ready when ``Callback.setup`` runs, i.e.
    built in the datamodule's ``setup()`` (Lightning calls it first).

    Attributes:
        norm_heads: The :class:`~fasttok_plugin.heads.NormHeads` the model normalizes its actions with.
        chunk_sampler: The :class:`~fasttok_plugin.sampling.ChunkSampler` to draw fit chunks from; its
            ``settings()`` enter the fit fingerprint.
        resolved_mixture: The :class:`~fasttok_plugin.resolve.ResolvedMixture` the heads were built from, for
            the preflight; ``None`` limits the preflight to the norm heads' own checks.
    """

    norm_heads: NormHeads
    chunk_sampler: ChunkSampler
    resolved_mixture: ResolvedMixture | None


@dataclass(frozen=True, slots=True)
class PreparedFit:
    """The objects a fit runs with, after the preflight passed.

    Attributes:
        config: The mixture (None for a `FitSource` without a resolved mixture).
        resolved: The resolved mixture (same caveat).
        heads: The norm heads (without errors).
        sampler: The chunk sampler the fit draws from.
        settings: The settings with ``chunk_size`` and ``max_action_dim`` filled in.
        preflight: The preflight result (None when the preflight did not run).
    """

    config: MixtureConfig | None
    resolved: ResolvedMixture | None
    heads: NormHeads
    sampler: ChunkSampler
    settings: FitSettings
    preflight: PreflightResult | None


def run_fit_preflight(
    config: MixtureConfig,
    resolved: ResolvedMixture,
    heads: NormHeads | None,
    *,
    max_action_dim: int | None,
    chunk_size: int | None,
    strict: bool = False,
    on_warning: Callable[[Finding], None] | None = None,
    transform: ActionTransform | tuple[ActionTransform | None, ...] | None = None,
    stats_source: str | None = None,
    convention: Any = None,
) -> PreflightResult:
    """Run the preflight on the objects the fit uses; raise `PreflightError` on any error.

    Args:
        config: The mixture.
        resolved: Its resolved entries (reused, not read again).
        heads: The norm heads built from them (reused).
        max_action_dim: The fit's action width.
        chunk_size: The fit's chunk size.
        strict: Treat warnings as errors.
        on_warning: Called with every warning finding, before any error is raised.
        transform: The fit's transform argument, or each entry's (a tuple); None: the mixture's keys.
        stats_source: The fit's stats source (``"data"``: missing stored stats are no error).
        convention: The fit's convention (None: the mixture's), for the conventions check.
    """
    from fasttok_plugin.preflight import run_preflight  # lazy: the core never imports pluggy at import

    result = run_preflight(
        config,
        resolved=resolved,
        norm_heads=heads,
        max_action_dim=max_action_dim,
        chunk_size=chunk_size,
        strict=strict,
        transform=transform,
        stats_source=stats_source,
        options={"convention": convention} if convention is not None else None,
    )
    if on_warning is not None:
        for finding in result.warnings:
            on_warning(finding)
    result.raise_for_errors()
    return result


def prepare_fit(
    source: str | os.PathLike[str] | MixtureConfig | FitSource,
    settings: FitSettings,
    *,
    preflight: bool,
    clock: PhaseClock,
) -> PreparedFit:
    """Turn ``source`` into the heads, sampler and settings of the fit; preflight them first if asked.

    Raises:
        TypeError: ``source`` is none of the accepted kinds.
        FitError: ``settings`` disagree with a `FitSource`'s sampler or heads.
        PreflightError: The preflight found errors.
        NormHeadsError: The heads have errors (without the preflight).
    """
    from fasttok_plugin.mixture import MixtureConfig

    if isinstance(source, (str, os.PathLike, MixtureConfig)):
        return _prepare_mixture(source, settings, preflight=preflight, clock=clock)
    if not (hasattr(source, "norm_heads") and hasattr(source, "chunk_sampler")):
        raise TypeError(
            "source must be a mixture path, a MixtureConfig, or an object exposing norm_heads and "
            f"chunk_sampler (FitSource); got {type(source).__name__}"
        )
    return _prepare_source(source, settings, preflight=preflight, clock=clock)


def _load_config(source: str | os.PathLike[str] | MixtureConfig, *, preflight: bool) -> MixtureConfig:
    from fasttok_plugin.mixture import MixtureConfig, MixtureError, load_mixture

    if isinstance(source, MixtureConfig):
        return source
    try:
        return load_mixture(source)
    except MixtureError as exc:
        if preflight and not getattr(exc, "unreadable", False):
            # Structural problems come back as preflight findings (FT001), like fasttok-preflight.
            from fasttok_plugin.preflight import run_preflight

            run_preflight(source).raise_for_errors()
        raise


def _prepare_mixture(
    source: str | os.PathLike[str] | MixtureConfig,
    settings: FitSettings,
    *,
    preflight: bool,
    clock: PhaseClock,
) -> PreparedFit:
    from fasttok_plugin.heads import build_norm_heads
    from fasttok_plugin.resolve import resolve_mixture

    with clock.phase("resolve"):
        config = _load_config(source, preflight=preflight)
        settings = settings.resolved(config)
        resolved = resolve_mixture(config)
    # resolved() filled chunk_size, max_action_dim and head_grouping (argument, else the mixture's, else
    # the default).
    chunk_size, width = settings.chunk_size, settings.max_action_dim
    transforms = config.entry_transforms(settings.transform)
    with clock.phase("norm_heads"):
        # build_norm_heads never raises on bad data: it records every problem, which the preflight lists.
        heads = build_norm_heads(
            resolved,
            width,
            grouping=str(settings.head_grouping),
            stats_source=str(settings.stats_source),
            transforms=transforms,
        )
    result = None
    if preflight:
        with clock.phase("preflight"):
            result = run_fit_preflight(
                config,
                resolved,
                heads,
                max_action_dim=width,
                chunk_size=chunk_size,
                transform=settings.transform,
                stats_source=settings.stats_source,
                convention=settings.convention,
            )
    heads.raise_for_errors()
    if settings.stats_source == "data":
        with clock.phase("data_stats"):
            heads = heads_with_data_stats(
                resolved, heads, transforms=transforms, chunk_size=chunk_size, action_freq=config.action_freq
            )
    sampler = ChunkSampler(
        resolved,
        heads,
        chunk_size=chunk_size,
        seed=settings.seed,
        workers=settings.workers,
        transforms=transforms,
    )
    return PreparedFit(config, resolved, heads, sampler, settings, result)


def heads_with_data_stats(
    resolved: ResolvedMixture,
    heads: NormHeads,
    *,
    progress: bool = False,
    transforms: Sequence[ActionTransform | None] | None = None,
    chunk_size: int | None = None,
    action_freq: float | None = None,
) -> NormHeads:
    """``heads`` with the stats of the frames each head trains on (`compute_head_stats`, cached).

    The one place the fit and the datamodule get data stats from, so both normalize with the same values.

    Args:
        resolved: The mixture.
        heads: Its heads (stored stats).
        progress: Show a progress bar.
        transforms: Each entry's `ActionTransform` (`MixtureConfig.entry_transforms`); the stats cover the
            transformed actions and the heads' native dims become the selected widths.
        chunk_size: The sampler's chunk size (relative actions pool its chunks).
        action_freq: The sampler's rate (None: native fps).

    Raises:
        FitError: A head has no finite frame (its stats would be NaN); names the head and the fix.
    """
    from fasttok_plugin.stats import compute_head_stats  # lazy: reads frames, only for stats_source="data"

    try:
        stats = compute_head_stats(
            resolved,
            heads,
            progress=progress,
            transforms=transforms,
            chunk_size=chunk_size,
            action_freq=action_freq,
        )
    except StatsError as exc:
        raise FitError(f"cannot compute the stats from the data: {exc}") from None
    for line in stats.problems():
        logger.warning("data stats: %s", line)
    try:
        return heads.with_data_stats(stats, transforms=transforms)
    except ValueError as exc:
        raise FitError(f"cannot normalize with stats from the data: {exc}") from None


def _prepare_source(
    source: FitSource, settings: FitSettings, *, preflight: bool, clock: PhaseClock
) -> PreparedFit:
    heads = source.norm_heads
    sampler = source.chunk_sampler
    resolved = getattr(source, "resolved_mixture", None)
    config = resolved.config if resolved is not None else None
    settings = _settings_for(source, settings)
    if settings.workers > 0 and settings.workers != sampler.workers and isinstance(sampler, ChunkSampler):
        # settings.workers asks for processes (the Lightning callback's `workers`); 0 keeps the source's.
        sampler = sampler.with_workers(settings.workers)
    result = None
    if preflight:
        if resolved is None:
            logger.info("the fit source exposes no resolved_mixture: preflight skipped")
        else:
            with clock.phase("preflight"):
                result = run_fit_preflight(
                    config,
                    resolved,
                    heads,
                    max_action_dim=settings.max_action_dim,
                    chunk_size=settings.chunk_size,
                )
    heads.raise_for_errors()
    return PreparedFit(config, resolved, heads, sampler, settings, result)


def _settings_for(source: FitSource, settings: FitSettings) -> FitSettings:
    """``settings`` with the source's chunk size, action width and head grouping, which an explicit value
    must match."""
    sampler, heads = source.chunk_sampler, source.norm_heads
    if settings.convention is not None:
        # The convention's grouping / stats source must then match the source's heads (checked below).
        settings = settings.with_convention(settings.convention)
    if settings.chunk_size is not None and settings.chunk_size != sampler.chunk_size:
        raise FitError(
            f"settings.chunk_size={settings.chunk_size} but the source's sampler draws chunks of "
            f"{sampler.chunk_size}; pass the same chunk size"
        )
    if settings.max_action_dim is not None and settings.max_action_dim != heads.max_action_dim:
        raise FitError(
            f"settings.max_action_dim={settings.max_action_dim} but the source's norm heads are "
            f"{heads.max_action_dim} wide; pass the same max_action_dim"
        )
    grouping = getattr(heads, "grouping", "robot_control")
    if settings.head_grouping is not None and settings.head_grouping != grouping:
        raise FitError(
            f"settings.head_grouping={settings.head_grouping!r} but the source's norm heads are grouped by "
            f"{grouping!r}; build the heads with the same grouping"
        )
    source_of_heads = getattr(heads, "stats_source", "stored")
    # Heads with errors kept their stored stats: the preflight lists their errors instead of this.
    if settings.source != source_of_heads and not heads.errors():
        raise FitError(
            f"normalization {settings.normalization!r} with stats_source={settings.source!r} but the "
            f"source's norm heads hold {source_of_heads!r} stats; build the heads (the datamodule's "
            f"stats_source) with stats_source={settings.source!r}"
        )
    _check_transform(settings, sampler)
    served, layout = getattr(source, "layout", None), settings.layout
    if isinstance(served, str):
        if layout == "padded":
            layout = served  # the default takes the source's layout, as it takes a mixture's
        elif layout != served:
            raise FitError(
                f"settings.layout={layout!r} but the source serves {served!r} chunks; build the datamodule "
                f"with layout={layout!r}"
            )
    return dataclasses.replace(
        settings,
        chunk_size=sampler.chunk_size,
        max_action_dim=heads.max_action_dim,
        head_grouping=grouping,
        stats_source=source_of_heads,
        layout=layout,
    )


def _check_transform(settings: FitSettings, sampler: ChunkSampler) -> None:
    """A given ``settings.transform`` must be the one the source's sampler applies to every entry."""
    if settings.transform is None or not isinstance(sampler, ChunkSampler):
        return
    wanted = None if settings.transform.is_identity else settings.transform
    if any(t != wanted for t in sampler.transforms):
        have = sorted({"identity" if t is None else t.describe() for t in sampler.transforms})
        raise FitError(
            f"settings.transform={settings.transform.describe()!r} but the source's sampler applies "
            f"{', '.join(map(repr, have))}; build the datamodule with the same transform"
        )
