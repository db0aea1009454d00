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

__all__ = ["check_arguments", "fit_settings_for", "head_grouping_of", "normalize_for", "stats_source_of"]


def fit_settings_for(settings: FitSettings, source: Any, chunk_size: int) -> FitSettings:
    """The callback's settings for ``source``: its convention (else the datamodule's) applied, then the
    chunk size, width, grouping and stats source of the datamodule's heads (an explicit value must match).

    Raises:
        FitError: A grouping or stats source that differs from the heads', or a bad convention override.
    """
    heads = source.norm_heads
    grouping = settings.head_grouping
    named = settings.convention if settings.convention is not None else getattr(source, "convention", None)
    if named is not None:
        # The heads are built: the convention takes their grouping unless the callback names another one.
        built = getattr(heads, "grouping", DEFAULT_HEAD_GROUPING)
        settings = dataclasses.replace(settings, head_grouping=grouping or built).with_convention(named)
    return dataclasses.replace(
        settings,
        chunk_size=chunk_size,
        max_action_dim=int(heads.max_action_dim),
        head_grouping=head_grouping_of(grouping, heads),
        stats_source=stats_source_of(settings, heads),
    )


def normalize_for(settings: FitSettings, heads: Any) -> Normalize:
    """The `Normalize` the tokenizer was fit with (the settings' convention, else mode, zero range, eps)."""
    from fasttok_plugin.conventions import convention_from_dict
    from fasttok_plugin.normalize import Normalize

    if settings.convention is not None:
        return Normalize.for_convention(heads, convention_from_dict(settings.convention))
    return Normalize(heads, mode=settings.normalization, zero_range=settings.zero_range, eps=settings.eps)


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


def stats_source_of(settings: FitSettings, heads: object) -> str:
    """The callback's stats source, which must be that of the datamodule's heads (it never recomputes them).

    Raises:
        FitError: The settings' source (``"data"`` by default for the quantile modes) differs from the
            heads'; names the datamodule argument that fixes it.
    """
    built = str(getattr(heads, "stats_source", "stored"))
    errors = getattr(heads, "errors", None)
    if settings.source != built and not (callable(errors) and errors()):  # the preflight lists those first
        raise FitError(
            f"FastTokenizerCallback(normalization={settings.normalization!r}) needs stats_source="
            f"{settings.source!r} but the datamodule's norm heads hold {built!r} stats; pass "
            f"stats_source={settings.source!r} to the datamodule (MixtureDataModule(stats_source=...)) so "
            "the policy normalizes with the stats the tokenizer is fit on"
        )
    return built
