"""Preflight: cheap metadata checks that stop a bad mixture before any compute is spent.

Public API: :func:`run_preflight`, the value objects (:class:`Finding`, :class:`Severity`,
:class:`PreflightResult`, :class:`PreflightError`, :class:`Rule`) and, for plugin authors, the
``hookimpl`` marker and :class:`PreflightContext`. The hooks themselves, and the order pluggy calls
them in, are documented in :mod:`fasttok_plugin.preflight.hookspecs`.
"""

from __future__ import annotations

from fasttok_plugin.preflight._run import run_preflight
from fasttok_plugin.preflight.context import OptionRegistry, PreflightContext
from fasttok_plugin.preflight.findings import (
    Finding,
    PreflightError,
    PreflightResult,
    PreflightUsageError,
    Rule,
    Severity,
)
from fasttok_plugin.preflight.hookspecs import ENTRY_POINT_GROUP, PROJECT_NAME, hookimpl, hookspec
from fasttok_plugin.preflight.manager import PluginSpec, PreflightPlugins

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "Finding",
    "OptionRegistry",
    "PluginSpec",
    "PreflightContext",
    "PreflightError",
    "PreflightPlugins",
    "PreflightResult",
    "PreflightUsageError",
    "Rule",
    "Severity",
    "hookimpl",
    "hookspec",
    "run_preflight",
]
