"""``fasttok fit --convention`` and ``fasttok export-stats`` (issue #12): the CLI side of the conventions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fasttok_plugin.conventions import CONVENTIONS, Convention, convention_from_dict
from fasttok_plugin.errors import ConventionError
from fasttok_plugin.exit_status import EXIT_ERRORS, EXIT_OK

__all__ = ["add_export_stats", "convention_arg"]

_FORMATS = ("openpi", "lerobot", "opentau")


def convention_arg(text: str) -> Convention:
    """A convention name, or a JSON object ``{"name": ..., <field>: <override>}``."""
    value: Any = text.strip()
    if value.startswith("{"):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object ({exc})") from None
    try:
        return convention_from_dict(value)
    except ConventionError as exc:
        raise argparse.ArgumentTypeError(" ".join(str(exc).split())) from None


def convention_help() -> str:
    """The ``--convention`` help text."""
    return (
        f"normalize as a framework does: {', '.join(CONVENTIONS)}, or a JSON object such as "
        '\'{"name": "lerobot", "normalization": "quantile"}\'; an option given here overrides its field '
        "(default: the mixture's convention, else the package's own normalization)"
    )


def add_export_stats(commands: Any, usage_error: type[Exception]) -> None:
    """Register ``fasttok export-stats DIR --format F --out PATH [--head KEY]``."""
    export = commands.add_parser(
        "export-stats",
        help="write openpi / LeRobot / OpenTau stats files from a tokenizer folder's norm_stats.json",
        description="Write the framework's own normalization file for one head, so the policy trains with "
        "the very stats the tokenizer was fit with: openpi norm_stats.json, a LeRobot stats.json action "
        "entry, or OpenTau's opentau_action_norm.json. A file this command did not write is never replaced.",
    )
    export.add_argument("directory", metavar="DIR", help="tokenizer directory written by `fasttok fit`")
    export.add_argument(
        "--format",
        required=True,
        choices=_FORMATS,
        dest="stats_format",
        help="whose stats file: openpi norm_stats.json, a LeRobot stats.json action entry, or OpenTau's "
        "opentau_action_norm.json",
    )
    export.add_argument("--out", required=True, metavar="PATH", help="file to write (or an existing folder)")
    export.add_argument("--head", metavar="KEY", help="the head's key (needed when the folder has several)")
    export.set_defaults(handler=lambda args: _cmd_export(args, usage_error))


def _cmd_export(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    from fasttok_plugin.errors import FitError, TokenizerFormatError
    from fasttok_plugin.norm_stats import export_stats

    try:
        path = export_stats(Path(args.directory), args.stats_format, Path(args.out), head=args.head)
    except TokenizerFormatError as exc:
        raise usage_error(str(exc)) from None
    except FitError as exc:
        print(f"fasttok export-stats: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_ERRORS
    print(f"wrote {path}")
    return EXIT_OK
