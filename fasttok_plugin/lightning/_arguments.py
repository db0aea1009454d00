"""The callback's own (non-fit) arguments, checked in ``__init__`` so a bad value fails before any work."""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

from fasttok_plugin.defaults import DEFAULT_HEAD_GROUPING, resolve_setting
from fasttok_plugin.errors import FitError
from fasttok_plugin.fit.settings import FitSettings

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.normalize import Normalize

__all__ = [
    "callback_fit_settings",
    "callback_settings",
    "check_arguments",
    "check_transform_argument",
    "data_source_for",
    "head_grouping_of",
    "layout_of",
    "normalize_for",
    "stats_source_of",
    "transform_of",
]


def normalize_for(settings: FitSettings, heads: Any) -> Normalize:
    """The `Normalize` the tokenizer was fit with (the settings' convention, else mode, zero range, eps)."""
    from fasttok_plugin.conventions import convention_from_dict
    from fasttok_plugin.normalize import Normalize

    if settings.convention is not None:
        return Normalize.for_convention(heads, convention_from_dict(settings.convention))
    return Normalize(heads, mode=settings.normalization, zero_range=settings.zero_range, eps=settings.eps)


def callback_settings(**arguments: Any) -> FitSettings:
    """The callback's fit arguments as `FitSettings`, which validates every one and names each bad value.

    Raises:
        ValueError: Listing every invalid argument, prefixed with ``FastTokenizerCallback:``.
    """
    try:
        return FitSettings(**arguments)
    except ValueError as exc:
        raise ValueError(f"FastTokenizerCallback: {exc}") from None


def check_arguments(
    tokenizer_dir: object, on_mismatch: object, attribute: object, normalize_attribute: object
) -> None:
    """Validate the callback's own (non-fit) arguments; `FitSettings` checks the fit ones."""
    if not isinstance(tokenizer_dir, (str, os.PathLike)) or not str(tokenizer_dir).strip():
        raise ValueError(f"FastTokenizerCallback: tokenizer_dir must be a folder path, got {tokenizer_dir!r}")
    if on_mismatch not in ("error", "refit"):
        raise ValueError(
            f"FastTokenizerCallback: on_mismatch must be one of 'error', 'refit', got {on_mismatch!r}"
        )
    for name, value in (("attribute", attribute), ("normalize_attribute", normalize_attribute)):
        if value is None and name == "normalize_attribute":
            continue
        if not isinstance(value, str) or not value.isidentifier():
            raise ValueError(f"FastTokenizerCallback: {name} must be a Python identifier, got {value!r}")
    if normalize_attribute == attribute:
        raise ValueError(
            f"FastTokenizerCallback: attribute and normalize_attribute must differ, both are {attribute!r}"
        )


def head_grouping_of(argument: str | None, heads: object) -> str:
    """The callback's head grouping: its argument, else that of the datamodule's heads (the mixture's).

    The callback never regroups the heads it is given, so an explicit argument must match theirs.

    Raises:
        FitError: ``argument`` differs from the grouping the datamodule built its heads with.
    """
    built = str(getattr(heads, "grouping", DEFAULT_HEAD_GROUPING))
    grouping = resolve_setting(argument, built, DEFAULT_HEAD_GROUPING)
    if grouping != built:
        raise FitError(
            f"FastTokenizerCallback(head_grouping={grouping!r}) but the datamodule's norm heads are grouped "
            f'by {built!r}; pass head_grouping={grouping!r} to the datamodule (or set "head_grouping" in '
            "the mixture file) so the policy normalizes with the same heads"
        )
    return grouping


def stats_source_of(settings: FitSettings, heads: object, sampler: object = None) -> str:
    """The callback's stats source, which must be that of the datamodule's heads (it never recomputes them).

    Args:
        settings: The callback's settings.
        heads: The datamodule's norm heads.
        sampler: The datamodule's sampler: when it transforms the actions, the default source is ``"data"``.

    Raises:
        FitError: The settings' source (``"data"`` by default for the quantile modes and transforms)
            differs from the heads'; names the datamodule argument that fixes it.
    """
    built = str(getattr(heads, "stats_source", "stored"))
    errors = getattr(heads, "errors", None)
    wanted = settings.source
    if settings.stats_source is None and any(t is not None for t in getattr(sampler, "transforms", ())):
        wanted = "data"
    if wanted != built and not (callable(errors) and errors()):  # the preflight lists those first
        raise FitError(
            f"FastTokenizerCallback(normalization={settings.normalization!r}) needs stats_source="
            f"{wanted!r} but the datamodule's norm heads hold {built!r} stats; pass "
            f"stats_source={wanted!r} to the datamodule (MixtureDataModule(stats_source=...)) so "
            "the policy normalizes with the stats the tokenizer is fit on"
        )
    return built


