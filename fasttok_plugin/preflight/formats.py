"""Output formats of ``fasttok-preflight``: text for people; json, github, junit and sarif for machines."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from fasttok_plugin._printable import printable
from fasttok_plugin.preflight.findings import Finding, PreflightResult, Rule, Severity

__all__ = ["FORMATS", "display_path", "printable", "render"]

TOOL_NAME = "fasttok-preflight"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def display_path(path: Path | None, cwd: Path | None = None) -> str:
    """``path`` relative to ``cwd`` when it lies below it (what CI annotations expect), else as is.

    Always printable (see :func:`printable`): paths come from user files.
    """
    if path is None:
        return ""
    cwd = cwd or Path.cwd()
    try:
        return printable(Path(os.path.abspath(path)).relative_to(os.path.abspath(cwd)).as_posix())
    except ValueError:
        return printable(str(path))


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("fasttok-plugin")
    except Exception:  # not installed as a distribution (e.g. a source checkout on sys.path)
        return "0"


# --------------------------------------------------------------------------------------------- text
_COLORS = {Severity.ERROR: "\x1b[31;1m", Severity.WARNING: "\x1b[33;1m", Severity.INFO: "\x1b[36m"}
_BOLD, _DIM, _RESET = "\x1b[1m", "\x1b[2m", "\x1b[0m"


def render_text(results: Sequence[PreflightResult], *, color: bool = False, cwd: Path | None = None) -> str:
    """Findings grouped by mixture, then by dataset entry, with the fix under each finding."""

    def paint(text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    lines: list[str] = []
    for result in results:
        mixture = display_path(result.mixture, cwd) or "<mixture>"
        if not result.findings:
            lines.append(f"{paint(mixture, _BOLD)}: all checks passed ({result.summary()})")
            continue
        lines.append(paint(mixture, _BOLD))
        groups: dict[int | None, list[Finding]] = {}
        for finding in result.findings:
            groups.setdefault(finding.entry_index, []).append(finding)
        for index, group in groups.items():
            first = group[0]
            if index is None:
                header = "mixture"
            else:
                where = f"line {first.line}, " if first.line else ""
                pointer = printable(first.pointer or "/")
                header = f"[{index}] {printable(str(first.entry_name))}  " + paint(
                    f"({where}{pointer})", _DIM
                )
            lines.append(f"  {paint(header, _BOLD) if index is None else header}")
            for finding in group:
                label = paint(f"{finding.severity.value:<7}", _COLORS[finding.severity])
                loc = (
                    f"{display_path(finding.file, cwd)}:{finding.line}: "
                    if finding.line and index is None
                    else ""
                )
                code = printable(finding.code)
                lines.append(f"    {label} {code}  {loc}{printable(finding.message)}")
                if finding.hint:
                    fix = paint("fix: " + printable(finding.hint), _DIM)
                    lines.append(f"    {'':<7} {'':<{len(code)}}  {fix}")
        counts = result.counts()
        verdict = paint("FAILED", _COLORS[Severity.ERROR]) if not result.ok else "passed"
        strict = " (strict)" if result.strict else ""
        lines.append(
            f"{verdict}{strict}: {result.summary()}"
            + (f"; {counts['error']} must be fixed" if counts["error"] else "")
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- json
def render_json(results: Sequence[PreflightResult], *, cwd: Path | None = None, **_: Any) -> str:
    """One JSON document: overall verdict, per-mixture summaries and every finding."""
    total = {s.value: 0 for s in Severity}
    for result in results:
        for key, n in result.counts().items():
            total[key] += n
    document = {
        "version": 1,
        "tool": TOOL_NAME,
        "ok": all(r.ok for r in results),
        "summary": total,
        "mixtures": [
            {
                "mixture": None if r.mixture is None else str(r.mixture),
                "ok": r.ok,
                "strict": r.strict,
                "datasets": r.n_datasets,
                "summary": r.counts(),
                "checks": list(r.checks),
            }
            for r in results
        ],
        "findings": [f.to_dict() for r in results for f in r.findings],
    }
    return json.dumps(document, indent=2) + "\n"


# ------------------------------------------------------------------------------------------- github
_GITHUB_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _escape_data(text: str) -> str:
    # Line breaks are escaped as the workflow-command syntax wants; other control characters made visible.
    escaped = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return printable(escaped)


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(
    level: str, message: str, *, file: str = "", line: int | None = None, title: str = ""
) -> str:
    """One GitHub Actions workflow command (``::error file=...,line=...,title=...::message``)."""
    props = []
    if file:
        props.append(f"file={_escape_property(file)}")
    if line:
        props.append(f"line={int(line)}")
    if title:
        props.append(f"title={_escape_property(title)}")
    return (
        f"::{level} {','.join(props)}::{_escape_data(message)}"
        if props
        else f"::{level}::{_escape_data(message)}"
    )


def render_github(results: Sequence[PreflightResult], *, cwd: Path | None = None, **_: Any) -> str:
    """GitHub Actions annotations, one per finding, pointing at the entry's line in the mixture file."""
    lines = []
    for result in results:
        for f in result.findings:
            entry = f"[{f.entry_index}] {f.entry_name}: " if f.entry_index is not None else ""
            hint = f" (fix: {f.hint})" if f.hint else ""
            lines.append(
                github_annotation(
                    _GITHUB_LEVEL[f.severity],
                    f"{entry}{f.message}{hint}",
                    file=display_path(f.file or result.mixture, cwd),
                    line=f.line,
                    title=f.code,
                )
            )
    return "".join(line + "\n" for line in lines)


