"""``fasttok``: fit a FAST tokenizer on a mixture (``fasttok fit``), tune its scale for a token budget
(``fasttok tune``, in `fasttok_plugin._tune_cli`) and read its report (``fasttok inspect``).

Exit status: 0 success; 1 the mixture or its data has problems (preflight errors are listed, nothing is
sampled); 2 usage error or unreadable input. ``fasttok --help`` stays fast: torch, tokenizers and the
fit pipeline are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fasttok_plugin import __version__
from fasttok_plugin._arg_types import (
    add_transform_flags,
    fraction_arg,
    non_negative_int_arg,
    optional_positive_int_arg,
    positive_float_arg,
    positive_int_arg,
    transform_from_args,
)
from fasttok_plugin._cli_conventions import add_export_stats, convention_arg, convention_help
from fasttok_plugin._doclinks import doc_path
from fasttok_plugin._inspect_cli import add_inspect
from fasttok_plugin._printable import printable_lines
from fasttok_plugin._report_text import render_histograms, render_report
from fasttok_plugin._tune_cli import add_tune
from fasttok_plugin.defaults import HEAD_GROUPINGS
from fasttok_plugin.exit_status import EXIT_ERRORS, EXIT_OK, EXIT_USAGE, one_line, report_internal_error

__all__ = ["build_parser", "main", "render_histograms", "render_report"]

PROG = "fasttok"
_UNSET: Any = object()  # argparse converts string defaults with `type`; a sentinel object it leaves alone


class _UsageError(Exception):
    """A user mistake that maps to exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The ``fasttok`` argument parser (sub-commands ``fit`` and ``inspect``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fit FAST action tokenizers on LeRobot mixtures with the exact normalization your "
        "policy trains with.",
        epilog="Exit status: 0 success, 1 problems in the mixture or its data (preflight errors stop the fit "
        f"before sampling), 2 usage error or unreadable input. See {doc_path('fitting.md')}.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", help="`fasttok COMMAND --help` lists its options"
    )
    commands.required = True
    _add_fit(commands)
    add_tune(commands)
    add_inspect(commands)
    add_export_stats(commands, _UsageError)
    return parser


def _add_fit(commands: Any) -> None:
    fit = commands.add_parser(
        "fit",
        help="fit a tokenizer on a mixture and write it with its fit_report.json",
        description="Preflight, sample chunks by mixture weight, normalize them with the policy's Normalize "
        "module, fit the FAST tokenizer and report token lengths on held-out chunks.",
    )
    fit.add_argument("mixture", metavar="MIXTURE", help="mixture JSON file")
    fit.add_argument("--out", required=True, metavar="DIR", help="tokenizer directory to write (atomically)")
    add_fit_options(fit)
    fit.set_defaults(handler=_cmd_fit)


def add_fit_options(fit: argparse.ArgumentParser, *, budget: bool = True) -> None:
    """Every fit setting's option (``fasttok fit`` and ``fasttok tune`` share them; tune owns the budget)."""
    fit.add_argument(
        "--chunk-size", type=positive_int_arg, metavar="N", help="steps per chunk (default: mixture, 50)"
    )
    fit.add_argument(
        "--max-action-dim",
        type=positive_int_arg,
        metavar="N",
        help="padded action width (default: mixture, 32)",
    )
    fit.add_argument(
        "--head-grouping",
        choices=HEAD_GROUPINGS,
        help="norm heads per (robot_type, control_mode), one global head, or one per dataset entry "
        "(default: mixture, robot_control)",
    )
    _add_fit_numbers(fit, budget=budget)
    fit.add_argument("--convention", type=convention_arg, metavar="NAME|JSON", help=convention_help())
    fit.add_argument(
        "--normalization",
        choices=("min_max", "mean_std", "quantile", "quantile10", "identity"),
        default="min_max",
        help="how actions are normalized before the fit, as the policy does (default min_max); "
        "quantile: q01/q99 to [-1, 1]; quantile10: q10/q90 (both need stats from the data)",
    )
    fit.add_argument(
        "--stats-source",
        choices=("stored", "data"),
        default=None,
        help="norm stats from the datasets' stats.json (stored) or computed from the frames each head "
        "trains on (data; cached); default: data for the quantile modes, else stored",
    )
    add_transform_flags(fit)
    fit.add_argument(
        "--zero-range",
        choices=("center", "legacy"),
        default="center",
        help="min_max dims whose stats range is zero: center (default) maps them to 0.0, legacy to -1.0 "
        "like older pipelines",
    )
    fit.add_argument(
        "--pipeline",
        choices=("reference", "char"),
        default="char",
        help="char (default): full alphabet, no pre-tokenizer; reference: byte-identical to the "
        "reference UniversalActionProcessor.fit",
    )
    fit.add_argument(
        "--order",
        choices=("time", "dims", "dc_dims"),
        default="time",
        help="flatten order of the DCT coefficients: time (the reference's: coarse motion of every dim "
        "first), dims (each dim's coefficients together: shortest) or dc_dims (every dim's DC first, "
        f"then dim-major); not time needs --pipeline char (measurements: {doc_path('fitting.md')})",
    )
    fit.add_argument(
        "--rounding",
        choices=("nearest", "token_aware"),
        default="nearest",
        help="how encode rounds the scaled coefficients: nearest (the reference's) or token_aware (rounds "
        "some values the other way when that shortens the chunk's sequence: fewer tokens, slightly larger "
        "error, much slower encode); token_aware needs --pipeline char",
    )
    fit.add_argument(
        "--layout",
        choices=("padded", "native"),
        default=None,
        help="padded: fit on chunks zero-padded to --max-action-dim (the reference); native: each chunk at "
        "its dataset's native action width, one tokenizer over the mixed widths, as LeRobot pi0_fast and "
        "openpi tokenize (default: mixture, padded)",
    )
    fit.add_argument(
        "--on-dataset-error",
        choices=("raise", "skip"),
        default="raise",
        help="a dataset whose frames cannot be read stops the fit (raise) or is left out (skip)",
    )
    fit.add_argument("--quiet", "-q", action="store_true", help="no progress bars and no summary table")
    fit.add_argument("--verbose", "-v", action="store_true", help="log each phase")


