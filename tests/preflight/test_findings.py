"""Findings, results and selectors: the value objects every format and the callback rely on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fasttok_plugin.preflight import Finding, PreflightError, PreflightResult, PreflightUsageError, Severity
from fasttok_plugin.preflight.findings import code_matches, validate_selectors


def make(code: str, severity: str, entry: int | None = None) -> Finding:
    return Finding(
        code, Severity(severity), f"{code} happened", entry, None if entry is None else f"e{entry}"
    )


def test_finding_is_frozen_and_accepts_severity_strings() -> None:
    finding = Finding("FT201", "error", "too wide", 3, "org/x", "/datasets/3", "raise it", 12, Path("m.json"))
    assert finding.severity is Severity.ERROR
    assert finding.entry == (3, "org/x")
    assert str(finding) == "m.json:12: error FT201 [3] org/x: too wide (fix: raise it)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.code = "FT000"  # type: ignore[misc]
    with pytest.raises(ValueError, match="fatal"):
        Finding("FT1", "fatal", "no such severity")


def test_result_counts_and_ok() -> None:
    result = PreflightResult(
        (make("FT201", "error", 1), make("FT402", "warning", 2), make("FT104", "info", 2)), n_datasets=3
    )
    assert result.counts() == {"error": 1, "warning": 1, "info": 1}
    assert [f.code for f in result.errors] == ["FT201"]
    assert not result.ok
    assert result.exit_code == 1
    assert result.summary() == "1 error, 1 warning, 1 info in 3 datasets"
    assert PreflightResult((make("FT402", "warning"),)).ok


def test_preflight_error_lists_every_finding() -> None:
    result = PreflightResult((make("FT201", "error", 1), make("FT402", "warning", 2)), mixture=Path("m.json"))
    with pytest.raises(PreflightError) as info:
        result.raise_for_errors()
    message = str(info.value)
    assert message.splitlines()[0] == "preflight of m.json failed: 1 error, 1 warning, 0 infos in 0 datasets"
    assert "FT201 [1] e1: FT201 happened" in message
    assert "FT402 [2] e2: FT402 happened" in message
    assert info.value.result is result


@pytest.mark.parametrize(
    ("code", "select", "ignore", "kept"),
    [
        ("FT201", (), (), True),
        ("FT201", ("FT2",), (), True),
        ("FT201", ("FT1",), (), False),
        ("FT201", (), ("FT",), False),
        ("FT201", ("FT201",), ("FT2",), True),  # the more specific selector wins
        ("FT202", ("FT2",), ("FT202",), False),
        ("FT201", ("FT2",), ("FT2",), False),  # a tie goes to ignore
        ("MF001", ("ALL",), ("FT",), True),
    ],
)
def test_select_and_ignore(code: str, select: tuple[str, ...], ignore: tuple[str, ...], kept: bool) -> None:
    assert code_matches(code, select, ignore) is kept


def test_selectors_split_on_commas_and_reject_garbage() -> None:
    assert validate_selectors(["ft1, FT201", "MF"]) == ("FT1", "FT201", "MF")
    with pytest.raises(PreflightUsageError, match="invalid"):
        validate_selectors(["FT-2"])