# -------------------------------------------------------------------------------------------- junit
def render_junit(results: Sequence[PreflightResult], *, cwd: Path | None = None, **_: Any) -> str:
    """JUnit XML: one test suite per mixture, one test case per dataset entry (plus one for the file itself).

    An entry with errors has a ``<failure>`` listing them; warnings and infos go to ``<system-out>``.
    """
    root = ET.Element("testsuites", name=TOOL_NAME)
    total_tests = total_failures = 0
    for result in results:
        mixture = display_path(result.mixture, cwd) or "<mixture>"
        suite = ET.SubElement(root, "testsuite", name=mixture)
        by_entry: dict[int | None, list[Finding]] = {None: []}
        names = dict(enumerate(result.entry_names))
        for f in result.findings:
            by_entry.setdefault(f.entry_index, []).append(f)
            if f.entry_index is not None and f.entry_index not in names:
                names[f.entry_index] = f.entry_name or f"entry {f.entry_index}"
        cases = [(None, "mixture file")] + [(i, names[i]) for i in sorted(names)]
        failures = 0
        for index, name in cases:
            case_name = printable(name if index is None else f"[{index}] {name}")
            case = ET.SubElement(suite, "testcase", classname=f"{TOOL_NAME}.{mixture}", name=case_name)
            found = by_entry.get(index, [])
            errors = [f for f in found if f.severity is Severity.ERROR]
            others = [f for f in found if f.severity is not Severity.ERROR]
            if errors:
                failures += 1
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=printable("; ".join(f"{f.code} {f.message}" for f in errors)),
                    type=printable(errors[0].code),
                )
                failure.text = "\n".join(_plain(f, cwd) for f in errors)
            if others:
                ET.SubElement(case, "system-out").text = "\n".join(_plain(f, cwd) for f in others)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        total_tests += len(cases)
        total_failures += failures
    root.set("tests", str(total_tests))
    root.set("failures", str(total_failures))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _plain(f: Finding, cwd: Path | None) -> str:
    where = display_path(f.file, cwd)
    where = f"{where}:{f.line}" if where and f.line else where
    hint = f" (fix: {f.hint})" if f.hint else ""
    text = f"{f.severity.value} {f.code} {f.pointer} {f.message}{hint}"
    return f"{where + ': ' if where else ''}{printable(text)}"


# -------------------------------------------------------------------------------------------- sarif
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def render_sarif(results: Sequence[PreflightResult], *, cwd: Path | None = None, **_: Any) -> str:
    """SARIF 2.1.0: one run, rules from the plugins' declarations, results with file/line locations."""
    rules: dict[str, Rule] = {}
    for result in results:
        for code, rule in result.rules.items():
            rules.setdefault(code, rule)
    codes = sorted({f.code for r in results for f in r.findings} | set(rules))
    rule_index = {code: i for i, code in enumerate(codes)}
    sarif_rules = []
    for code in codes:
        rule = rules.get(code)
        if rule is None:  # a plugin reported a code it did not declare: describe it minimally
            sarif_rules.append({"id": code, "shortDescription": {"text": code}})
            continue
        entry: dict[str, Any] = {
            "id": code,
            "name": rule.name,
            "shortDescription": {"text": rule.summary},
            "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
        }
        if rule.fix:
            entry["help"] = {"text": rule.fix}
        sarif_rules.append(entry)

    sarif_results = []
    for result in results:
        for f in result.findings:
            message = f.message + (f" (fix: {f.hint})" if f.hint else "")
            item: dict[str, Any] = {
                "ruleId": f.code,
                "ruleIndex": rule_index[f.code],
                "level": _SARIF_LEVEL[f.severity],
                "message": {"text": message},
                "locations": [_sarif_location(f, result, cwd)],
                "properties": {"pointer": f.pointer, "hint": f.hint, "check": f.check},
            }
            if f.entry_index is not None:
                item["properties"]["entry"] = {"index": f.entry_index, "name": f.entry_name}
            sarif_results.append(item)
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": _version(),
                        "rules": sarif_rules,
                    }
                },
                "results": sarif_results,
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def _sarif_location(f: Finding, result: PreflightResult, cwd: Path | None) -> dict[str, Any]:
    file = f.file or result.mixture
    location: dict[str, Any] = {}
    if file is not None:
        shown = display_path(file, cwd)
        if Path(shown).is_absolute():
            artifact: dict[str, Any] = {"uri": Path(os.path.abspath(file)).as_uri()}
        else:
            artifact = {"uri": shown, "uriBaseId": "%SRCROOT%"}
        physical: dict[str, Any] = {"artifactLocation": artifact}
        if f.line:
            physical["region"] = {"startLine": int(f.line)}
        location["physicalLocation"] = physical
    logical = {"name": f.entry_name or "mixture", "fullyQualifiedName": f.pointer or "/", "kind": "object"}
    location["logicalLocations"] = [logical]
    return location


Renderer = Callable[..., str]
FORMATS: dict[str, Renderer] = {
    "text": render_text,
    "json": render_json,
    "github": render_github,
    "junit": render_junit,
    "sarif": render_sarif,
}


def render(
    results: Sequence[PreflightResult], fmt: str, *, color: bool = False, cwd: Path | None = None
) -> str:
    """Render results in one of :data:`FORMATS`."""
    if fmt == "text":
        return render_text(results, color=color, cwd=cwd)
    return FORMATS[fmt](results, cwd=cwd)