def _add_fit_numbers(fit: argparse.ArgumentParser, *, budget: bool) -> None:
    """The fit's numeric settings: BPE, corpus sizes, held-out share, token budget, seed, workers."""
    fit.add_argument(
        "--vocab-size", type=positive_int_arg, default=1024, metavar="N", help="BPE vocabulary (1024)"
    )
    fit.add_argument("--scale", type=positive_float_arg, default=10.0, metavar="X", help="DCT scale (10)")
    fit.add_argument(
        "--min-frequency", type=non_negative_int_arg, default=2, metavar="N", help="BPE min pair count (2)"
    )
    fit.add_argument(
        "--total-chunks", type=positive_int_arg, metavar="N", help="chunks sampled over the mixture (100000)"
    )
    fit.add_argument(
        "--max-fit-chunks",
        type=optional_positive_int_arg,
        default=_UNSET,
        metavar="N",
        help="cap of the fit corpus, a stratified subset ('none' = no cap; default 30000)",
    )
    fit.add_argument(
        "--heldout-fraction",
        type=fraction_arg,
        metavar="F",
        help="share of chunks held out for the report (0.1)",
    )
    fit.add_argument(
        "--max-token-length",
        type=optional_positive_int_arg,
        default=10000,
        metavar="N",
        help="longest BPE merge in characters (10000; 'none' = unlimited)",
    )
    if budget:
        fit.add_argument(
            "--max-action-tokens",
            type=optional_positive_int_arg,
            default=_UNSET,
            metavar="N",
            help="the policy's token budget the truncation rate is measured against (256; 'none' = skip)",
        )
    fit.add_argument("--seed", type=non_negative_int_arg, default=0, metavar="N", help="sampling seed (0)")
    fit.add_argument(
        "--workers",
        type=non_negative_int_arg,
        default=0,
        metavar="N",
        help="sampler processes (0 = in-process)",
    )


# ---------------------------------------------------------------------------------------------- fit


def _settings(args: argparse.Namespace) -> Any:
    from fasttok_plugin.fitting import (
        DEFAULT_HELDOUT_FRACTION,
        DEFAULT_MAX_ACTION_TOKENS,
        DEFAULT_MAX_FIT_CHUNKS,
        DEFAULT_TOTAL_CHUNKS,
        FitSettings,
    )

    return FitSettings(
        chunk_size=args.chunk_size,
        max_action_dim=args.max_action_dim,
        vocab_size=args.vocab_size,
        scale=args.scale,
        min_frequency=args.min_frequency,
        max_token_length=args.max_token_length,
        pipeline=args.pipeline,
        total_chunks=args.total_chunks or DEFAULT_TOTAL_CHUNKS,
        max_fit_chunks=DEFAULT_MAX_FIT_CHUNKS if args.max_fit_chunks is _UNSET else args.max_fit_chunks,
        heldout_fraction=args.heldout_fraction or DEFAULT_HELDOUT_FRACTION,
        max_action_tokens=(
            DEFAULT_MAX_ACTION_TOKENS if args.max_action_tokens is _UNSET else args.max_action_tokens
        ),
        seed=args.seed,
        workers=args.workers,
        normalization=args.normalization,
        zero_range=args.zero_range,
        on_dataset_error=args.on_dataset_error,
        head_grouping=args.head_grouping,
        stats_source=args.stats_source,
        transform=transform_from_args(args),
        order=args.order,
        rounding=args.rounding,
        layout=args.layout or "padded",
        convention=args.convention,
    )


