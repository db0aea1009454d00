"""`fasttok inspect`: print a tokenizer folder's fit report (tables, text histograms, an optional PNG)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from fasttok_plugin._report_text import render_histograms, render_report
from fasttok_plugin.exit_status import EXIT_OK, EXIT_USAGE

__all__ = ["add_inspect"]


def add_inspect(commands: Any) -> None:
    """Add `fasttok inspect DIR [--plot FILE.png] [--json]`."""
    inspect = commands.add_parser(
        "inspect",
        help="print a tokenizer directory's fit report",
        description="Print fit_report.json as tables plus a text histogram of held-out token lengths per "
        "head.",
    )
    inspect.add_argument("directory", metavar="DIR", help="tokenizer directory written by `fasttok fit`")
    inspect.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also save a PNG: per-head token-length histograms with p50/p99 and the budget, plus the "
        "overall CDF (needs matplotlib)",
    )
    inspect.add_argument("--json", action="store_true", help="print the raw report as JSON instead")
    inspect.set_defaults(handler=_cmd_inspect)


def _cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from fasttok_plugin.cli import PROG, _UsageError
    from fasttok_plugin.fitting import FitError, FitReport

    directory = Path(args.directory)
    if not directory.is_dir():
        raise _UsageError(
            f"{directory} is not a directory; pass a tokenizer directory written by `fasttok fit`"
        )
    try:
        report = FitReport.load(directory)
    except FitError as exc:
        raise _UsageError(str(exc)) from None
    # The PNG first: a reader that closes stdout early (`| head`) must not stop it from being written.
    plot_error = _plot(report, Path(args.plot)) if args.plot else None
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(render_report(report, directory=directory))
        sys.stdout.write(render_histograms(report))
    if plot_error is not None:
        print(f"{PROG} inspect: error: {plot_error}", file=sys.stderr)
        return EXIT_USAGE
    if args.plot:
        print(f"wrote {args.plot}")
    return EXIT_OK


def _plot(report: Any, path: Path) -> str | None:
    """Write the ``--plot`` PNG; the one-line reason when it cannot be written (the report still prints)."""
    if importlib.util.find_spec("matplotlib") is None:
        return (
            "--plot needs matplotlib, which is not installed; install it with "
            "`pip install 'fasttok-plugin[plot]'` (the report above is complete without it)"
        )
    from fasttok_plugin._report_plot import plot_report

    try:
        plot_report(report, path)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return f"cannot write the plot {path}: {reason}; pass a --plot path in a writable folder"
    except ValueError as exc:
        return f"nothing to plot for {path}: {exc}"
    return None
