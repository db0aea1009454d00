"""Preflight: cheap metadata checks that stop a bad mixture before any compute is spent.

Public API: :func:`run_preflight`, the value objects (:class:`Finding`, :class:`Severity`,
:class:`PreflightResult`, :class:`PreflightError`, :class:`Rule`) and, for plugin authors, the
``hookimpl`` marker and :class:`PreflightContext`. The hooks themselves are documented in
:mod:`fasttok_plugin.preflight.hookspecs`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from fasttok_plugin.preflight.context import OptionRegistry, PreflightContext
from fasttok_plugin.preflight.findings import (
    Finding,
    PreflightError,
    PreflightResult,
    PreflightUsageError,
    Rule,
    Severity,
    code_matches,
    validate_selectors,
)
from fasttok_plugin.preflight.hookspecs import ENTRY_POINT_GROUP, PROJECT_NAME, hookimpl, hookspec
from fasttok_plugin.preflight.manager import PluginSpec, PreflightPlugins

if TYPE_CHECKING:
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.mixture import MixtureConfig, MixtureError
    from fasttok_plugin.resolve import ResolvedMixture

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "Finding",
    "OptionRegistry",
    "PreflightContext",
    "PreflightError",
    "PreflightPlugins",
    "PreflightResult",
    "PreflightUsageError",
    "Rule",
    "Severity",
    "hookimpl",
    "hookspec",
    "run_preflight",
]


def run_preflight(
    mixture: str | os.PathLike[str] | MixtureConfig | ResolvedMixture,
    *,
    resolved: ResolvedMixture | None = None,
    norm_heads: NormHeads | None = None,
    max_action_dim: int | None = None,
    chunk_size: int | None = None,
    strict: bool = False,
    select: Iterable[str] = (),
    ignore: Iterable[str] = (),
    plugins: Sequence[PluginSpec] | PreflightPlugins = (),
    options: Mapping[str, Any] | None = None,
    entry_points: bool = True,
) -> PreflightResult:
    """Run every check plugin on a mixture and return what they found (the CLI and the callback share this).

    Args:
        mixture: A mixture file, a parsed :class:`MixtureConfig` or a :class:`ResolvedMixture`.
        resolved: The resolved mixture, when the caller already has it (no second resolution).
        norm_heads: The norm heads, when the caller already built them (no second computation).
        max_action_dim: Policy action dim (default: ``norm_heads``, the mixture, then 32).
        chunk_size: Steps per chunk (default: the mixture, then 50).
        strict: Turn warnings into errors (duplicate fallbacks become errors too).
        select: Codes or prefixes to report (default: all).
        ignore: Codes or prefixes to drop (the more specific of select/ignore wins).
        plugins: Module names, ``"no:NAME"`` or plugin objects; or a ready :class:`PreflightPlugins`.
        options: Values of plugin-declared options.
        entry_points: Load plugins from the ``fasttok.preflight`` entry-point group.

    Returns:
        The findings, filtered, sorted, with ``.ok`` / ``.errors``.

    Raises:
        MixtureError: When the mixture file is unreadable (missing, not JSON, ``$ref`` cycle). A structurally
            invalid file does not raise: its problems come back as FT001 findings.
        PreflightUsageError: Bad selectors, plugins or options.
    """
    from fasttok_plugin.defaults import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_ACTION_DIM
    from fasttok_plugin.mixture import MixtureConfig, MixtureError, load_mixture
    from fasttok_plugin.resolve import ResolvedMixture, resolve_mixture

    select_t = validate_selectors(select, what="--select code")
    ignore_t = validate_selectors(ignore, what="--ignore code")
    manager = (
        plugins
        if isinstance(plugins, PreflightPlugins)
        else PreflightPlugins(plugins, entry_points=entry_points)
    )
    registry = manager.options()
    option_values = registry.resolve((options or {}, "options"))
    rules = manager.rules()

    if isinstance(mixture, ResolvedMixture):
        resolved = resolved or mixture
        config = mixture.config
    elif isinstance(mixture, MixtureConfig):
        config = mixture
    else:
        path = Path(mixture)
        try:
            config = load_mixture(path)
        except MixtureError as exc:
            if getattr(exc, "unreadable", False) or not getattr(exc, "problems", ()):
                raise
            findings = _structure_findings(exc, path)
            return _result(
                findings, path, manager.check_names(), rules, strict, (), option_values, select_t, ignore_t
            )

    if norm_heads is not None:
        if max_action_dim is not None and max_action_dim != norm_heads.max_action_dim:
            raise PreflightUsageError(
                f"max_action_dim={max_action_dim} differs from the given norm heads' max_action_dim="
                f"{norm_heads.max_action_dim}; pass matching values (or no norm_heads)"
            )
        max_action_dim = norm_heads.max_action_dim
    max_action_dim = int(max_action_dim or config.max_action_dim or DEFAULT_MAX_ACTION_DIM)
    chunk_size = int(chunk_size or config.chunk_size or DEFAULT_CHUNK_SIZE)
    if max_action_dim < 1 or chunk_size < 1:
        raise PreflightUsageError(
            f"max_action_dim ({max_action_dim}) and chunk_size ({chunk_size}) must be positive integers"
        )

    if resolved is None:
        resolved = resolve_mixture(config)
    heads_error: Exception | None = None
    if norm_heads is None:
        from fasttok_plugin.heads import build_norm_heads

        try:
            norm_heads = build_norm_heads(resolved, max_action_dim)
        except (ValueError, ArithmeticError, MemoryError) as exc:  # NormHeadsError is a ValueError
            heads_error = exc

    context = PreflightContext(
        config=config,
        resolved=resolved,
        norm_heads=norm_heads,
        norm_heads_error=heads_error,
        max_action_dim=max_action_dim,
        chunk_size=chunk_size,
        strict=strict,
        options=MappingProxyType(option_values),
    )
    findings = manager.run_checks(context)
    if heads_error is not None:
        findings.append(
            Finding(
                code="FT901",
                severity=Severity.ERROR,
                message=f"norm heads could not be built with max_action_dim={max_action_dim}: "
                f"{type(heads_error).__name__}: {_one_line(heads_error)}",
                hint="check max_action_dim and the entries' errors; head-level checks were skipped",
                file=config.path,
                check="core",
            )
        )
    return _result(
        findings,
        config.path,
        manager.check_names(),
        rules,
        strict,
        resolved.names,
        option_values,
        select_t,
        ignore_t,
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


def _structure_findings(exc: MixtureError, path: Path) -> list[Finding]:
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
                file=problem.file or getattr(exc, "path", None) or path,
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


def _result(
    findings: list[Finding],
    path: Path | None,
    checks: tuple[str, ...],
    rules: Mapping[str, Rule],
    strict: bool,
    entry_names: tuple[str, ...],
    options: Mapping[str, Any],
    select: tuple[str, ...],
    ignore: tuple[str, ...],
) -> PreflightResult:
    kept = [f for f in findings if code_matches(f.code, select, ignore)]
    if strict:
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
        checks=checks,
        rules=MappingProxyType(dict(rules)),
        strict=strict,
        n_datasets=len(entry_names),
        options=MappingProxyType(dict(options)),
        entry_names=tuple(entry_names),
    )