def _cmd_fit(args: argparse.Namespace) -> int:
    from fasttok_plugin.fitting import fit_tokenizer

    settings = fit_settings(args)
    out_dir = Path(args.out)
    progress = not args.quiet and sys.stderr.isatty()
    status, result = run_guarded(
        args, lambda: fit_tokenizer(Path(args.mixture), settings, out_dir=out_dir, progress=progress)
    )
    if status != EXIT_OK:
        return status
    if not args.quiet:
        sys.stdout.write(render_report(result[1], directory=out_dir, datasets=False))
    print(f"wrote {out_dir} (inspect it with `{PROG} inspect {out_dir}`)")
    return EXIT_OK


def fit_settings(args: argparse.Namespace) -> Any:
    """The `FitSettings` of the parsed options; a bad combination is a usage error (exit 2)."""
    from fasttok_plugin.errors import TransformError
    from fasttok_plugin.fitting import FitError

    for option, value, default in (("order", args.order, "time"), ("rounding", args.rounding, "nearest")):
        if value != default and args.pipeline == "reference":
            # One line naming both options (FitSettings would list it as a settings problem).
            raise _UsageError(
                f"--{option} {value} needs --pipeline char: the reference pipeline is the reference FAST "
                f"tokenizer exactly ({option} {default}); pass --pipeline char or drop --{option}"
            )
    try:
        return _settings(args)
    except TransformError as exc:
        raise _UsageError(f"{exc} (option --{exc.field.replace('_', '-')})") from None
    except FitError as exc:
        raise _UsageError(str(exc)) from None


def run_guarded(args: argparse.Namespace, run: Callable[[], Any]) -> tuple[int, Any]:
    """Run a fit-like command: ``(EXIT_OK, result)``, or the exit status after printing the one-line error.

    The out folder is checked first; the mixture's folder and its parents are never an output folder.
    """
    from fasttok_plugin.codec import CodecError
    from fasttok_plugin.fit._outdir import check_out_dir
    from fasttok_plugin.fitting import FitError, OutDirError
    from fasttok_plugin.heads import NormHeadsError
    from fasttok_plugin.mixture import MixtureError
    from fasttok_plugin.preflight import PreflightError, PreflightUsageError
    from fasttok_plugin.sampling import SamplingError

    mixture, out_dir, command = Path(args.mixture), Path(args.out), args.command
    try:
        check_out_dir(out_dir.absolute(), protect=(mixture,))
        return EXIT_OK, run()
    except PreflightError as exc:
        from fasttok_plugin.preflight.formats import render_text

        sys.stdout.write(render_text([exc.result]))
        print(
            f"{PROG} {command}: preflight found {len(exc.result.errors)} error(s) in {mixture}; nothing was "
            f"sampled "
            f"and {out_dir} was not written. Fix them (see the findings above) or check with "
            f"`fasttok-preflight {mixture}`.",
            file=sys.stderr,
        )
    except MixtureError as exc:
        if getattr(exc, "unreadable", False):
            raise _UsageError(one_line(exc)) from None
        print(f"{PROG} {command}: error: {_error_text(exc)}", file=sys.stderr)
    except (PreflightUsageError, OutDirError) as exc:
        raise _UsageError(str(exc)) from None
    except CodecError as exc:
        # The codec names the settings (vocab_size, scale); say which options set them here.
        print(
            f"{PROG} {command}: error: {_error_text(exc)} (options --vocab-size / --scale)", file=sys.stderr
        )
    except (FitError, SamplingError, NormHeadsError) as exc:
        print(f"{PROG} {command}: error: {_error_text(exc)}", file=sys.stderr)
    return EXIT_ERRORS, None


# --------------------------------------------------------------------------------------------- main


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    root = logging.getLogger("fasttok_plugin")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


def _error_text(exc: BaseException) -> str:
    """An error's message safe to print: names from user files cannot forge output lines."""
    return printable_lines(str(exc).splitlines())


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fasttok``; returns the exit status (0 ok, 1 problems in the input, 2 usage/unreadable)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(bool(getattr(args, "verbose", False)))
    try:
        return int(args.handler(args))
    except _UsageError as exc:
        print(f"{PROG} {args.command}: error: {_error_text(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        return report_internal_error(PROG, exc)


if __name__ == "__main__":
    # `python -m fasttok_plugin.cli`: run the imported module's main, so `fasttok tune` (whose handler
    # imports this module by name) raises the same `_UsageError` class that main catches.
    from fasttok_plugin.cli import main as _main

    sys.exit(_main())
