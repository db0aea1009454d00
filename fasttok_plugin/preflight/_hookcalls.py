"""Calling a hook through pluggy so each plugin's result is attributed and a crash stays with its plugin.

One call of ``pm.hook.<name>`` runs as pluggy runs it (``tryfirst``/``trylast``, last registered first,
``firstresult``), with every wrapper (``wrapper=True`` or old-style ``hookwrapper=True``) around all the
other plugins. Inside that call each non-wrapper plugin stands in as one temporary implementation
(:meth:`pluggy.HookCaller.call_extra`) that calls the plugin on its own through
:meth:`pluggy.PluginManager.subset_hook_caller`. So the caller knows which plugin produced which result
and which one raised, while wrappers see one result per plugin, in pluggy's call order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pluggy

__all__ = ["HookRun", "call_hook", "mixed_plugins"]

Collect = Callable[[str, pluggy.HookCaller], object]
"""``collect(plugin_name, caller)``: call one plugin's own hook caller, turn what it returns into a result."""


@dataclass(frozen=True, slots=True)
class HookRun:
    """What one hook call produced.

    Attributes:
        results: One result per plugin, in pluggy's call order, as the wrappers returned them.
        wrappers: Names of the plugins that wrap the hook, in registration order.
        error: The exception a wrapper raised (``results`` are then the plugins' own, unwrapped).
        culprit: Name of the wrapper plugin that raised, when it could be told apart.
    """

    results: list[object]
    wrappers: tuple[str, ...] = ()
    error: Exception | None = None
    culprit: str | None = None


def call_hook(
    pm: pluggy.PluginManager, hook_name: str, kwargs: Mapping[str, Any], collect: Collect
) -> HookRun:
    """Call ``hook_name`` once through pluggy, each non-wrapper plugin on its own inside the wrappers.

    Args:
        pm: The plugin manager.
        hook_name: The hook to call.
        kwargs: The hook's arguments (what the wrappers receive).
        collect: Called once per non-wrapper plugin with its name and its own hook caller; its return value
            is that plugin's result. An exception it raises propagates (the wrappers see it first).

    Returns:
        The results, and the wrapper's exception if one raised.
    """
    hook: pluggy.HookCaller = getattr(pm.hook, hook_name)
    impls = hook.get_hookimpls()
    plugins = _plugins(impls, wrappers=False)
    wrappers = tuple(name for name, _ in _plugins(impls, wrappers=True))
    implementers = [impl.plugin for impl in impls]
    raised: list[BaseException] = []
    runners = [
        _runner(pm, hook_name, name, [p for p in implementers if p is not plugin], collect, raised)
        for name, plugin in plugins
    ]
    outer = pm.subset_hook_caller(hook_name, remove_plugins=[plugin for _, plugin in plugins])
    try:
        value = outer.call_extra(runners, kwargs)
    except Exception as exc:
        if not wrappers or any(exc is error for error in raised):
            raise
        # Temporary implementations are inserted in order and called in reverse, like registered ones.
        own = [result for result in (run() for run in reversed(runners)) if result is not None]
        return HookRun(own, wrappers, exc, _culprit(exc, impls))
    firstresult = bool(hook.spec and hook.spec.opts.get("firstresult"))
    results = ([] if value is None else [value]) if firstresult else list(value)
    return HookRun(results, wrappers)


def mixed_plugins(pm: pluggy.PluginManager, hook_name: str) -> list[str]:
    """Plugins that implement ``hook_name`` both as a wrapper and as a plain implementation.

    Such a plugin cannot be both around the others and one of them, so the manager refuses it.
    """
    hook: pluggy.HookCaller | None = getattr(pm.hook, hook_name, None)
    if hook is None:
        return []
    impls = hook.get_hookimpls()
    wrapping = {name for name, _ in _plugins(impls, wrappers=True)}
    return [name for name, _ in _plugins(impls, wrappers=False) if name in wrapping]


def _is_wrapper(impl: pluggy.HookImpl) -> bool:
    return bool(impl.wrapper or impl.hookwrapper)


def _plugins(impls: Sequence[pluggy.HookImpl], *, wrappers: bool) -> list[tuple[str, object]]:
    """``(name, plugin)`` of the wrapper (or non-wrapper) plugins, once each, in pluggy's list order."""
    seen: list[tuple[str, object]] = []
    for impl in impls:
        if _is_wrapper(impl) is wrappers and all(impl.plugin is not p for _, p in seen):
            seen.append((impl.plugin_name, impl.plugin))
    return seen


def _runner(
    pm: pluggy.PluginManager,
    hook_name: str,
    name: str,
    others: list[object],
    collect: Collect,
    raised: list[BaseException],
) -> Callable[[], object]:
    """A temporary implementation that calls one plugin through its own subset hook caller, once."""
    caller = pm.subset_hook_caller(hook_name, remove_plugins=others)
    done: list[object] = []

    def run() -> object:  # no parameters: pluggy passes none, the plugin gets the caller's own kwargs
        if not done:
            try:
                done.append(collect(name, caller))
            except BaseException as exc:
                raised.append(exc)
                raise
        return done[0]

    return run


def _culprit(exc: BaseException, impls: Sequence[pluggy.HookImpl]) -> str | None:
    """The wrapper whose code raised ``exc``: the deepest traceback frame that runs a wrapper."""
    codes: dict[object, str] = {}
    for impl in impls:
        function = getattr(impl.function, "__func__", impl.function)
        code = getattr(function, "__code__", None)
        if _is_wrapper(impl) and code is not None:
            codes[code] = impl.plugin_name
    culprit = None
    tb = exc.__traceback__
    while tb is not None:
        culprit = codes.get(tb.tb_frame.f_code, culprit)
        tb = tb.tb_next
    return culprit
