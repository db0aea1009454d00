"""Hooks go through pluggy's own call loop: order, wrappers, ``firstresult``, attribution of results."""

from __future__ import annotations

from collections.abc import Iterator

import pluggy
import pytest

from fasttok_plugin.preflight._hookcalls import call_hook, mixed_plugins

spec = pluggy.HookspecMarker("demo")
impl = pluggy.HookimplMarker("demo")


class Specs:
    @spec
    def demo_values(self, x: int) -> int:
        """Every plugin returns a value."""

    @spec(firstresult=True)
    def demo_first(self, x: int) -> int | None:
        """The first non-None value wins."""


class Plugin:
    def __init__(self, value: int | None, calls: list[str]) -> None:
        self.value = value
        self.calls = calls

    @impl
    def demo_values(self, x: int) -> int | None:
        self.calls.append(f"values {self.value}")
        return None if self.value is None else self.value * x

    @impl
    def demo_first(self, x: int) -> int | None:
        self.calls.append(f"first {self.value}")
        return None if self.value is None else self.value * x


class Doubler:
    """A wrapper that doubles every result and records what it saw."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    @impl(wrapper=True)
    def demo_values(self, x: int) -> Iterator[None]:
        results = yield
        self.seen = list(results)
        return [2 * r for r in results]


def manager(*plugins: object) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("demo")
    pm.add_hookspecs(Specs)
    for i, plugin in enumerate(plugins):
        pm.register(plugin, name=f"p{i}")
    return pm


def collect_by_name(name: str, caller: pluggy.HookCaller) -> object:
    results = caller(x=10)
    return (name, results)


def test_results_are_attributed_and_in_pluggys_order() -> None:
    calls: list[str] = []
    pm = manager(Plugin(1, calls), Plugin(2, calls), Plugin(3, calls))
    run = call_hook(pm, "demo_values", {"x": 10}, collect_by_name)
    assert run.results == [("p2", [30]), ("p1", [20]), ("p0", [10])]  # last registered first
    assert calls == ["values 3", "values 2", "values 1"]
    assert run.error is None
    assert run.wrappers == ()


def test_a_wrapper_wraps_all_plugins_once() -> None:
    calls: list[str] = []
    doubler = Doubler()
    pm = manager(Plugin(1, calls), doubler, Plugin(2, calls))
    run = call_hook(pm, "demo_values", {"x": 10}, lambda name, caller: sum(caller(x=10)))
    assert doubler.seen == [20, 10]
    assert run.results == [40, 20]
    assert run.wrappers == ("p1",)


def test_firstresult_stops_at_the_first_value() -> None:
    calls: list[str] = []
    pm = manager(Plugin(1, calls), Plugin(2, calls), Plugin(None, calls))
    run = call_hook(pm, "demo_first", {"x": 10}, lambda name, caller: caller(x=10))
    assert run.results == [20]
    assert calls == ["first None", "first 2"]  # plugin p0 is never called


def test_an_exception_from_collect_propagates_through_the_wrappers() -> None:
    pm = manager(Plugin(1, []), Doubler())

    def collect(name: str, caller: pluggy.HookCaller) -> object:
        raise LookupError(f"{name} refused")

    with pytest.raises(LookupError, match="p0 refused"):
        call_hook(pm, "demo_values", {"x": 10}, collect)


def test_a_raising_wrapper_is_named_and_the_plugins_results_are_returned() -> None:
    class Breaks:
        @impl(wrapper=True)
        def demo_values(self, x: int) -> Iterator[None]:
            yield
            raise RuntimeError("teardown failed")

    calls: list[str] = []
    pm = manager(Plugin(1, calls), Breaks(), Doubler(), Plugin(2, calls))
    run = call_hook(pm, "demo_values", {"x": 10}, lambda name, caller: caller(x=10)[0])
    assert isinstance(run.error, RuntimeError)
    assert run.culprit == "p1"
    assert run.results == [20, 10]  # the plugins' own results, each computed once
    assert calls == ["values 2", "values 1"]


def test_plugins_that_both_wrap_and_implement_are_found() -> None:
    class Both:
        @impl
        def demo_values(self, x: int) -> int:
            return x

        @impl(wrapper=True, specname="demo_values")
        def wrap(self, x: int) -> Iterator[None]:
            return (yield)

    pm = manager(Plugin(1, []), Both(), Doubler())
    assert mixed_plugins(pm, "demo_values") == ["p1"]
    assert mixed_plugins(pm, "demo_first") == []
