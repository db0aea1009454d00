"""``fasttok``: fit a FAST tokenizer on a mixture (``fasttok fit``) and read its report (``fasttok inspect``).

Exit status: 0 success; 1 the mixture or its data has problems (preflight errors are listed, nothing is
sampled); 2 usage error or unreadable input. ``fasttok --help`` stays fast: torch, tokenizers and the
fit pipeline are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fasttok_plugin.exit_status import EXIT_ERRORS, EXIT_OK, EXIT_USAGE, report_internal_error

if TYPE_CHECKING:  # pragma: no cover
    from fasttok_plugin.fitting import FitReport

__all__ = ["build_parser", "main", "render_histograms", "render_report"]

PROG = "fasttok"
_BAR_WIDTH = 40
_UNSET: Any = object()  # argparse converts string defaults with `type`; a sentinel object it leaves alone


class _UsageError(Exception):
    """A user mistake that maps to exit status 2."""


def _int_at_least(minimum: int) -> Any:
    """An argparse ``type`` accepting integers >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{text!r} must be a positive integer" if minimum == 1 else f"{text!r} must be >= {minimum}"
            )
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _optional_positive_int(text: str) -> int | None:
    if text.strip().lower() in ("none", "all", "0"):
        return None
    return _positive_int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _fraction(text: str) -> float:
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1 (exclusive)")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``fasttok`` argument parser (sub-commands ``fit`` and ``inspect``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fit FAST action tokenizers on LeRobot mixtures with the exact normalization your "
        "policy trains with.",
        epilog="Exit status: 0 success, 1 problems in the mixture or its data (preflight errors stop the fit "
        "before sampling), 2 usage error or unreadable input. See docs/fitting.md.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    fit = commands.add_parser(
        "fit",
        help="fit a tokenizer on a mixture and write it with its fit_report.json",
        description="Preflight, sample chunks by mixture weight, normalize them with the policy's Normalize "
        "module, fit the FAST tokenizer and report token lengths on held-out chunks.",
    )
    fit.add_argument("mixture", metavar="MIXTURE", help="mixture JSON file")
    fit.add_argument("--out", required=True, metavar="DIR", help="tokenizer directory to write (atomically)")
    fit.add_argument(
        "--chunk-size", type=_positive_int, metavar="N", help="steps per chunk (default: mixture, 50)"
    )
    fit.add_argument(
        "--max-action-dim", type=_positive_int, metavar="N", help="padded action width (default: mixture, 32)"
    )
    fit.add_argument(
        "--vocab-size", type=_positive_int, default=1024, metavar="N", help="BPE vocabulary (1024)"
    )
    fit.add_argument("--scale", type=_positive_float, default=10.0, metavar="X", help="DCT scale (10)")
    fit.add_argument(
        "--min-frequency", type=_non_negative_int, default=2, metavar="N", help="BPE min pair count (2)"
    )
    fit.add_argument(
        "--total-chunks", type=_positive_int, metavar="N", help="chunks sampled over the mixture (100000)"
    )
    fit.add_argument(
        "--max-fit-chunks",
        type=_optional_positive_int,
        default=_UNSET,
        metavar="N",
        help="cap of the fit corpus, a stratified subset ('none' = no cap; default 30000)",
    )
    fit.add_argument(
        "--heldout-fraction",
        type=_fraction,
        metavar="F",
        help="share of chunks held out for the report (0.1)",
    )
    fit.add_argument(
        "--max-token-length",
        type=_optional_positive_int,
        default=10000,
        metavar="N",
        help="longest BPE merge in characters (10000; 'none' = unlimited)",
    )
    fit.add_argument(
        "--max-action-tokens",
        type=_optional_positive_int,
        default=_UNSET,
        metavar="N",
        help="the policy's token budget the truncation rate is measured against (256; 'none' = skip)",
    )
    fit.add_argument("--seed", type=_non_negative_int, default=0, metavar="N", help="sampling seed (0)")
    fit.add_argument(
        "--workers", type=_non_negative_int, default=0, metavar="N", help="sampler processes (0 = in-process)"
    )
    fit.add_argument("--normalization", choices=("min_max", "mean_std", "identity"), default="min_max")
    fit.add_argument("--zero-range", choices=("center", "legacy"), default="center")
    fit.add_argument("--pipeline", choices=("reference", "char"), default="char")
    fit.add_argument(
        "--on-dataset-error",
        choices=("raise", "skip"),
        default="raise",
        help="a dataset whose frames cannot be read stops the fit (raise) or is left out (skip)",
    )
    fit.add_argument("--quiet", "-q", action="store_true", help="no progress bars and no summary table")
    fit.add_argument("--verbose", "-v", action="store_true", help="log each phase")
    fit.set_defaults(handler=_cmd_fit)

    inspect = commands.add_parser(
        "inspect",
        help="print a tokenizer directory's fit report",
        description="Print fit_report.json as tables plus a text histogram of held-out token lengths per "
        "head.",
    )
    inspect.add_argument("directory", metavar="DIR", help="tokenizer directory written by `fasttok fit`")
    inspect.add_argument(
        "--plot", metavar="FILE.png", help="also save token-length histograms (needs matplotlib)"
    )
    inspect.add_argument("--json", action="store_true", help="print the raw report as JSON instead")
    inspect.set_defaults(handler=_cmd_inspect)
    return parser


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
    )


