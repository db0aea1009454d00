"""``fasttok tune``: the largest scale whose held-out sequences fit the policy's token budget.

Registered by `fasttok_plugin.cli` (whose fit options, settings and error handling it shares); the tuner
itself is `fasttok_plugin.fit.tune.tune_tokenizer`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fasttok_plugin._arg_types import positive_float_arg, positive_int_arg

__all__ = ["add_tune"]


def _quantile_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def add_tune(commands: Any) -> None:
    """Add the ``tune`` sub-command (the fit's options plus the goal) to ``commands``."""
    from fasttok_plugin.cli import add_fit_options

    tune = commands.add_parser(
        "tune",
        help="choose the scale for a token budget (or an error target), then fit and write the tokenizer",
        description="Sample the mixture once, then search the DCT scale (doubling / halving from --scale, "
        "then bisection), fitting on the same chunks at every step: the largest scale whose held-out "
        "--quantile of token lengths fits --max-action-tokens for every head, or the smallest whose "
        "round-trip MSE (normalized units) is at most --target-mse for every head. Prints the walked "
        "curve and writes the chosen tokenizer (the folder `fasttok fit --scale <chosen>` writes, with the "
        "walk in its report).",
    )
    tune.add_argument("mixture", metavar="MIXTURE", help="mixture JSON file")
    tune.add_argument("--out", required=True, metavar="DIR", help="tokenizer directory to write (atomically)")
    goal = tune.add_mutually_exclusive_group(required=True)
    goal.add_argument(
        "--max-action-tokens",
        dest="tune_budget",
        type=positive_int_arg,
        metavar="N",
        help="the policy's token budget (e.g. pi0_fast max_action_tokens)",
    )
    goal.add_argument(
        "--target-mse",
        type=positive_float_arg,
        metavar="X",
        help="instead of a budget: the largest round-trip MSE accepted (shortest sequences meeting it)",
    )
    tune.add_argument(
        "--quantile",
        type=_quantile_arg,
        default=0.99,
        metavar="Q",
        help="held-out length quantile that must fit the budget, per head (0.99; 1 = the longest)",
    )
    add_fit_options(tune, budget=False)
    tune.set_defaults(handler=_cmd_tune)


def _cmd_tune(args: argparse.Namespace) -> int:
    from fasttok_plugin.cli import _UNSET, PROG, fit_settings, render_report, run_guarded
    from fasttok_plugin.exit_status import EXIT_OK
    from fasttok_plugin.fitting import tune_tokenizer

    # The budget is the goal and the report's truncation reference (the default one under --target-mse).
    args.max_action_tokens = args.tune_budget if args.tune_budget is not None else _UNSET
    settings = fit_settings(args)
    out_dir = Path(args.out)
    progress = not args.quiet and sys.stderr.isatty()
    if not args.quiet:
        print(f"{PROG} tune: sampling once, then walking the scale from {settings.scale:g}", flush=True)
    status, result = run_guarded(
        args,
        lambda: tune_tokenizer(
            Path(args.mixture),
            settings,
            max_action_tokens=args.tune_budget,
            quantile=args.quantile,
            target_mse=args.target_mse,
            out_dir=out_dir,
            progress=progress,
        ),
    )
    if status != EXIT_OK:
        return status
    _, report, tuned = result
    sys.stdout.write(tuned.curve_text())
    if not args.quiet:
        sys.stdout.write(render_report(report, directory=out_dir, datasets=False))
    print(f"chose scale {tuned.scale:g}; wrote {out_dir} (inspect it with `{PROG} inspect {out_dir}`)")
    return EXIT_OK