def transform_of(argument: Any, sampler: object) -> Any:
    """The callback's transform: its argument, which must be the one the datamodule's sampler applies to
    every entry, else None (the sampler's own transforms, in its settings and so in the fingerprint).

    Raises:
        FitError: ``argument`` differs from the datamodule's transforms; names the datamodule argument.
    """
    if argument is None:
        return None
    applied = tuple(getattr(sampler, "transforms", ()))
    wanted = None if argument.is_identity else argument
    if any(t != wanted for t in applied):
        have = sorted({"identity" if t is None else t.describe() for t in applied})
        raise FitError(
            f"FastTokenizerCallback(transform={argument.describe()!r}) but the datamodule's sampler applies "
            f"{', '.join(map(repr, have))}; pass the same transform to the datamodule "
            "(MixtureDataModule(transform=...)) so the policy sees the actions the tokenizer is fit on"
        )
    return argument


def callback_fit_settings(
    settings: FitSettings, source: Any, chunk_size: int, layout: str | None = None
) -> FitSettings:
    """The callback's settings completed from the datamodule: its convention (else the datamodule's)
    applied, then the sizes, grouping, stats source, transform and layout of the datamodule's heads and
    sampler (``layout``: the callback's argument, None: the convention's, else the datamodule's).

    Raises:
        FitError: An explicit grouping, stats source, transform or layout differs from the datamodule's, or
            a bad convention override.
    """
    heads = source.norm_heads
    grouping = settings.head_grouping
    named = settings.convention if settings.convention is not None else getattr(source, "convention", None)
    if named is not None:
        # The heads are built: the convention takes their grouping unless the callback names another one.
        built = getattr(heads, "grouping", DEFAULT_HEAD_GROUPING)
        settings = dataclasses.replace(settings, head_grouping=grouping or built).with_convention(named)
        layout = layout or settings.layout
    return dataclasses.replace(
        settings,
        chunk_size=chunk_size,
        max_action_dim=int(heads.max_action_dim),
        head_grouping=head_grouping_of(grouping, heads),
        stats_source=stats_source_of(settings, heads, source.chunk_sampler),
        transform=transform_of(settings.transform, source.chunk_sampler),
        layout=layout_of(layout, source),
    )


def check_transform_argument(transform: Any, stats_source: str | None) -> None:
    """The datamodule's ``transform`` is an `ActionTransform` (or None) and not paired with stored stats.

    Raises:
        ValueError: Naming the argument and the fix.
    """
    from fasttok_plugin.transforms import ActionTransform

    if transform is not None and not isinstance(transform, ActionTransform):
        raise ValueError(
            f"MixtureDataModule: transform must be an ActionTransform or None, got {transform!r}"
        )
    if transform is not None and not transform.is_identity and stats_source == "stored":
        raise ValueError(_STORED_WITH_TRANSFORM)


_STORED_WITH_TRANSFORM = (
    "MixtureDataModule: stats_source='stored' with transformed actions: no stats.json holds the stats of "
    "transformed actions (selected columns, relative dims); drop stats_source or pass 'data'"
)


def data_source_for(argument: str | None, transforms: Any) -> str:
    """The datamodule's stats source: ``argument``, else ``"data"`` when some entry is transformed.

    Raises:
        FitError: ``"stored"`` while the mixture transforms some entry's actions.
    """
    transformed = any(t is not None and not t.is_identity for t in transforms)
    if transformed and argument == "stored":
        raise FitError(_STORED_WITH_TRANSFORM + " (the mixture's transform keys)")
    return argument or ("data" if transformed else "stored")


def layout_of(argument: str | None, source: object) -> str:
    """The callback's layout: its argument, else the datamodule's (``layout`` attribute, else padded).

    Raises:
        FitError: ``argument`` differs from the layout the datamodule serves its batches in.
    """
    built = str(getattr(source, "layout", "padded"))
    layout = argument or built
    if layout != built:
        raise FitError(
            f"FastTokenizerCallback(layout={layout!r}) but the datamodule serves {built!r} chunks; pass "
            f'layout={layout!r} to the datamodule (or set "layout" in the mixture file) so the policy '
            "tokenizes chunks of the widths the tokenizer is fit on"
        )
    return layout