def _cmd_fit(args: argparse.Namespace) -> int:
    from fasttok_plugin.codec import CodecError
    from fasttok_plugin.fitting import FitError, OutDirError, fit_tokenizer
    from fasttok_plugin.heads import NormHeadsError
    from fasttok_plugin.mixture import MixtureError
    from fasttok_plugin.preflight import PreflightError, PreflightUsageError
    from fasttok_plugin.sampling import SamplingError

    try:
        settings = _settings(args)
    except FitError as exc:
        raise _UsageError(str(exc)) from None
    mixture = Path(args.mixture)
    out_dir = Path(args.out)
    progress = not args.quiet and sys.stderr.isatty()
    try:
        _, report = fit_tokenizer(mixture, settings, out_dir=out_dir, progress=progress)
    except PreflightError as exc:
        from fasttok_plugin.preflight.formats import render_text

        sys.stdout.write(render_text([exc.result]))
        print(
            f"{PROG} fit: preflight found {len(exc.result.errors)} error(s) in {mixture}; nothing was "
            f"sampled "
            f"and {out_dir} was not written. Fix them (see the findings above) or check with "
            f"`fasttok-preflight {mixture}`.",
            file=sys.stderr,
        )
        return EXIT_ERRORS
    except MixtureError as exc:
        if getattr(exc, "unreadable", False):
            raise _UsageError(_one_line(exc)) from None
        print(f"{PROG} fit: error: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    except PreflightUsageError as exc:
        raise _UsageError(str(exc)) from None
    except OutDirError as exc:
        raise _UsageError(str(exc)) from None
    except FitError as exc:
        print(f"{PROG} fit: error: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    except CodecError as exc:
        # The codec names the settings (vocab_size, scale); say which options set them here.
        print(f"{PROG} fit: error: {exc} (options --vocab-size / --scale)", file=sys.stderr)
        return EXIT_ERRORS
    except (SamplingError, NormHeadsError) as exc:
        print(f"{PROG} fit: error: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    if not args.quiet:
        sys.stdout.write(render_report(report, directory=out_dir, datasets=False))
    print(f"wrote {out_dir} (inspect it with `{PROG} inspect {out_dir}`)")
    return EXIT_OK


# ------------------------------------------------------------------------------------------ inspect


def _cmd_inspect(args: argparse.Namespace) -> int:
    import json

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
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(render_report(report, directory=directory))
        sys.stdout.write(render_histograms(report))
    if args.plot:
        if importlib.util.find_spec("matplotlib") is None:
            print(
                f"{PROG} inspect: --plot needs matplotlib, which is not installed; install it with "
                f"`pip install 'fasttok-plugin[plot]'` (the report above is complete without it)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        path = _plot(report, Path(args.plot))
        print(f"wrote {path}")
    return EXIT_OK


def _fmt(value: float | int | None, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return format(value, spec)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    out = [indent + "  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        out.append(indent + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return out


def render_report(report: FitReport, *, directory: Path | None = None, datasets: bool = True) -> str:
    """Render a fit report as text tables (summary, per head, per dataset, warnings)."""
    tok = report.tokenizer
    lengths = report.token_lengths
    lines = []
    where = f"{directory}  " if directory is not None else ""
    lines.append(
        f"Tokenizer   {where}({tok.get('pipeline')}, vocab {tok.get('vocab_size')}, scale "
        f"{_fmt(tok.get('scale'), 'g')}, tokens {tok.get('min_token')}..{tok.get('max_token')})"
    )
    lines.append(
        f"Fingerprint fit {report.fit_fingerprint[:16]}  norm heads {report.norm_heads_fingerprint[:16]}  "
        f"mixture sha256 {(report.mixture_sha256 or '-')[:16]}"
    )
    lines.append(
        f"Corpus      chunks {report.chunk_size}x{report.action_dim}, "
        f"{report.normalization}/{report.zero_range}; "
        f"sampled {report.sampled}, fit {report.fit}, held-out {report.heldout}, NaN/Inf skipped "
        f"{report.skipped_nonfinite}"
    )
    if lengths is not None:
        budget = report.max_action_tokens
        lines.append(
            f"Held-out    tokens/chunk mean {lengths.mean:.1f}  p50 {lengths.p50:.0f}  "
            f"p90 {lengths.p90:.0f}  "
            f"p99 {lengths.p99:.0f}  max {lengths.max}; truncated {_pct(report.truncation_rate)}"
            f"{f' (> {budget} tokens)' if budget is not None else ''}; round-trip MSE "
            f"{_fmt(report.roundtrip_mse)}; compression {_fmt(report.compression_ratio, '.1f')}x"
        )
    else:
        lines.append("Held-out    no held-out chunks were evaluated")
    timings = "  ".join(f"{k} {v:.2f}s" for k, v in report.timings.items())
    lines.append(
        f"Resources   {timings}; peak memory {report.peak_memory_mb:.0f} MB (workers "
        f"{report.peak_memory_workers_mb:.0f} MB)"
    )
    lines.append("")
    lines.append(f"Heads ({len(report.heads)}), token lengths on held-out chunks")
    rows = []
    for h in report.heads:
        t = h.token_lengths
        rows.append(
            [
                str(h.head),
                h.key + (" (fallback)" if h.fallback else ""),
                str(h.native_dim),
                str(len(h.entries)),
                str(h.fit),
                str(h.heldout),
                "-" if t is None else f"{t.mean:.1f}",
                "-" if t is None else f"{t.p50:.0f}",
                "-" if t is None else f"{t.p90:.0f}",
                "-" if t is None else f"{t.p99:.0f}",
                "-" if t is None else str(t.max),
                _pct(h.truncation_rate),
                _fmt(h.roundtrip_mse),
                _fmt(h.compression_ratio, ".1f"),
            ]
        )
    header = [
        "#",
        "key",
        "dim",
        "entries",
        "fit",
        "held-out",
        "mean",
        "p50",
        "p90",
        "p99",
        "max",
        "trunc",
        "mse",
        "ratio",
    ]
    lines += _table(header, rows)
    if datasets:
        lines.append("")
        lines.append(f"Datasets ({len(report.datasets)})")
        rows = [
            [
                str(d.entry),
                d.name,
                str(d.head),
                str(d.requested),
                str(d.sampled),
                str(d.skipped_nonfinite),
                str(d.fit),
                str(d.heldout),
                d.error or "",
            ]
            for d in report.datasets
        ]
        lines += _table(
            ["entry", "name", "head", "requested", "sampled", "nan-skipped", "fit", "held-out", "error"], rows
        )
    errors = [d for d in report.datasets if d.error]
    if errors and not datasets:
        lines.append("")
        lines += [f"dataset error: entry {d.entry} ({d.name}): {d.error}" for d in errors]
    if report.warnings:
        lines.append("")
        lines.append("Warnings")
        lines += [f"  - {w}" for w in report.warnings]
    return "\n".join(lines) + "\n"


def render_histograms(report: FitReport) -> str:
    """Text histograms of held-out token lengths, one per head (empty leading/trailing bins trimmed)."""
    edges = report.histogram_edges
    lines = ["", "Token lengths per head (held-out chunks)"]
    if len(edges) < 2:
        lines.append("  (no held-out chunks)")
        return "\n".join(lines) + "\n"
    budget = report.max_action_tokens
    for h in report.heads:
        counts = list(h.histogram)
        lines.append(f"  [{h.head}] {h.key}")
        if not any(counts):
            lines.append("      (no held-out chunks)")
            continue
        nonzero = [i for i, c in enumerate(counts) if c]
        top = max(counts)
        for i in range(nonzero[0], nonzero[-1] + 1):
            lo, hi = int(edges[i]), int(edges[i + 1]) - 1
            label = f"{lo}" if hi <= lo else f"{lo}-{hi}"
            over = budget is not None and hi > budget
            bar = "#" * max(1 if counts[i] else 0, round(_BAR_WIDTH * counts[i] / top))
            lines.append(f"      {label:>9} | {bar:<{_BAR_WIDTH}} {counts[i]}{'  > budget' if over else ''}")
    return "\n".join(lines) + "\n"


def _plot(report: FitReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = [h for h in report.heads if any(h.histogram)]
    n = max(1, len(heads))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    edges = list(report.histogram_edges)
    for ax, h in zip(axes.flat, heads, strict=False):
        ax.stairs(h.histogram, edges, fill=True)
        if report.max_action_tokens is not None:
            ax.axvline(report.max_action_tokens, color="red", linestyle="--", linewidth=1)
        ax.set_title(h.key, fontsize=9)
        ax.set_xlabel("tokens per chunk", fontsize=8)
    for ax in list(axes.flat)[len(heads) :]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------- main


def _one_line(exc: Exception) -> str:
    problems = getattr(exc, "problems", ())
    if problems:
        return "; ".join(str(p) for p in problems)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    root = logging.getLogger("fasttok_plugin")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fasttok``; returns the exit status (0 ok, 1 problems in the input, 2 usage/unreadable)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(bool(getattr(args, "verbose", False)))
    try:
        return int(args.handler(args))
    except _UsageError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        return report_internal_error(PROG, exc)


if __name__ == "__main__":
    sys.exit(main())
