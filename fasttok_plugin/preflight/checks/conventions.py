"""The conventions check (issue #12 item 5): a convention the mixture cannot serve fails before any compute.

The convention is the ``convention`` option (``fasttok-preflight --convention``, the fit's setting) or the
mixture's ``convention`` key. Metadata only, like every check: it reads the norm heads and the entries'
metadata, never frames. A head wider than ``max_action_dim`` is FT201 under every layout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from fasttok_plugin.conventions import Convention, convention_from_dict
from fasttok_plugin.errors import ConventionError
from fasttok_plugin.preflight.checks._base import ERROR, _Check
from fasttok_plugin.preflight.context import OptionRegistry, PreflightContext
from fasttok_plugin.preflight.findings import Finding, Rule
from fasttok_plugin.preflight.hookspecs import hookimpl

__all__ = ["Conventions", "parse_convention_option"]


def parse_convention_option(value: Any) -> Convention:
    """A name, a JSON object string, a mapping or a `Convention`.

    Raises:
        ValueError: Not a convention (the option machinery reports it as a usage error).
    """
    if isinstance(value, str) and value.strip().startswith("{"):
        value = json.loads(value)
    try:
        return convention_from_dict(value.strip() if isinstance(value, str) else value)
    except ConventionError as exc:
        raise ValueError(str(exc)) from None


class Conventions(_Check):
    """Stats from the data the entries cannot give, and native-width heads that mix widths."""

    name = "conventions"
    rules = (
        Rule(
            "FT611",
            "convention-needs-data-stats",
            ERROR,
            "The convention normalizes with stats computed from the frames (quantiles, stats_source data) "
            "but data files of an entry's selected episodes are missing: the stats pass cannot read them.",
            "Restore the files, exclude those episodes or the entry, or use a convention with stored stats.",
        ),
        Rule(
            "FT612",
            "native-head-mixes-widths",
            ERROR,
            "Under the native layout a head pools entries of different native action dims: each chunk "
            "would be normalized with stats padded with the other members' zeros.",
            "Use head_grouping robot_control or dataset, or the padded layout.",
        ),
    )

    @hookimpl
    def fasttok_add_options(self, options: OptionRegistry) -> None:
        options.add(
            "convention",
            type=parse_convention_option,
            default=None,
            help="normalization convention to check against (default: the mixture's)",
            metavar="NAME|JSON",
        )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        convention = context.options.get("convention") or getattr(context.config, "convention", None)
        if convention is None:
            return
        yield from self._data_stats(context, convention)
        yield from self._native_widths(context, convention)

    def _data_stats(self, context: PreflightContext, convention: Convention) -> Iterator[Finding]:
        if convention.source != "data":
            return
        for resolved in context.entries:
            meta = resolved.meta
            if meta is None:
                continue  # unreadable metadata is FT3xx's
            files = sorted({ep.data_file for ep in meta.episodes})
            missing = [f for f in files if not os.path.isfile(f)]  # a stat each, no frame is read
            if not missing:
                continue
            shown = ", ".join(str(f) for f in missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            )
            yield context.finding(
                "FT611",
                ERROR,
                f"convention {convention.name!r} normalizes with {convention.normalization} stats computed "
                f"from the frames, but {len(missing)} data file(s) of the selected episodes are missing: "
                f"{shown}",
                entry=resolved.index,
                hint="restore the files, or exclude their episodes (excluded_episodes) or the entry",
            )

    def _native_widths(self, context: PreflightContext, convention: Convention) -> Iterator[Finding]:
        heads = context.norm_heads
        if convention.layout != "native" or heads is None:
            return
        dims = heads.entry_dims
        for head, members in enumerate(heads.head_members):
            widths = {int(dims[i]) for i in members if i < len(dims) and dims[i] is not None}
            if len(widths) < 2:
                continue
            listing = ", ".join(f"{context.entries[i].name}: {dims[i]}" for i in members)
            yield context.finding(
                "FT612",
                ERROR,
                f"convention {convention.name!r} keeps chunks at their native width, but head "
                f"{heads.keys[head]!r} pools entries of different widths ({listing})",
                pointer=context.config.prefix + "/convention"
                if context.has_pointer(context.config.prefix + "/convention")
                else "",
                hint='add "head_grouping": "robot_control" (or "dataset") to the convention, or '
                '"layout": "padded"',
            )
