"""A fit report for people: text tables and text histograms of token lengths.

``fasttok fit`` (and the Lightning callback) print the summary after fitting and ``fasttok inspect``
prints the whole report; the PNG plot is drawn by ``_report_plot``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fasttok_plugin._printable import printable_lines

if TYPE_CHECKING:  # pragma: no cover
    from fasttok_plugin.fitting import FitReport

__all__ = ["render_histograms", "render_report"]

_BAR_WIDTH = 40
# fmt: off
_HEAD_COLUMNS = (
    "#", "key", "dim", "entries", "fit", "held-out", "mean", "p50", "p90", "p99", "max", "trunc", "mse",
    "ratio",
)
_DATASET_COLUMNS = (
    "entry", "name", "head", "requested", "sampled", "nan-skipped", "fit", "held-out", "error",
)
# fmt: on


def render_report(report: FitReport, *, directory: Path | None = None, datasets: bool = True) -> str:
    """Render a fit report as text tables (summary, per head, per dataset, warnings)."""
    lines = _summary(report, directory)
    lines.append("")
    lines.append(f"Heads ({len(report.heads)}), token lengths on held-out chunks")
    lines += _table(_HEAD_COLUMNS, _head_rows(report))
    if datasets:
        lines.append("")
        lines.append(f"Datasets ({len(report.datasets)})")
        lines += _table(_DATASET_COLUMNS, _dataset_rows(report))
    errors = [d for d in report.datasets if d.error]
    if errors and not datasets:
        lines.append("")
        lines += [f"dataset error: entry {d.entry} ({d.name}): {d.error}" for d in errors]
    if report.warnings:
        lines.append("")
        lines.append("Warnings")
        lines += [f"  - {w}" for w in report.warnings]
    return printable_lines(lines) + "\n"


def _tune_goal(tune: Mapping[str, Any]) -> str:
    """What `fasttok tune` aimed at, from the report's ``settings["tune"]``."""
    if tune.get("goal") == "target_mse":
        return f"round-trip MSE <= {_fmt(tune.get('target_mse'), '.3g')}"
    quantile = _fmt(100 * float(tune.get("quantile") or 0.99), "g")
    return f"p{quantile} <= {tune.get('max_action_tokens')} tokens"


def _summary(report: FitReport, directory: Path | None) -> list[str]:
    """The report's first lines: tokenizer, fingerprints, corpus, held-out token lengths, resources."""
    tok = report.tokenizer
    lengths = report.token_lengths
    where = f"{directory}  " if directory is not None else ""
    settings = report.settings if isinstance(report.settings, Mapping) else {}
    order = settings.get("order", "time")
    rounding = settings.get("rounding", "nearest")
    tune = settings.get("tune")
    lines = [
        f"Tokenizer   {where}({tok.get('pipeline')}, vocab {tok.get('vocab_size')}, scale "
        f"{_fmt(tok.get('scale'), 'g')}, tokens {tok.get('min_token')}..{tok.get('max_token')}"
        + (f", order {order}" if order != "time" else "")
        + (f", rounding {rounding}" if rounding != "nearest" else "")
        + (f"; scale tuned for {_tune_goal(tune)}" if isinstance(tune, Mapping) else "")
        + ")",
        f"Fingerprint fit {report.fit_fingerprint[:16]}  norm heads {report.norm_heads_fingerprint[:16]}  "
        f"mixture sha256 {(report.mixture_sha256 or '-')[:16]}",
        f"Corpus      chunks {report.chunk_size}x"
        f"{report.action_dim if report.layout == 'padded' else f'native (<= {report.action_dim})'}, "
        f"{report.normalization}/{report.zero_range}{_convention_text(report)}, heads by "
        f"{report.head_grouping}, stats {report.stats_source}; "
        f"sampled {report.sampled}, fit {report.fit}, held-out {report.heldout}, NaN/Inf skipped "
        f"{report.skipped_nonfinite}",
    ]
    if report.transforms:  # one line: the distinct per-entry transforms
        lines.append(f"Transforms  {'; '.join(sorted(set(report.transforms)))}")
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
    return lines


def _head_rows(report: FitReport) -> list[list[str]]:
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
    return rows


def _dataset_rows(report: FitReport) -> list[list[str]]:
    return [
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


def render_histograms(report: FitReport) -> str:
    """Text histograms of held-out token lengths, one per head (empty leading/trailing bins trimmed)."""
    edges = report.histogram_edges
    lines = ["", "Token lengths per head (held-out chunks)"]
    if len(edges) < 2:
        lines.append("  (no held-out chunks)")
        return printable_lines(lines) + "\n"
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
    return printable_lines(lines) + "\n"


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


def _convention_text(report: Any) -> str:
    """`` (convention openpi: openpi formula, eps 1e-06)`` when the fit used one, else nothing."""
    convention = (getattr(report, "settings", None) or {}).get("convention")
    if not isinstance(convention, dict):
        return ""
    return (
        f" (convention {convention.get('name')}: {convention.get('formula')} formula, eps "
        f"{convention.get('eps')}, {convention.get('layout')})"
    )
