"""Value objects of the preflight: what a check reports, and what a run returns."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fasttok_plugin.errors import PreflightError, PreflightUsageError

__all__ = [
    "Finding",
    "PreflightError",
    "PreflightResult",
    "PreflightUsageError",
    "Rule",
    "Severity",
    "code_matches",
    "validate_selectors",
]


class Severity(str, Enum):
    """How bad a finding is: errors fail the run, warnings fail it only under ``--strict``."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Sort order: errors first."""
        return _RANK[self]


_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem (or note) about a mixture, located as precisely as the check knows.

    Attributes:
        code: Stable identifier (``FT101``; third-party plugins use their own prefix).
        severity: error, warning or info.
        message: One line a person can act on.
        entry_index: Index of the dataset entry in the mixture, or None for mixture-wide findings.
        entry_name: The entry's name (``repo_id``, ``#i`` suffixed when repeated).
        pointer: JSON pointer into the mixture file (``/datasets/3/robot_type``).
        hint: The fix.
        line: 1-based line in ``file`` where the pointer starts, when known.
        file: The file the line refers to (the mixture, or a ``$ref``-included file).
        check: Name of the plugin that produced the finding (filled in by the manager).
    """

    code: str
    severity: Severity
    message: str
    entry_index: int | None = None
    entry_name: str | None = None
    pointer: str = ""
    hint: str = ""
    line: int | None = None
    file: Path | None = None
    check: str = ""

    def __post_init__(self) -> None:
        # Plugins may pass the severity as a plain string; normalise so formats can rely on the enum.
        if not isinstance(self.severity, Severity):
            object.__setattr__(self, "severity", Severity(self.severity))

    @property
    def entry(self) -> tuple[int, str] | None:
        """``(index, name)`` of the dataset entry, or None for mixture-wide findings."""
        if self.entry_index is None:
            return None
        return (self.entry_index, self.entry_name or f"#{self.entry_index}")

    def location(self) -> str:
        """``file:line`` (or ``file``) for messages; empty when unknown."""
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line else str(self.file)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (used by the json format)."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "entry": None
            if self.entry_index is None
            else {"index": self.entry_index, "name": self.entry_name},
            "pointer": self.pointer,
            "hint": self.hint,
            "file": None if self.file is None else str(self.file),
            "line": self.line,
            "check": self.check,
        }

    def __str__(self) -> str:
        where = self.location()
        entry = f" [{self.entry_index}] {self.entry_name}:" if self.entry_index is not None else ""
        hint = f" (fix: {self.hint})" if self.hint else ""
        return f"{where + ': ' if where else ''}{self.severity.value} {self.code}{entry} {self.message}{hint}"


@dataclass(frozen=True, slots=True)
class Rule:
    """What a code means: declared by plugins so SARIF, docs and users can describe it.

    Attributes:
        code: The finding code (``FT101``).
        name: Short kebab-case name (``require-non-empty-robot-type``).
        severity: Default severity of findings with this code.
        summary: One sentence: what the rule detects.
        fix: How to fix it in general (findings carry a specific hint).
    """

    code: str
    name: str
    severity: Severity
    summary: str
    fix: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.severity, Severity):
            object.__setattr__(self, "severity", Severity(self.severity))


@dataclass(frozen=True, slots=True)
class PreflightResult:
    """Everything one preflight run found, already filtered by ``select``/``ignore``.

    Attributes:
        findings: Sorted by entry (mixture-wide first), severity, code.
        mixture: Path of the mixture file, when it came from a file.
        checks: Names of the check plugins that ran.
        rules: Every rule declared by the plugins that ran, by code (read-only).
        strict: Whether warnings were promoted to errors.
        n_datasets: Number of dataset entries checked.
        options: The option values the checks saw (read-only).
        entry_names: Name of every dataset entry, in mixture order (empty when the file did not parse).
    """

    findings: tuple[Finding, ...]
    mixture: Path | None = None
    checks: tuple[str, ...] = ()
    rules: Mapping[str, Rule] = field(default_factory=dict)
    strict: bool = False
    n_datasets: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)
    entry_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Read-only views of private copies: a frozen result cannot change under its reader.
        object.__setattr__(self, "rules", MappingProxyType(dict(self.rules)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def __reduce__(self) -> tuple[Any, ...]:
        # Mapping proxies do not pickle; rebuild from plain dicts (results cross DDP ranks and workers).
        return (
            type(self),
            (
                self.findings,
                self.mixture,
                self.checks,
                dict(self.rules),
                self.strict,
                self.n_datasets,
                dict(self.options),
                self.entry_names,
            ),
        )

    @property
    def errors(self) -> tuple[Finding, ...]:
        """Findings with severity error."""
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """Findings with severity warning."""
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def infos(self) -> tuple[Finding, ...]:
        """Findings with severity info."""
        return tuple(f for f in self.findings if f.severity is Severity.INFO)

    @property
    def ok(self) -> bool:
        """True when nothing fails the run (``--strict`` already turned warnings into errors)."""
        return not self.errors

    @property
    def exit_code(self) -> int:
        """0 when ok, 1 when there are errors (the CLI's convention)."""
        return 0 if self.ok else 1

    def counts(self) -> dict[str, int]:
        """``{"error": n, "warning": n, "info": n}``."""
        out = {s.value: 0 for s in Severity}
        for f in self.findings:
            out[f.severity.value] += 1
        return out

    def summary(self) -> str:
        """One line such as ``2 errors, 1 warning, 0 infos in 12 datasets``."""
        c = self.counts()
        parts = [_plural(c["error"], "error"), _plural(c["warning"], "warning"), _plural(c["info"], "info")]
        return f"{', '.join(parts)} in {_plural(self.n_datasets, 'dataset')}"

    def raise_for_errors(self) -> None:
        """Raise :class:`PreflightError` listing every finding when there are errors."""
        if not self.ok:
            raise PreflightError(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "mixture": None if self.mixture is None else str(self.mixture),
            "ok": self.ok,
            "strict": self.strict,
            "datasets": self.n_datasets,
            "summary": self.counts(),
            "checks": list(self.checks),
            "findings": [f.to_dict() for f in self.findings],
        }


_SELECTOR = re.compile(r"^(ALL|[A-Z]+[0-9]*)$")


def validate_selectors(selectors: Iterable[str], *, what: str = "selector") -> tuple[str, ...]:
    """Split comma-separated selectors and check their syntax (``FT``, ``FT1``, ``FT101``, ``ALL``).

    Raises:
        PreflightUsageError: For a selector that cannot match any code.
    """
    out: list[str] = []
    for item in selectors:
        for part in str(item).split(","):
            part = part.strip().upper()
            if not part:
                continue
            if not _SELECTOR.match(part):
                raise PreflightUsageError(
                    f"invalid {what} {part!r}: use a code (FT101), a prefix (FT1, FT) or ALL"
                )
            out.append(part)
    return tuple(out)


def code_matches(code: str, select: Sequence[str], ignore: Sequence[str]) -> bool:
    """Whether a code survives ``--select``/``--ignore`` (the most specific matching prefix wins, as in ruff).

    An empty ``select`` selects everything; on equal specificity ``ignore`` wins.
    """
    code = code.upper()

    def best(selectors: Sequence[str]) -> int:
        lengths = [0 if s == "ALL" else len(s) for s in selectors if s == "ALL" or code.startswith(s)]
        return max(lengths, default=-1)

    selected = best(select) if select else 0
    ignored = best(ignore)
    return selected >= 0 and selected > ignored


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
