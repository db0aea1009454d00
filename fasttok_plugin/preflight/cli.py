"""``fasttok-preflight``: check mixture files like a linter (exit 0 clean, 1 errors, 2 usage/unreadable).

Start-up matters (it runs in CI and pre-commit), so this path never imports torch or Lightning.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from fasttok_plugin import __version__
from fasttok_plugin._arg_types import add_transform_flags, positive_int_arg, transform_from_args
from fasttok_plugin._doclinks import doc_path
from fasttok_plugin.defaults import DEFAULT_METADATA_THREADS, HEAD_GROUPINGS
from fasttok_plugin.exit_status import EXIT_ERRORS, EXIT_OK, EXIT_USAGE, one_line, report_internal_error
from fasttok_plugin.preflight._fragments import includers, is_fragment
from fasttok_plugin.preflight.config import ProjectConfig, find_project_config
from fasttok_plugin.preflight.context import OptionRegistry
from fasttok_plugin.preflight.findings import PreflightResult, PreflightUsageError
from fasttok_plugin.preflight.formats import FORMATS, github_annotation, printable, render

if TYPE_CHECKING:
    from fasttok_plugin.mixture import MixtureError
    from fasttok_plugin.preflight.manager import PreflightPlugins

__all__ = ["build_parser", "main"]

PROG = "fasttok-preflight"


def build_parser(
    registry: OptionRegistry | None = None, *, for_prepass: bool = False
) -> argparse.ArgumentParser:
    """The argument parser; ``registry`` adds the options declared by plugins."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        add_help=not for_prepass,
        description="Check LeRobot mixture files before any compute is spent (metadata only).",
        epilog="Exit status: 0 clean (warnings allowed unless --strict), 1 errors found, 2 usage error or "
        "unreadable input. Defaults may come from [tool.fasttok.preflight] in the nearest pyproject.toml; "
        f"the command line wins. Codes and plugins: {doc_path('preflight.md')}.",
    )
    if not for_prepass:
        parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "mixtures", nargs="*" if for_prepass else "+", metavar="MIXTURE", help="mixture JSON file(s) to check"
    )
    parser.add_argument(
        "--max-action-dim", type=positive_int_arg, metavar="N", help="policy action dim (default 32)"
    )
    parser.add_argument(
        "--chunk-size", type=positive_int_arg, metavar="N", help="steps per action chunk (default 50)"
    )
    parser.add_argument(
        "--head-grouping",
        choices=HEAD_GROUPINGS,
        help="norm heads per (robot_type, control_mode), one global head, or one per dataset entry "
        "(default: the mixture's, else robot_control)",
    )
    parser.add_argument(
        "--stats-source",
        choices=("stored", "data"),
        help="where the fit's norm stats come from (default: data for transforms, else stored)",
    )
    add_transform_flags(parser)
    _add_output_options(parser)
    if registry is not None:
        _add_plugin_options(parser, registry)
    return parser


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """Output, filtering, plugin and run options (everything but the mixture's own settings)."""
    parser.add_argument("--format", choices=tuple(FORMATS), help="output format (default text)")
    parser.add_argument(
        "--select",
        action="append",
        metavar="CODES",
        help="report only these codes or prefixes (comma-separated)",
    )
    parser.add_argument(
        "--ignore",
        action="append",
        metavar="CODES",
        help="do not report these codes or prefixes (comma-separated)",
    )
    parser.add_argument(
        "--strict",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="treat warnings as errors (duplicate fallbacks included)",
    )
    parser.add_argument(
        "-p",
        dest="plugins",
        action="append",
        default=[],
        metavar="PLUGIN",
        help="load a plugin module, or disable a plugin with no:NAME (repeatable)",
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour text output (default: on a TTY)",
    )
    parser.add_argument("--isolated", action="store_true", help="ignore pyproject.toml configuration")
    parser.add_argument(
        "--jobs",
        type=positive_int_arg,
        metavar="N",
        help=f"dataset metadata reads in flight (default {DEFAULT_METADATA_THREADS}; 1: one at a time)",
    )
    parser.add_argument(
        "--skip-fragments",
        action="store_true",
        help="do not check files without datasets ($ref fragments) on their own; the mixtures that include "
        "them check their content (the pre-commit hook sets this)",
    )


def _add_plugin_options(parser: argparse.ArgumentParser, registry: OptionRegistry) -> None:
    """One flag per option the loaded plugins declare (``--min-frames``), in a group of their own."""
    if not len(registry):
        return
    group = parser.add_argument_group("plugin options")
    for option in registry:
        if option.type is bool:
            group.add_argument(
                option.flag,
                dest=f"plugin__{option.name}",
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{option.help} [plugin {option.plugin}]",
            )
        else:
            group.add_argument(
                option.flag,
                dest=f"plugin__{option.name}",
                default=None,
                metavar=option.metavar or option.name.upper(),
                help=f"{option.help} (default {option.default!r}) [plugin {option.plugin}]",
            )


def _project_config(mixture: str, isolated: bool) -> ProjectConfig:
    if isolated:
        return ProjectConfig()
    try:
        path = Path(mixture).expanduser()
    except RuntimeError:  # "~user" of no known user: reading the mixture reports it
        path = Path(mixture)
    return find_project_config(path.absolute().parent)


