"""Checks of the entries' tags: required tags, duplicate fallbacks, and entries given a singleton head."""

from __future__ import annotations

from collections.abc import Iterator

from fasttok_plugin.heads import is_missing_tag
from fasttok_plugin.preflight.checks._base import ERROR, INFO, WARNING, _Check
from fasttok_plugin.preflight.context import PreflightContext
from fasttok_plugin.preflight.findings import Finding, Rule

__all__ = ["DuplicateFallbacks", "FallbackHeads", "RequireNonEmptyTags"]


def _describe(value: object) -> str:
    if value is None:
        return "missing"
    return f"{value!r}"


class RequireNonEmptyTags(_Check):
    """``require_non_empty_robot_type`` / ``_control_mode``: every entry with a missing tag is an error."""

    name = "require_non_empty"
    rules = (
        Rule(
            "FT101",
            "require-non-empty-robot-type",
            ERROR,
            "An entry has no usable robot_type while the mixture sets require_non_empty_robot_type.",
            'Add a "robot_type" override to the entry (not blank, not "unknown").',
        ),
        Rule(
            "FT102",
            "require-non-empty-control-mode",
            ERROR,
            "An entry has no usable control_mode while the mixture sets require_non_empty_control_mode.",
            'Add a "control_mode" override to the entry (not blank, not "unknown").',
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        heads = context.norm_heads
        if heads is None:
            return
        required = {
            "robot_type": ("FT101", context.config.require_non_empty_robot_type),
            "control_mode": ("FT102", context.config.require_non_empty_control_mode),
        }
        for record in heads.missing_tags:
            code, is_required = required.get(record.field, (None, False))
            if not is_required or code is None:
                continue
            resolved = context.entries[record.entry]
            from_override = getattr(resolved.entry, record.field, None) is not None
            source = "the mixture entry" if from_override else "meta/info.json"
            yield context.finding(
                code,
                ERROR,
                f"{record.field} is {_describe(record.value)} (from {source}) but the mixture sets "
                f"require_non_empty_{record.field}",
                entry=record.entry,
                field=record.field,
                hint=f'set "{record.field}": "<name>" in the entry at {resolved.entry.pointer} '
                f'(non-empty, not "unknown")',
            )


class DuplicateFallbacks(_Check):
    """The same ``repo_id`` listed more than once without usable tags: identical singleton heads."""

    name = "duplicate_fallbacks"
    rules = (
        Rule(
            "FT103",
            "duplicate-fallback",
            WARNING,
            "The same repo_id is listed more than once without usable tags, giving separate singleton heads "
            "with identical stats (an error under --strict).",
            "Remove the duplicate entry, or give the entries robot_type/control_mode overrides.",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        heads = context.norm_heads
        if heads is None:
            return
        severity = ERROR if context.strict else WARNING
        for record in heads.duplicate_fallbacks:
            entries = tuple(record.entries)
            names = ", ".join(f"{context.entries[i].name} (entry {i})" for i in entries)
            for index in entries[1:]:
                yield context.finding(
                    "FT103",
                    severity,
                    f"repo_id {record.repo_id!r} is listed {len(entries)} times without usable tags: "
                    f"{names} become separate singleton heads with identical stats",
                    entry=index,
                    hint=f"remove this duplicate of entry {entries[0]}, or set robot_type/control_mode "
                    "overrides so the entries share a head",
                )


class FallbackHeads(_Check):
    """Entries whose tags are missing fall back to a singleton head named after the entry."""

    name = "fallback_heads"
    rules = (
        Rule(
            "FT104",
            "fallback-head",
            INFO,
            "An entry has a missing robot_type or control_mode and gets its own singleton norm head.",
            "Set robot_type/control_mode overrides if the entry should share a head with others.",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        heads = context.norm_heads
        if heads is None:
            return
        for index in heads.fallback_entries:
            resolved = context.entries[index]
            reasons = [
                f"{tag} is {_describe(getattr(resolved, tag))}"
                for tag in ("robot_type", "control_mode")
                if is_missing_tag(getattr(resolved, tag))
            ]
            why = "; ".join(reasons) or "its tags are missing"
            yield context.finding(
                "FT104",
                INFO,
                f"uses a singleton norm head {resolved.name!r} ({why})",
                entry=index,
                hint="set robot_type and control_mode overrides to share a head with datasets of that robot",
            )
