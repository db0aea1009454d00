"""The built-in checks: ordinary plugins, registered by name exactly like third-party ones.

Each class below is one plugin (``-p no:<name>`` disables it). They read the structured records the core
already computed (``NormHeads`` issue records, ``ResolvedEntry.error``, ``DatasetMeta.stats_error``,
``MixtureConfig.problems``/``unknown_keys``) so the preflight and training can never disagree.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import numpy as np

from fasttok_plugin.heads import is_missing_tag
from fasttok_plugin.preflight.context import PreflightContext
from fasttok_plugin.preflight.findings import Finding, Rule, Severity
from fasttok_plugin.preflight.hookspecs import hookimpl
from fasttok_plugin.sampling.starts import chunk_span, longest_chunk, valid_start_counts

__all__ = ["BUILTIN_CHECKS", "CORE_RULES", "builtin_plugins"]

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

# Findings the manager itself reports (not tied to a check plugin, so they cannot be disabled).
CORE_RULES = (
    Rule(
        "FT001",
        "mixture-invalid",
        ERROR,
        "The mixture file is structurally invalid (wrong types, missing repo_id).",
        "Fix the value at the pointer; see docs/preflight.md for the mixture schema.",
    ),
    Rule(
        "FT900",
        "check-crashed",
        ERROR,
        "A check plugin raised an exception or yielded something that is not a Finding.",
        "Report it to the plugin's author; `-p no:NAME` disables the plugin meanwhile.",
    ),
    Rule(
        "FT901",
        "norm-heads-failed",
        ERROR,
        "The norm heads could not be built, so head-level checks did not run.",
        "Fix the error in the message; the other findings usually explain it.",
    ),
)


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


class ActionDims(_Check):
    """Native action dims: larger than ``max_action_dim``, or different within one head."""

    name = "action_dims"
    rules = (
        Rule(
            "FT201",
            "action-dim-overflow",
            ERROR,
            "The dataset's native action dim exceeds max_action_dim (training would crash or drop dims).",
            "Raise --max-action-dim (or max_action_dim in the mixture), or drop the entry.",
        ),
        Rule(
            "FT105",
            "incompatible-dims",
            ERROR,
            "Entries sharing a norm head have different native action dims.",
            "Give one of the entries a different robot_type/control_mode override, or fix its action shape.",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        heads = context.norm_heads
        if heads is None:
            return
        for record in heads.dim_overflows:
            yield context.finding(
                "FT201",
                ERROR,
                f"native action dim {record.dim} exceeds max_action_dim {record.max_action_dim}",
                entry=record.entry,
                hint=f"raise --max-action-dim to at least {record.dim}, or remove the entry",
            )
        for record in heads.incompatible_dims:
            dims = [(int(i), int(d)) for i, d in record.dims]
            if not dims:
                continue
            # The head's usual dim is the most common one; the entries with another dim are the odd ones out.
            usual = Counter(d for _, d in dims).most_common(1)[0][0]  # stable: ties keep first-seen order
            usual_index = next(i for i, d in dims if d == usual)
            listing = ", ".join(f"{context.entries[i].name}: {d}" for i, d in dims)
            for index, dim in dims:
                if dim == usual:
                    continue
                yield context.finding(
                    "FT105",
                    ERROR,
                    f"action dim {dim} differs from {usual} of {context.entries[usual_index].name!r} in "
                    f"head {record.key!r} ({listing})",
                    entry=index,
                    field="robot_type",
                    hint="entries sharing a head need equal action dims: give this entry its own "
                    "robot_type/control_mode override, or fix its action feature shape",
                )


_REASON_CODES = {"root_missing": "FT301", "unsupported_version": "FT303"}


class DatasetMetadata(_Check):
    """Dataset roots that do not exist, metadata that cannot be read, unsupported versions."""

    name = "datasets"
    rules = (
        Rule(
            "FT301",
            "root-missing",
            ERROR,
            "The dataset root does not exist.",
            'Fix "root" in the entry, set HF_LEROBOT_HOME, or download the dataset first.',
        ),
        Rule(
            "FT302",
            "metadata-unreadable",
            ERROR,
            "The dataset's metadata (meta/info.json, episodes, action feature) is missing or invalid.",
            "Repair or re-download the dataset; the message names the file.",
        ),
        Rule(
            "FT303",
            "unsupported-version",
            ERROR,
            "The dataset's codebase_version is not v2.1 or v3.0.",
            "Convert the dataset with LeRobot's conversion script.",
        ),
        Rule(
            "FT304",
            "entry-skipped",
            ERROR,
            "The entry was left out of the norm heads for the stated reason.",
            "Fix the reason given in the message.",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        explained: set[int] = set()
        for resolved in context.entries:
            error = resolved.error
            if error is None:
                if resolved.meta is not None and resolved.meta.stats_error is not None:
                    explained.add(resolved.index)  # reported by the stats check
                continue
            explained.add(resolved.index)
            reason = getattr(error, "reason", "")
            code = _REASON_CODES.get(reason, "FT302")
            yield context.finding(
                code,
                ERROR,
                _first_line(error),
                entry=resolved,
                field="root" if code == "FT301" else None,
                hint=getattr(error, "hint", "") or "",
            )
        heads = context.norm_heads
        if heads is None:
            return
        for record in heads.skipped_entries:
            if record.entry in explained:
                continue
            yield context.finding(
                "FT304",
                ERROR,
                f"left out of the norm heads: {record.reason}",
                entry=record.entry,
                hint="fix the reason above; skipped entries are never trained on",
            )


class StatsChecks(_Check):
    """Stats that are missing, lack the action key, or hold NaN/Infinity."""

    name = "stats"
    rules = (
        Rule(
            "FT202",
            "stats-missing",
            ERROR,
            "The dataset has no usable action stats (missing, or lacking the action key).",
            "Recompute the dataset stats (meta/stats.json or per-episode stats).",
        ),
        Rule(
            "FT203",
            "stats-non-finite",
            WARNING,
            "Action stats contain NaN or Infinity; they are masked when pooling the head.",
            "Recompute the stats; check the action data for NaN/Inf.",
        ),
        Rule(
            "FT204",
            "head-dim-no-finite-value",
            ERROR,
            "A head dimension has no finite min/max in any member; it was filled with [-1, 1].",
            "Recompute the stats of the members listed in the message.",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        for resolved in context.entries:
            meta = resolved.meta
            if resolved.error is None and meta is not None and meta.stats_error is not None:
                yield context.finding(
                    "FT202",
                    ERROR,
                    _first_line(meta.stats_error),
                    entry=resolved,
                    hint=getattr(meta.stats_error, "hint", "") or "recompute the dataset stats",
                )
        heads = context.norm_heads
        if heads is None:
            return
        per_entry: dict[int, list[str]] = defaultdict(list)
        for record in heads.nonfinite:
            for index in record.entries:
                per_entry[int(index)].append(f"{record.stat}[{record.dim}]")
        for index, items in sorted(per_entry.items()):
            yield context.finding(
                "FT203",
                WARNING,
                f"action stats contain NaN/Infinity at {', '.join(sorted(set(items), key=_stat_order))}; "
                "these values are ignored when pooling the head",
                entry=index,
                hint="recompute the dataset stats and check the action data for NaN/Inf",
            )
        for record in heads.filled_dims:
            members = heads.head_members[record.head] if record.head < len(heads.head_members) else ()
            names = ", ".join(context.entries[i].name for i in members) or "no members"
            yield context.finding(
                "FT204",
                ERROR,
                f"head {record.key!r} dim {record.dim} has no finite min/max in any member ({names}); "
                "it was filled with [-1, 1]",
                entry=members[0] if members else None,
                hint="recompute the stats of these datasets; the dim cannot be normalized meaningfully",
            )


def _stat_order(item: str) -> tuple[str, int]:
    stat, _, dim = item.partition("[")
    return (stat, int(dim.rstrip("]") or 0))


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


class EpisodeLengths(_Check):
    """Episodes shorter than one chunk at the target frequency are never sampled."""

    name = "episode_lengths"
    rules = (
        Rule(
            "FT401",
            "no-episode-fits-chunk",
            ERROR,
            "No selected episode of the entry is long enough for one chunk at the target frequency.",
            "Lower chunk_size or action_freq, or drop the entry.",
        ),
        Rule(
            "FT402",
            "short-episodes",
            WARNING,
            "Some episodes are shorter than one chunk at the target frequency and are never sampled.",
            "Exclude them with excluded_episodes, or lower chunk_size.",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        chunk_size = context.chunk_size
        for resolved in context.entries:
            meta = resolved.meta
            if meta is None or resolved.error is not None:
                continue
            fps = float(meta.fps)
            freq = float(context.action_freq) if context.action_freq else fps
            lengths = np.fromiter((e.length for e in meta.episodes), dtype=np.int64, count=len(meta.episodes))
            if lengths.size == 0:
                yield context.finding(
                    "FT401",
                    ERROR,
                    "selects no episodes, so no chunk can be sampled",
                    entry=resolved,
                    field="episodes",
                    hint="check the entry's episodes/excluded_episodes against the dataset",
                )
                continue
            # The sampler's own rule: an episode fits when it has a valid chunk start.
            starts = valid_start_counts(lengths, fps=fps, chunk_size=chunk_size, freq=freq)
            n_fit = int((starts > 0).sum())
            if n_fit == lengths.size:
                continue
            longest = int(lengths.max())
            longest_span = (longest - 1) / fps
            rate = f"{chunk_size} steps at {freq:g} Hz spans {chunk_span(chunk_size, freq):.3g} s"
            if n_fit == 0:
                max_chunk = longest_chunk(longest, fps=fps, freq=freq)
                yield context.finding(
                    "FT401",
                    ERROR,
                    f"no episode fits one chunk: a chunk of {rate}, the longest of {lengths.size} episodes "
                    f"spans {longest_span:.3g} s ({longest} frames at {fps:g} fps)",
                    entry=resolved,
                    hint=f"lower chunk_size to at most {max_chunk} (or raise action_freq), or drop the entry",
                )
            else:
                short = lengths.size - n_fit
                yield context.finding(
                    "FT402",
                    WARNING,
                    f"{short} of {lengths.size} episodes ({short / lengths.size:.0%}) are shorter than one "
                    f"chunk (a chunk of {rate}) and are never sampled",
                    entry=resolved,
                    hint="exclude them with excluded_episodes, or lower chunk_size",
                )


def _first_line(error: BaseException) -> str:
    """The error without the entry name and fix (findings carry those separately)."""
    detail = getattr(error, "detail", None)
    if isinstance(detail, str) and detail.strip():
        path = getattr(error, "path", None)
        return f"{detail.strip()} [{path}]" if path is not None else detail.strip()
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _entry_index_of(pointer: str, context: PreflightContext) -> int | None:
    """Entry index for a pointer like ``/datasets/3/weight`` or ``/weights/3`` (or wrapped), else None."""
    parts = pointer.split("/")
    for i, part in enumerate(parts[:-1]):
        # /datasets/3/... and /weights/3 (the weights list is parallel to datasets) both name entry 3.
        if part in ("datasets", "weights") and parts[i + 1].isdigit():
            index = int(parts[i + 1])
            return index if index < len(context.entries) else None
    return None


BUILTIN_CHECKS: tuple[type[_Check], ...] = (
    Weights,
    UnknownKeys,
    DatasetMetadata,
    StatsChecks,
    RequireNonEmptyTags,
    DuplicateFallbacks,
    FallbackHeads,
    ActionDims,
    EpisodeLengths,
)


def builtin_plugins() -> list[tuple[str, Any]]:
    """Fresh ``(name, plugin)`` pairs of the built-in checks, in registration order."""
    return [(cls.name, cls()) for cls in BUILTIN_CHECKS]
