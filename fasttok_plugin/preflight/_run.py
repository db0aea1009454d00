"""One preflight run: load the mixture, build what the checks read, call the plugins, filter and sort."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from fasttok_plugin._validate import MAX_ACTION_DIM, positive_int
from fasttok_plugin.errors import MixtureError
from fasttok_plugin.exit_status import one_line
from fasttok_plugin.preflight.context import PreflightContext, fit_transforms, uses_data_stats
from fasttok_plugin.preflight.findings import (
    Finding,
    PreflightResult,
    PreflightUsageError,
    Rule,
    Severity,
    code_matches,
    validate_selectors,
)
from fasttok_plugin.preflight.manager import PluginSpec, PreflightPlugins

if TYPE_CHECKING:
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.mixture import MixtureConfig
    from fasttok_plugin.resolve import ResolvedMixture

__all__ = ["run_preflight"]


def run_preflight(
    mixture: str | os.PathLike[str] | MixtureConfig | ResolvedMixture,
    *,
    resolved: ResolvedMixture | None = None,
    norm_heads: NormHeads | None = None,
    max_action_dim: int | None = None,
    chunk_size: int | None = None,
    head_grouping: str | None = None,
    strict: bool = False,
    select: Iterable[str] = (),
    ignore: Iterable[str] = (),
    plugins: Sequence[PluginSpec] | PreflightPlugins = (),
    options: Mapping[str, Any] | None = None,
    entry_points: bool = True,
    transform: Any = None,
    normalization: str | None = None,
    stats_source: str | None = None,
    jobs: int | None = None,
) -> PreflightResult:
    """Run every check plugin on a mixture and return what they found (the CLI and the callback share this).

    Args:
        mixture: A mixture file, a parsed :class:`MixtureConfig` or a :class:`ResolvedMixture`.
        resolved: The resolved mixture, when the caller already has it (no second resolution).
        norm_heads: The norm heads, when the caller already built them (no second computation).
        max_action_dim: Policy action dim (default: ``norm_heads``, the mixture, then 32).
        chunk_size: Steps per chunk (default: the mixture, then 50).
        head_grouping: Grouping the heads are built with (default: the mixture, then ``robot_control``);
            ignored when ``norm_heads`` is given.
        strict: Turn warnings into errors (duplicate fallbacks become errors too).
        select: Codes or prefixes to report (default: all).
        ignore: Codes or prefixes to drop (the more specific of select/ignore wins).
        plugins: Module names, ``"no:NAME"`` or plugin objects; or a ready :class:`PreflightPlugins`.
        options: Values of plugin-declared options.
        entry_points: Load plugins from the ``fasttok.preflight`` entry-point group.
        transform: The fit's `ActionTransform` argument (None: the mixture's transform keys).
        normalization, stats_source: The fit's mode and stats source as given (None: not checked / default).
        jobs: Dataset metadata reads in flight (default `defaults.DEFAULT_METADATA_THREADS`; ``1``: one at
            a time). The findings are the same for any value.

    Returns:
        The findings, filtered, sorted, with ``.ok`` / ``.errors``.

    Raises:
        MixtureError: When the mixture file is unreadable (missing, not JSON, ``$ref`` cycle). A structurally
            invalid file does not raise: its problems come back as FT001 findings.
        PreflightUsageError: Bad selectors, plugins or options, a ``max_action_dim`` / ``chunk_size``
            that is not a positive integer, or an unknown ``head_grouping``.
    """
    from fasttok_plugin.resolve import resolve_mixture  # lazy, and looked up at call time (tests patch it)

    select_t = validate_selectors(select, what="--select code")
    ignore_t = validate_selectors(ignore, what="--ignore code")
    manager = _manager(plugins, entry_points)
    option_values = manager.options().resolve((options or {}, "options"))
    run = _Run(manager.check_names(), manager.rules(), strict, option_values, select_t, ignore_t)
    try:
        config, given = _config_of(mixture)
    except MixtureError as exc:
        if exc.unreadable or not exc.problems or not isinstance(mixture, (str, os.PathLike)):
            raise
        return run.result(_structure_findings(exc, Path(mixture)), Path(mixture), ())
    max_action_dim, chunk_size = _sizes(config, norm_heads, max_action_dim, chunk_size)
    resolved = resolved or given or _resolve(resolve_mixture, config, jobs)
    grouping = _grouping(config, head_grouping, option_values.get("convention"))
    norm_heads, heads_error = _norm_heads(
        resolved, norm_heads, max_action_dim, (grouping, transform, normalization, stats_source)
    )
    fit = {"transform": transform, "normalization": normalization, "stats_source": stats_source}
    context = _context(
        config, resolved, norm_heads, heads_error, (max_action_dim, chunk_size), strict, option_values, fit
    )
    findings = manager.run_checks(context)
    if heads_error is not None:
        findings.append(_heads_failed(heads_error, max_action_dim, config.path))
    return run.result(findings, config.path, resolved.names)


def _context(
    config: MixtureConfig,
    resolved: ResolvedMixture,
    norm_heads: NormHeads | None,
    heads_error: Exception | None,
    sizes: tuple[int, int],
    strict: bool,
    option_values: dict[str, Any],
    fit: dict[str, Any],
) -> PreflightContext:
    """The checks' context: the mixture, its heads (or why they failed), sizes, options and fit settings."""
    return PreflightContext(
        config=config,
        resolved=resolved,
        norm_heads=norm_heads,
        norm_heads_error=heads_error,
        max_action_dim=sizes[0],
        chunk_size=sizes[1],
        strict=strict,
        options=MappingProxyType(option_values),
        **fit,
    )


