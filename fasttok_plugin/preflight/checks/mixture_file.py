"""Checks of the mixture file itself: its weights and keys it does not know."""

from __future__ import annotations

from collections.abc import Iterator

from fasttok_plugin.preflight.checks._base import ERROR, WARNING, _Check
from fasttok_plugin.preflight.context import PreflightContext
from fasttok_plugin.preflight.findings import Finding, Rule

__all__ = ["UnknownKeys", "Weights"]


class Weights(_Check):
    """Mixture weights: wrong length, negative, NaN or all zero."""

    name = "weights"
    rules = (
        Rule(
            "FT003",
            "invalid-weights",
            ERROR,
            "Mixture weights are invalid (length mismatch, negative, NaN, all zero).",
            "Give one finite, non-negative weight per dataset, at least one of them positive.",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        for problem in context.config.problems:
            pointer = problem.pointer or context.config.weights_pointer
            index = _entry_index_of(pointer, context)
            yield context.finding(
                "FT003",
                ERROR,
                problem.message,
                entry=index,
                pointer=pointer,
                hint=problem.hint,
                file=problem.file,
                line=problem.line,
            )


class UnknownKeys(_Check):
    """Keys the mixture format does not know (a typo must not pass silently)."""

    name = "unknown_keys"
    rules = (
        Rule(
            "FT002",
            "unknown-key",
            WARNING,
            "The mixture file has a key the format does not know (likely a typo).",
            "Rename it to the suggested key, or remove it.",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        for unknown in context.config.unknown_keys:
            suggestion = f"; did you mean {unknown.suggestion!r}?" if unknown.suggestion else ""
            yield context.finding(
                "FT002",
                WARNING,
                f"unknown key {unknown.key!r} at {unknown.pointer}{suggestion}",
                entry=_entry_index_of(unknown.pointer, context),
                pointer=unknown.pointer,
                file=getattr(unknown, "file", None),
                line=unknown.line,
                hint=f"rename it to {unknown.suggestion!r}" if unknown.suggestion else "remove the key",
            )


def _entry_index_of(pointer: str, context: PreflightContext) -> int | None:
    """Entry index for a pointer like ``/datasets/3/weight`` or ``/weights/3`` (or wrapped), else None."""
    parts = pointer.split("/")
    for i, part in enumerate(parts[:-1]):
        # /datasets/3/... and /weights/3 (the weights list is parallel to datasets) both name entry 3.
        if part in ("datasets", "weights") and parts[i + 1].isdigit():
            index = int(parts[i + 1])
            return index if index < len(context.entries) else None
    return None
