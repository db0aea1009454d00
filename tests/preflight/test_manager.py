"""Plugins: built-ins registered by name like third-party ones, options, crash isolation, API reuse."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

import fasttok_plugin.heads
import fasttok_plugin.resolve
from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.preflight import (
    Finding,
    OptionRegistry,
    PreflightContext,
    PreflightPlugins,
    PreflightUsageError,
    Rule,
    Severity,
    hookimpl,
    run_preflight,
)
from fasttok_plugin.preflight.checks import BUILTIN_CHECKS
from fasttok_plugin.resolve import resolve_mixture

Build = Callable[..., Path]
Spec = Callable[..., object]

BUILTIN_NAMES = {
    "weights",
    "timestamps",
    "budgets",
    "unknown_keys",
    "datasets",
    "stats",
    "transforms",
    "require_non_empty",
    "duplicate_fallbacks",
    "fallback_heads",
    "action_dims",
    "episode_lengths",
    "conventions",
}


class HouseRule:
    """A third-party plugin as an object: every entry name must start with ``test/``."""

    name = "house_rule"

    def __init__(self, prefix: str = "test/") -> None:
        self.prefix = prefix

    @hookimpl
    def fasttok_add_options(self, options: OptionRegistry) -> None:
        options.add("house_level", type=str, default="warning", help="severity of HR001")

    @hookimpl
    def fasttok_preflight_rules(self) -> list[Rule]:
        return [Rule("HR001", "house-prefix", "warning", "Entry names must carry the house prefix.")]

    @hookimpl
    def fasttok_preflight_checks(self, context: PreflightContext) -> Iterator[Finding]:
        for entry in context.entries:
            if not entry.name.startswith(self.prefix):
                yield context.finding(
                    "HR001", context.options["house_level"], f"{entry.name} lacks {self.prefix}", entry=entry
                )


@pytest.fixture
def two_entries(build_mixture: Build, ds: Spec) -> Path:
    return build_mixture(ds("a"), ds("b", robot_type="other"))


def test_builtin_checks_are_plugins_registered_by_name() -> None:
    plugins = PreflightPlugins(entry_points=False)
    assert set(plugins.names) == BUILTIN_NAMES
    assert set(plugins.check_names()) == BUILTIN_NAMES
    assert {cls.name for cls in BUILTIN_CHECKS} == BUILTIN_NAMES


def test_no_name_disables_a_builtin() -> None:
    plugins = PreflightPlugins(["no:stats", "no:weights"], entry_points=False)
    assert set(plugins.names) == BUILTIN_NAMES - {"stats", "weights"}


def test_every_builtin_code_is_declared_as_a_rule() -> None:
    rules = PreflightPlugins(entry_points=False).rules()
    expected = {"FT001", "FT002", "FT003", "FT101", "FT102", "FT103", "FT104", "FT105", "FT201", "FT202"}
    expected |= {"FT203", "FT204", "FT301", "FT302", "FT303", "FT304", "FT401", "FT402", "FT900", "FT901"}
    expected |= {"FT205", "FT501", "FT503", "FT504"}  # issue #10: min > max, timestamps, budgets
    expected |= {"FT601", "FT602", "FT603", "FT604", "FT605"}  # issue #11: transforms, stats source
    expected |= {"FT611", "FT612"}  # issue #12: conventions
    assert set(rules) == expected
    assert rules["FT103"].severity is Severity.WARNING
    assert all(rule.summary and rule.fix for rule in rules.values())


def test_plugin_object_with_its_own_option_and_rule(two_entries: Path) -> None:
    result = run_preflight(
        two_entries, plugins=[HouseRule("org/")], options={"house-level": "error"}, entry_points=False
    )
    found = [f for f in result.findings if f.code == "HR001"]
    assert [(f.entry_name, f.severity, f.check) for f in found] == [
        ("test/a", Severity.ERROR, "house_rule"),
        ("test/b", Severity.ERROR, "house_rule"),
    ]
    assert result.rules["HR001"].name == "house-prefix"
    assert not result.ok


def test_plugin_disabled_by_name_does_not_run(two_entries: Path) -> None:
    result = run_preflight(two_entries, plugins=[HouseRule("org/"), "no:house_rule"], entry_points=False)
    assert "HR001" not in {f.code for f in result.findings}
    assert "house_rule" not in result.checks


def test_plugin_that_raises_is_reported_and_the_others_still_run(build_mixture: Build, ds: Spec) -> None:
    class Broken:
        name = "broken"

        @hookimpl
        def fasttok_preflight_checks(self, context: PreflightContext) -> Iterator[Finding]:
            yield context.finding("BR001", "info", "before the crash")
            raise KeyError("boom")

    path = build_mixture(ds("wide", action_dim=40))
    result = run_preflight(path, plugins=[Broken()], entry_points=False)
    codes = [f.code for f in result.findings]
    assert "BR001" in codes  # what it yielded before failing is kept
    crash = next(f for f in result.findings if f.code == "FT900")
    assert "broken" in crash.message
    assert "KeyError" in crash.message
    assert "-p no:broken" in crash.hint
    assert "FT201" in codes  # the built-ins were not affected


def test_plugin_yielding_something_else_than_findings_is_reported(two_entries: Path) -> None:
    class Sloppy:
        name = "sloppy"

        @hookimpl
        def fasttok_preflight_checks(self) -> list[object]:  # accepts no context: pluggy allows subsets
            return ["not a finding"]

    result = run_preflight(two_entries, plugins=[Sloppy()], entry_points=False)
    assert [f.code for f in result.findings] == ["FT900"]
    assert "not a Finding" in result.findings[0].message


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("chunk_size", "reserved"), ("house_level", "declared by both")],
)
def test_conflicting_option_names_are_usage_errors(name: str, fragment: str) -> None:
    class Greedy:
        @hookimpl
        def fasttok_add_options(self, options: OptionRegistry) -> None:
            options.add(name, type=int, default=1)

    plugins = PreflightPlugins([HouseRule(), Greedy()], entry_points=False)
    with pytest.raises(PreflightUsageError, match=fragment):
        plugins.options()


def test_option_values_are_converted_and_checked(two_entries: Path) -> None:
    with pytest.raises(PreflightUsageError, match="unknown option 'hous_level'"):
        run_preflight(two_entries, plugins=[HouseRule()], options={"hous_level": "x"}, entry_points=False)
    registry = OptionRegistry()
    registry.add("min_frames", type=int, default=5)
    registry.add("loud", type=bool, default=False)
    assert registry.resolve(({"min-frames": "12", "loud": "yes"}, "test")) == {"min_frames": 12, "loud": True}
    with pytest.raises(PreflightUsageError, match="not a valid int"):
        registry.resolve(({"min_frames": "many"}, "test"))
    with pytest.raises(PreflightUsageError, match="not a valid int"):
        registry.resolve(({"min_frames": True}, "test"))


def test_unknown_hook_in_a_plugin_is_a_usage_error() -> None:
    class Misspelt:
        @hookimpl
        def fasttok_preflight_check(self, context: PreflightContext) -> list[Finding]:
            return []

    with pytest.raises(PreflightUsageError, match="fasttok_preflight_check"):
        PreflightPlugins([Misspelt()], entry_points=False)


def test_missing_plugin_module_is_a_usage_error() -> None:
    with pytest.raises(PreflightUsageError, match="no_such_module_for_fasttok"):
        PreflightPlugins(["no_such_module_for_fasttok"], entry_points=False)


def test_resolved_mixture_and_norm_heads_are_reused_not_recomputed(
    two_entries: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = resolve_mixture(two_entries)
    heads = build_norm_heads(resolved, 16)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("computed a second time")

    monkeypatch.setattr(fasttok_plugin.resolve, "resolve_mixture", forbidden)
    monkeypatch.setattr(fasttok_plugin.heads, "build_norm_heads", forbidden)
    monkeypatch.setattr(fasttok_plugin.mixture, "load_mixture", forbidden)
    result = run_preflight(resolved, norm_heads=heads, entry_points=False)
    assert result.ok
    assert result.n_datasets == 2
    assert result.entry_names == ("test/a", "test/b")
    with pytest.raises(PreflightUsageError, match="max_action_dim"):
        run_preflight(resolved, norm_heads=heads, max_action_dim=32, entry_points=False)


def test_config_object_is_accepted(two_entries: Path) -> None:
    from fasttok_plugin.mixture import load_mixture

    result = run_preflight(load_mixture(two_entries), entry_points=False)
    assert result.ok
    assert result.mixture == two_entries


def test_heads_that_cannot_be_built_become_ft901(two_entries: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(resolved: object, max_action_dim: int, **_: object) -> None:  # grouping= since #11
        raise fasttok_plugin.heads.NormHeadsError(["something the heads could not handle"])

    monkeypatch.setattr(fasttok_plugin.heads, "build_norm_heads", failing)
    result = run_preflight(two_entries, entry_points=False)
    (finding,) = [f for f in result.findings if f.code == "FT901"]
    assert "something the heads could not handle" in finding.message
    assert not result.ok


def test_unreadable_mixture_raises_mixture_error(tmp_path: Path) -> None:
    from fasttok_plugin.mixture import MixtureError

    with pytest.raises(MixtureError) as info:
        run_preflight(tmp_path / "absent.json", entry_points=False)
    assert info.value.unreadable


# ------------------------------------------------------------------------------ pluggy's call loop, wrappers
class Sieve:
    """A third-party wrapper: sees every check plugin's findings, drops FT104 and adds a summary finding."""

    name = "sieve"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.results = 0

    @hookimpl(wrapper=True)
    def fasttok_preflight_checks(self, context: PreflightContext) -> Iterator[None]:
        results = yield
        self.results = len(results)
        self.seen = [(f.check, f.code) for findings in results for f in findings]
        kept = [[f for f in findings if f.code != "FT104"] for findings in results]
        codes = ",".join(sorted({code for _, code in self.seen}))
        return [*kept, [context.finding("SV001", "info", f"built-in checks found {codes}")]]