def _resolve(resolve_mixture: Any, config: MixtureConfig, jobs: int | None) -> ResolvedMixture:
    """Resolve with ``jobs`` metadata threads (``None``: the default).

    Raises:
        PreflightUsageError: ``jobs`` is not a positive integer.
    """
    if jobs is None:
        return resolve_mixture(config)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise PreflightUsageError(f"jobs must be a positive integer, got {jobs!r}")
    return resolve_mixture(config, threads=jobs)


def _manager(plugins: Sequence[PluginSpec] | PreflightPlugins, entry_points: bool) -> PreflightPlugins:
    """``plugins`` when already a manager, else a manager of them (and the entry points, if asked)."""
    if isinstance(plugins, PreflightPlugins):
        return plugins
    return PreflightPlugins(plugins, entry_points=entry_points)


def _config_of(
    mixture: str | os.PathLike[str] | MixtureConfig | ResolvedMixture,
) -> tuple[MixtureConfig, ResolvedMixture | None]:
    """The parsed mixture, and the resolved one when that is what was given.

    Raises:
        MixtureError: The file cannot be read or is structurally invalid.
    """
    from fasttok_plugin.mixture import MixtureConfig, load_mixture
    from fasttok_plugin.resolve import ResolvedMixture

    if isinstance(mixture, ResolvedMixture):
        return mixture.config, mixture
    if isinstance(mixture, MixtureConfig):
        return mixture, None
    return load_mixture(Path(mixture)), None


def _sizes(
    config: MixtureConfig, norm_heads: NormHeads | None, max_action_dim: int | None, chunk_size: int | None
) -> tuple[int, int]:
    """``max_action_dim`` and ``chunk_size``: the argument, else the norm heads', the mixture's, the default.

    Raises:
        PreflightUsageError: A value that is not a positive integer, or one the given norm heads contradict.
    """
    from fasttok_plugin.defaults import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_ACTION_DIM, resolve_setting

    if norm_heads is not None:
        if max_action_dim is not None and max_action_dim != norm_heads.max_action_dim:
            raise PreflightUsageError(
                f"max_action_dim={max_action_dim} differs from the given norm heads' max_action_dim="
                f"{norm_heads.max_action_dim}; pass matching values (or no norm_heads)"
            )
        max_action_dim = norm_heads.max_action_dim
    dim = resolve_setting(max_action_dim, config.max_action_dim, DEFAULT_MAX_ACTION_DIM)
    size = resolve_setting(chunk_size, config.chunk_size, DEFAULT_CHUNK_SIZE)
    return (
        positive_int(dim, "max_action_dim", PreflightUsageError, maximum=MAX_ACTION_DIM),
        positive_int(size, "chunk_size", PreflightUsageError),
    )


