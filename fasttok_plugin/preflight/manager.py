"""Plugin loading (built-ins, entry points, ``-p module``, ``-p no:NAME``) and running the checks."""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import pluggy

from fasttok_plugin.preflight import hookspecs
from fasttok_plugin.preflight.checks import CORE_RULES, builtin_plugins
from fasttok_plugin.preflight.context import OptionRegistry, PreflightContext
from fasttok_plugin.preflight.findings import Finding, PreflightUsageError, Rule, Severity

__all__ = ["PluginSpec", "PreflightPlugins", "split_plugin_specs"]

logger = logging.getLogger(__name__)

PluginSpec = str | object
"""A module name to import, ``"no:NAME"`` to disable a plugin, or an already imported plugin object."""


def split_plugin_specs(specs: Iterable[PluginSpec]) -> tuple[list[str | object], set[str]]:
    """Separate plugins to load from names to disable (``no:NAME``)."""
    load: list[str | object] = []
    blocked: set[str] = set()
    for spec in specs:
        if isinstance(spec, str):
            spec = spec.strip()
            if spec.startswith("no:"):
                name = spec[3:].strip()
                if not name:
                    raise PreflightUsageError("'-p no:' needs a plugin name, e.g. -p no:episode_lengths")
                blocked.add(name)
                continue
            if not spec:
                raise PreflightUsageError("empty plugin name given to -p")
        load.append(spec)
    return load, blocked


class PreflightPlugins:
    """The pluggy manager of one preflight run: built-in checks plus external plugins.

    Args:
        plugins: Module names, ``"no:NAME"`` entries or plugin objects (see :data:`PluginSpec`).
        entry_points: Load plugins from the ``fasttok.preflight`` entry-point group.

    Raises:
        PreflightUsageError: A plugin fails to import, is registered twice, or implements an unknown hook.
    """

    def __init__(self, plugins: Sequence[PluginSpec] = (), *, entry_points: bool = True) -> None:
        load, blocked = split_plugin_specs(plugins)
        self.blocked = frozenset(blocked)
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        for name in blocked:
            self.pm.set_blocked(name)
        for name, plugin in builtin_plugins():
            self._register(plugin, name, origin="built-in")
        if entry_points:
            self._load_entry_points()
        for spec in load:
            if isinstance(spec, str):
                if spec in blocked:
                    continue
                self._register(_import_plugin(spec), spec, origin="-p")
            else:
                name = getattr(spec, "name", None) or getattr(spec, "__name__", None)
                self._register(spec, name if isinstance(name, str) else None, origin="argument")
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PreflightUsageError(f"plugin {exc.plugin!r} is invalid: {exc}") from exc

    def _register(self, plugin: object, name: str | None, *, origin: str) -> None:
        if name is not None and self.pm.is_blocked(name):
            return
        if self.pm.is_registered(plugin):  # e.g. the same module via an entry point and via -p
            return
        if name is not None and self.pm.has_plugin(name):
            raise PreflightUsageError(f"a plugin named {name!r} is already registered ({origin} plugin)")
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PreflightUsageError(f"{origin} plugin {name!r} is invalid: {exc}") from exc
        except ValueError as exc:  # pluggy: same object or name registered twice
            raise PreflightUsageError(f"{origin} plugin {name!r} cannot be registered: {exc}") from exc

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        seen: set[str] = set()
        for ep in entry_points(group=hookspecs.ENTRY_POINT_GROUP):
            if ep.name in seen or self.pm.is_blocked(ep.name) or self.pm.has_plugin(ep.name):
                seen.add(ep.name)
                continue
            seen.add(ep.name)
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin is a usage problem, not a traceback
                raise PreflightUsageError(
                    f"entry-point plugin {ep.name!r} ({ep.value}) failed to load: "
                    f"{type(exc).__name__}: {exc}; disable it with -p no:{ep.name}"
                ) from exc
            self._register(plugin, ep.name, origin="entry-point")

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the registered plugins, in registration order."""
        return tuple(name for name, plugin in self.pm.list_name_plugin() if plugin is not None)

    def options(self) -> OptionRegistry:
        """Ask every plugin for its options.

        Raises:
            PreflightUsageError: Conflicting or reserved option names, or a plugin raising.
        """
        registry = OptionRegistry()
        for impl in self.pm.hook.fasttok_add_options.get_hookimpls():
            registry._plugin = impl.plugin_name
            try:
                impl.function(**_kwargs(impl, options=registry))
            except PreflightUsageError:
                raise
            except Exception as exc:
                raise PreflightUsageError(
                    f"plugin {impl.plugin_name!r} failed in fasttok_add_options: {type(exc).__name__}: {exc}"
                ) from exc
        return registry

    def rules(self) -> dict[str, Rule]:
        """Every rule the plugins declare, by code (core rules included)."""
        rules = {rule.code: rule for rule in CORE_RULES}
        for impl in self.pm.hook.fasttok_preflight_rules.get_hookimpls():
            try:
                declared = impl.function(**_kwargs(impl)) or ()
                for rule in declared:
                    if isinstance(rule, Rule):
                        rules.setdefault(rule.code, rule)
                    else:
                        logger.warning(
                            "plugin %r declared a rule that is not a Rule: %r", impl.plugin_name, rule
                        )
            except Exception as exc:  # rules are metadata: a broken declaration must not stop the checks
                logger.warning("plugin %r failed in fasttok_preflight_rules: %s", impl.plugin_name, exc)
        return rules

    def check_names(self) -> tuple[str, ...]:
        """Names of the plugins that implement checks."""
        return tuple(impl.plugin_name for impl in self.pm.hook.fasttok_preflight_checks.get_hookimpls())

    def run_checks(self, context: PreflightContext) -> list[Finding]:
        """Call every check plugin; a plugin that raises becomes an FT900 finding instead of a traceback."""
        findings: list[Finding] = []
        # Iterate implementations ourselves (registration order) so one broken plugin cannot hide the others.
        for impl in reversed(self.pm.hook.fasttok_preflight_checks.get_hookimpls()):
            name = impl.plugin_name
            try:
                produced = impl.function(**_kwargs(impl, context=context))
                for item in produced or ():
                    if not isinstance(item, Finding):
                        findings.append(
                            _crash(name, f"yielded {type(item).__name__} {item!r}, not a Finding")
                        )
                        continue
                    findings.append(dataclasses.replace(item, check=item.check or name))
            except Exception as exc:
                logger.debug("check plugin %r raised", name, exc_info=True)
                findings.append(_crash(name, f"raised {type(exc).__name__}: {exc}"))
        return findings


def _kwargs(impl: Any, **available: Any) -> dict[str, Any]:
    # pluggy lets an implementation accept any subset of the spec's arguments.
    return {name: available[name] for name in impl.argnames if name in available}


def _crash(plugin: str, what: str) -> Finding:
    return Finding(
        code="FT900",
        severity=Severity.ERROR,
        message=f"check plugin {plugin!r} {what}",
        hint=f"report it to the plugin's author; -p no:{plugin} disables the plugin",
        check=plugin,
    )


def _import_plugin(module_name: str) -> object:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise PreflightUsageError(
            f"cannot import plugin module {module_name!r}: {exc} (is it installed or on PYTHONPATH?)"
        ) from exc
    except Exception as exc:
        raise PreflightUsageError(
            f"plugin module {module_name!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
