"""The preflight plugin API: every hook a plugin may implement (pluggy project ``fasttok``).

A plugin is a module or object with functions marked ``@hookimpl`` and named like the specs below.
Register it through the entry-point group ``fasttok.preflight`` or with ``fasttok-preflight -p module``;
``-p no:NAME`` disables a plugin (built-in checks included) by name. Every hook is optional.

Call order is pluggy's: ``@hookimpl(tryfirst=True)`` first, ``trylast=True`` last, otherwise the last
registered plugin first. The built-in checks are registered first, then entry-point plugins, then ``-p``
plugins in command-line order, so third-party checks run before the built-ins.

Wrappers (``@hookimpl(wrapper=True)``, or old-style ``hookwrapper=True``) run around all the other
implementations of a hook: the code before ``yield`` runs before any of them, ``yield`` returns their
results, one per plugin in call order, and the wrapper returns that list (changed or not)::

    @hookimpl(wrapper=True)
    def fasttok_preflight_checks(context):
        results = yield  # [[Finding, ...], ...]: one list per check plugin, built-ins included
        return [[f for f in findings if f.code != "FT104"] for findings in results]

Inside the wrappers each plugin is called on its own, so results come already collected: a list of
``Finding`` per check plugin (with ``check`` set to the plugin's name; what a wrapper adds is attributed
to the wrapper), a list of ``Rule`` per rules plugin, and each plugin's own ``OptionRegistry`` for
options. A plugin that raises becomes an FT900 finding and cannot hide the others; so does a wrapper
that raises (the checks' own findings are kept). A plugin cannot both wrap a hook and implement it.
Declarations are merged in registration order (the first plugin to declare a rule code keeps it; two
plugins declaring one option name is a usage error); findings are sorted for output, so the call order
never changes a report.
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