def _use_color(choice: str, stream: TextIO) -> bool:
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def _run(argv: Sequence[str] | None) -> int:
    from fasttok_plugin.mixture import MixtureError

    args_list = list(sys.argv[1:] if argv is None else argv)
    manager, projects = _load_plugins(args_list)
    registry = manager.options()
    # Pass 2: the full parser, plugin options included (argparse exits 2 on usage errors itself).
    args = build_parser(registry).parse_args(args_list)
    cli_options = {
        key.removeprefix("plugin__"): value
        for key, value in vars(args).items()
        if key.startswith("plugin__") and value is not None
    }
    known_keys = {option.name for option in registry}

    results: list[PreflightResult] = []
    exit_code = EXIT_OK
    fmt = args.format
    unreadable: list[tuple[Path, MixtureError]] = []
    mixtures = list(args.mixtures)
    if args.skip_fragments:
        fragments = [m for m in mixtures if is_fragment(m)]
        mixtures = [m for m in mixtures if m not in fragments]
        _note_fragments(fragments, mixtures)
    for mixture in mixtures:
        project = projects.get(mixture) or _project_config(mixture, args.isolated)
        project.check_plugin_keys(known_keys)
        fmt = fmt or project.builtin.get("format")
        options = registry.resolve(
            (project.plugin_options, project.source), (cli_options, "the command line")
        )
        try:
            result = _check(mixture, args, project, manager, options)
        except MixtureError as exc:
            if not exc.unreadable:
                raise
            unreadable.append((Path(mixture), exc))
            exit_code = EXIT_USAGE
            continue
        results.append(result)
        if not result.ok:
            exit_code = max(exit_code, EXIT_ERRORS)
    _print(results, unreadable, fmt or "text", args.color)
    return exit_code


def _load_plugins(args_list: list[str]) -> tuple[PreflightPlugins, dict[str, ProjectConfig]]:
    """Pass 1: find the mixtures and ``-p`` before the plugins that define the other options are loaded."""
    from fasttok_plugin.preflight import PreflightPlugins

    pre, _unknown = build_parser(for_prepass=True).parse_known_args(args_list)
    projects = {m: _project_config(m, pre.isolated) for m in pre.mixtures}
    specs: list[str] = []
    for project in projects.values():
        for spec in project.builtin.get("plugins", ()):
            if spec not in specs:
                specs.append(spec)
    specs += pre.plugins
    return PreflightPlugins(specs), projects


def _check(
    mixture: str,
    args: argparse.Namespace,
    project: ProjectConfig,
    manager: PreflightPlugins,
    options: dict[str, Any],
) -> PreflightResult:
    """Preflight one mixture: the command line wins over ``pyproject.toml``, which wins over the defaults."""
    from fasttok_plugin.preflight import run_preflight

    settings = project.builtin
    return run_preflight(
        mixture,
        max_action_dim=args.max_action_dim or settings.get("max_action_dim"),
        chunk_size=args.chunk_size or settings.get("chunk_size"),
        head_grouping=args.head_grouping,
        transform=_transform(args),
        stats_source=args.stats_source,
        strict=args.strict if args.strict is not None else bool(settings.get("strict", False)),
        select=args.select if args.select is not None else settings.get("select", ()),
        ignore=args.ignore if args.ignore is not None else settings.get("ignore", ()),
        plugins=manager,
        options=options,
        jobs=args.jobs,
    )


def _note_fragments(fragments: Sequence[str], mixtures: Sequence[str]) -> None:
    """One stderr line per skipped fragment, naming the given mixtures that check it (if any)."""
    for fragment in fragments:
        checked_by = includers(fragment, mixtures)
        where = (
            "checked through " + ", ".join(str(m) for m in checked_by)
            if checked_by
            else "checked by the mixtures that include it"
        )
        print(f"{PROG}: skipped {fragment}: a $ref fragment (no datasets); {where}", file=sys.stderr)


def _transform(args: argparse.Namespace) -> Any:
    """The transform flags' `ActionTransform` (None: the mixture's keys); a bad value is a usage error."""
    from fasttok_plugin.errors import TransformError

    try:
        return transform_from_args(args)
    except TransformError as exc:
        raise PreflightUsageError(f"{exc} (option --{exc.field.replace('_', '-')})") from None


def _print(
    results: list[PreflightResult], unreadable: list[tuple[Path, MixtureError]], fmt: str, color: str
) -> None:
    """Unreadable files on stderr (and as annotations for ``github``), then the report on stdout."""
    for path, exc in unreadable:
        message = one_line(exc)
        print(f"{PROG}: error: {printable(message)}", file=sys.stderr)
        if fmt == "github":
            print(github_annotation("error", message, file=str(path), title="unreadable mixture"))
    if results or fmt != "text":
        sys.stdout.write(render(results, fmt, color=_use_color(color, sys.stdout)))
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 clean, 1 errors, 2 usage or unreadable input)."""
    try:
        return _run(argv)
    except PreflightUsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into `head`
        return EXIT_OK
    except Exception as exc:
        return report_internal_error(PROG, exc)


if __name__ == "__main__":
    sys.exit(main())
