"""The callback's own (non-fit) arguments, checked in ``__init__`` so a bad value fails before any work."""

from __future__ import annotations

import dataclasses
import os

from fasttok_plugin.defaults import DEFAULT_HEAD_GROUPING, resolve_setting
from fasttok_plugin.errors import FitError
from fasttok_plugin.fit.settings import FitSettings
from fasttok_plugin.lightning.protocol import TokenizerSource, chunk_size_of

__all__ = ["check_arguments", "head_grouping_of", "layout_of", "settings_for_source", "stats_source_of"]


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


def settings_for_source(settings: FitSettings, source: TokenizerSource, layout: str | None) -> FitSettings:
    """The callback's settings for ``source``: its chunk size, width, grouping, stats source and layout.

    Raises:
        FitError: An explicit grouping, stats source or layout differs from the datamodule's.
    """
    return dataclasses.replace(
        settings,
        chunk_size=chunk_size_of(source),
        max_action_dim=int(source.norm_heads.max_action_dim),
        head_grouping=head_grouping_of(settings.head_grouping, source.norm_heads),
        stats_source=stats_source_of(settings, source.norm_heads),
        layout=layout_of(layout, source),
    )