@pytest.fixture
def wide_and_untagged(build_mixture: Build, ds: Spec) -> Path:
    """FT201 (action_dims) on entry 0 and FT104 (fallback_heads) on entry 1."""
    return build_mixture(ds("wide", action_dim=40), ds("untagged", robot_type=None))


def test_wrapper_sees_every_builtin_finding_and_can_filter_and_add(wide_and_untagged: Path) -> None:
    sieve = Sieve()
    result = run_preflight(wide_and_untagged, plugins=[sieve], entry_points=False)
    assert sieve.results == len(BUILTIN_CHECKS)  # one result per check plugin, even when empty
    # pluggy's order: the last registered first (action_dims is registered after fallback_heads).
    assert sieve.seen == [("action_dims", "FT201"), ("fallback_heads", "FT104")]
    assert [(f.code, f.check) for f in result.findings] == [("SV001", "sieve"), ("FT201", "action_dims")]
    assert result.findings[0].message == "built-in checks found FT104,FT201"
    assert "sieve" in result.checks


def test_a_wrapper_runs_around_all_the_checks_in_pluggys_order(two_entries: Path) -> None:
    events: list[str] = []

    class Check:
        def __init__(self, name: str) -> None:
            self.name = name

        @hookimpl
        def fasttok_preflight_checks(self) -> list[Finding]:
            events.append(self.name)
            return []

    class First(Check):
        @hookimpl(tryfirst=True)
        def fasttok_preflight_checks(self) -> list[Finding]:
            return super().fasttok_preflight_checks()

    class Around:
        name = "around"

        @hookimpl(wrapper=True)
        def fasttok_preflight_checks(self) -> Iterator[None]:
            events.append("before")
            results = yield
            events.append("after")
            return results

    plugins = [Check("a"), Around(), Check("b"), First("c")]
    assert run_preflight(two_entries, plugins=plugins, entry_points=False).ok
    assert events == ["before", "c", "b", "a", "after"]


