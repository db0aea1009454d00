"""Plugins: built-ins registered by name like third-party ones, options, crash isolation, API reuse."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

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
    "unknown_keys",
    "datasets",
    "stats",
    "require_non_empty",
    "duplicate_fallbacks",
    "fallback_heads",
    "action_dims",
    "episode_lengths",
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
    def failing(resolved: object, max_action_dim: int) -> None:
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
