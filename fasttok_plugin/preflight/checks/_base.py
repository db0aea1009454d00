"""What every built-in check shares: the plugin base class and how a core error is quoted in a finding."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import ClassVar

from fasttok_plugin.preflight.context import PreflightContext
from fasttok_plugin.preflight.findings import Finding, Rule, Severity
from fasttok_plugin.preflight.hookspecs import hookimpl

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO


class _Check:
    """Base of the built-in checks: a name, the rules it reports, and the two hooks."""

    name: ClassVar[str]
    rules: ClassVar[tuple[Rule, ...]]

    @hookimpl
    def fasttok_preflight_rules(self) -> Iterable[Rule]:
        return self.rules

    @hookimpl
    def fasttok_preflight_checks(self, context: PreflightContext) -> Iterable[Finding]:
        return self.check(context)

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<builtin check {self.name}>"


def _first_line(error: BaseException) -> str:
    """The error without the entry name and fix (findings carry those separately)."""
    detail = getattr(error, "detail", None)
    if isinstance(detail, str) and detail.strip():
        path = getattr(error, "path", None)
        return f"{detail.strip()} [{path}]" if path is not None else detail.strip()
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