def test_old_style_hookwrapper_is_honoured_too(two_entries: Path) -> None:
    class Legacy:
        name = "legacy"

        @hookimpl(hookwrapper=True)
        def fasttok_preflight_checks(self, context: PreflightContext) -> Iterator[None]:
            outcome = yield
            outcome.force_result([*outcome.get_result(), [context.finding("LG001", "warning", "legacy")]])

    result = run_preflight(two_entries, plugins=[Legacy()], entry_points=False)
    assert [(f.code, f.check) for f in result.findings] == [("LG001", "legacy")]


def test_wrapper_that_raises_is_reported_and_the_checks_findings_are_kept(wide_and_untagged: Path) -> None:
    class Fragile:
        name = "fragile"

        @hookimpl(wrapper=True)
        def fasttok_preflight_checks(self) -> Iterator[None]:
            yield
            raise ValueError("wrapper broke")

    class Calm:
        name = "calm"

        @hookimpl(wrapper=True)
        def fasttok_preflight_checks(self) -> Iterator[None]:
            return (yield)

    result = run_preflight(wide_and_untagged, plugins=[Calm(), Fragile()], entry_points=False)
    crash = next(f for f in result.findings if f.code == "FT900")
    assert crash.check == "fragile"
    assert "ValueError: wrapper broke" in crash.message
    assert "-p no:fragile" in crash.hint
    assert {"FT201", "FT104"} <= {f.code for f in result.findings}


