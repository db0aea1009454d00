"""The preflight plugin API: every hook a plugin may implement (pluggy project ``fasttok``).

A plugin is a module or object with functions marked ``@hookimpl`` and named like the specs below.
Register it through the entry-point group ``fasttok.preflight`` or with ``fasttok-preflight -p module``;
``-p no:NAME`` disables a plugin (built-in checks included) by name. Every hook is optional.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from fasttok_plugin.preflight.context import OptionRegistry, PreflightContext
    from fasttok_plugin.preflight.findings import Finding, Rule

PROJECT_NAME = "fasttok"
ENTRY_POINT_GROUP = "fasttok.preflight"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def fasttok_add_options(options: OptionRegistry) -> None:
    """Declare options: ``options.add(name, type=..., default=..., help=...)`` (CLI flag + pyproject key)."""


@hookspec
def fasttok_preflight_rules() -> Iterable[Rule]:
    """Return the rules (codes, severities, summaries) this plugin can report; used by SARIF and docs."""


@hookspec
def fasttok_preflight_checks(context: PreflightContext) -> Iterable[Finding] | None:
    """Yield (or return a list of) findings about ``context``; build them with ``context.finding(...)``."""