def _grouping(config: MixtureConfig, head_grouping: str | None, convention: Any = None) -> str:
    """The head grouping: the argument, else the mixture's, else the convention's (the ``convention``
    option, else the mixture's), else ``robot_control`` (a bad argument: usage)."""
    from fasttok_plugin.defaults import DEFAULT_HEAD_GROUPING, resolve_setting
    from fasttok_plugin.heads.keys import check_head_grouping

    convention = convention if convention is not None else getattr(config, "convention", None)
    default = getattr(convention, "head_grouping", None) or DEFAULT_HEAD_GROUPING
    try:
        return check_head_grouping(resolve_setting(head_grouping, config.head_grouping, default))
    except ValueError as exc:
        raise PreflightUsageError(str(exc)) from None


def _norm_heads(
    resolved: ResolvedMixture,
    norm_heads: NormHeads | None,
    max_action_dim: int,
    fit: tuple[str | None, Any, str | None, str | None],
) -> tuple[NormHeads | None, Exception | None]:
    """The given norm heads, else freshly built ones as the fit builds them (``fit``: its head grouping,
    transform, normalization and stats source), else the reason they could not be built.

    Raises:
        PreflightUsageError: An unknown head grouping.
    """
    grouping = _grouping(resolved.config, fit[0])
    if norm_heads is not None:
        return norm_heads, None
    from fasttok_plugin.heads import build_norm_heads  # looked up at call time (tests patch it)

    extra: dict[str, Any] = {}
    if uses_data_stats(resolved.config, *fit[1:]):  # only then: default runs call exactly what they did
        extra = {"stats_source": "data", "transforms": fit_transforms(resolved.config, fit[1])}
    try:
        return build_norm_heads(resolved, max_action_dim, grouping=grouping, **extra), None
    except (ValueError, ArithmeticError, MemoryError) as exc:  # NormHeadsError is a ValueError
        return None, exc


def _heads_failed(error: Exception, max_action_dim: int, path: Path | None) -> Finding:
    return Finding(
        code="FT901",
        severity=Severity.ERROR,
        message=f"norm heads could not be built with max_action_dim={max_action_dim}: "
        f"{type(error).__name__}: {one_line(error)}",
        hint="check max_action_dim and the entries' errors; head-level checks were skipped",
        file=path,
        check="core",
    )


def _structure_findings(exc: MixtureError, path: Path) -> list[Finding]:
    """One FT001 finding per problem of a structurally invalid mixture file."""
    findings = []
    for problem in exc.problems:
        entry_index = _entry_of_pointer(problem.pointer)
        findings.append(
            Finding(
                code="FT001",
                severity=Severity.ERROR,
                message=problem.message,
                entry_index=entry_index,
                entry_name=None if entry_index is None else f"#{entry_index}",
                pointer=problem.pointer,
                hint=problem.hint,
                line=problem.line,
                file=problem.file or exc.path or path,
                check="core",
            )
        )
    return findings


def _entry_of_pointer(pointer: str) -> int | None:
    parts = pointer.split("/")
    for i, part in enumerate(parts[:-1]):
        if part == "datasets" and parts[i + 1].isdigit():
            return int(parts[i + 1])
    return None


@dataclass(frozen=True, slots=True)
class _Run:
    """What every result of one run shares: the plugins that ran, their rules, options and filters."""

    checks: tuple[str, ...]
    rules: Mapping[str, Rule]
    strict: bool
    options: Mapping[str, Any]
    select: tuple[str, ...]
    ignore: tuple[str, ...]

    def result(
        self, findings: list[Finding], path: Path | None, entry_names: tuple[str, ...]
    ) -> PreflightResult:
        """Filter by select/ignore, promote warnings under strict, sort (entry, severity, code, message)."""
        kept = [f for f in findings if code_matches(f.code, self.select, self.ignore)]
        if self.strict:
            kept = [
                dataclasses.replace(f, severity=Severity.ERROR) if f.severity is Severity.WARNING else f
                for f in kept
            ]
        kept.sort(
            key=lambda f: (
                f.entry_index is not None,
                -1 if f.entry_index is None else f.entry_index,
                f.severity.rank,
                f.code,
                f.message,
            )
        )
        return PreflightResult(
            findings=tuple(kept),
            mixture=path,
            checks=self.checks,
            rules=self.rules,
            strict=self.strict,
            n_datasets=len(entry_names),
            options=self.options,
            entry_names=tuple(entry_names),
        )