def test_a_plugin_cannot_be_both_a_wrapper_and_a_check() -> None:
    class Both:
        name = "both"

        @hookimpl
        def fasttok_preflight_checks(self) -> list[Finding]:
            return []

        @hookimpl(wrapper=True, specname="fasttok_preflight_checks")
        def wrap(self) -> Iterator[None]:
            return (yield)

    with pytest.raises(PreflightUsageError, match="'both' implements fasttok_preflight_checks both as a"):
        PreflightPlugins([Both()], entry_points=False)


def test_options_wrapper_sees_each_plugins_declarations() -> None:
    class Watcher:
        name = "watcher"
        declared_by: ClassVar[list[str]] = []

        @hookimpl(wrapper=True)
        def fasttok_add_options(self, options: OptionRegistry) -> Iterator[None]:
            options.add("watch_level", type=int, default=1)
            declared = yield
            Watcher.declared_by = [registry.plugin for registry in declared]
            return declared

    registry = PreflightPlugins([HouseRule(), Watcher()], entry_points=False).options()
    # The built-in conventions check declares ``convention`` (issue #12); the rest declare none.
    assert Watcher.declared_by == ["house_rule", "conventions"]
    declared = [(o.name, o.plugin) for o in registry]
    assert declared == [
        ("watch_level", "watcher"),
        ("convention", "conventions"),
        ("house_level", "house_rule"),
    ]


def test_unhashable_plugin_objects_are_a_usage_error() -> None:
    @dataclasses.dataclass
    class Unhashable:  # eq=True without frozen: __hash__ is None
        name: str = "unhashable"

        @hookimpl
        def fasttok_preflight_checks(self) -> list[Finding]:
            return []

    with pytest.raises(PreflightUsageError, match="not hashable"):
        PreflightPlugins([Unhashable()], entry_points=False)


@pytest.mark.parametrize(("name", "value"), [("max_action_dim", 0), ("chunk_size", -3), ("chunk_size", 2.5)])
def test_sizes_must_be_positive_integers(two_entries: Path, name: str, value: object) -> None:
    # The one defaulting rule: an explicit 0 is reported, not silently replaced by the mixture's or default.
    with pytest.raises(PreflightUsageError, match=f"{name} must be a positive integer, got {value!r}"):
        run_preflight(two_entries, entry_points=False, **{name: value})


def test_results_of_a_real_run_pickle(wide_and_untagged: Path) -> None:
    result = run_preflight(wide_and_untagged, plugins=[HouseRule()], entry_points=False)
    restored = pickle.loads(pickle.dumps(result))
    assert restored == result
    assert restored.rules["HR001"] == result.rules["HR001"]
    assert type(restored.rules) is type(result.rules)
