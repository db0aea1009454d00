"""``fasttok inspect --plot``: held-out token lengths as a PNG (needs matplotlib, the ``plot`` extra).

One panel per head (histogram, p50/p99 markers) plus an overall CDF first. Each panel's x axis fits its
data; the token budget is drawn where it falls inside (or near) the data, and otherwise named in the x
label with an arrow, so a budget far above the lengths no longer squeezes the data into a corner.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fasttok_plugin.atomic import write_bytes_atomic

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from fasttok_plugin.fitting import FitReport

__all__ = ["build_figure", "plot_report", "x_limits"]

_COLUMNS = 3
_PANEL_INCHES = (4.2, 3.0)
_DPI = 100
# A budget at most this share of the data's span away from it is drawn in the panel; further out it is
# only named in the x label.
_BUDGET_REACH = 0.25


def x_limits(lo: float, hi: float, budget: int | None) -> tuple[float, float, str]:
    """The x range of a panel whose data spans ``lo..hi``, and where the budget is relative to it.

    The budget is ``"inside"`` the range when it lies within the data or close to it (then the range
    grows to show it), else ``"left"`` or ``"right"`` of it (the range stays on the data); ``"none"``
    without a budget.
    """
    span = max(hi - lo, 1.0)
    pad = 0.04 * span
    reach = _BUDGET_REACH * span
    if budget is None:
        return lo - pad, hi + pad, "none"
    if lo - reach <= budget <= hi + reach:
        return min(lo, budget) - pad, max(hi, budget) + pad, "inside"
    return lo - pad, hi + pad, "left" if budget < lo else "right"


def _data_range(edges: Sequence[float], counts: Sequence[int]) -> tuple[float, float]:
    nonzero = [i for i, c in enumerate(counts) if c]
    return float(edges[nonzero[0]]), float(edges[nonzero[-1] + 1])


def _mark_budget(ax: Any, budget: int | None, where: str) -> None:
    """The budget as a dashed line, or named in the x label when it lies far from the data."""
    from matplotlib.ticker import MaxNLocator

    label = "tokens per chunk"
    if where == "inside":
        ax.axvline(budget, color="tab:red", linestyle="--", linewidth=1.2, label=f"budget {budget}")
    elif where == "right":
        label += f"  (budget {budget} \u2192)"
    elif where == "left":
        label += f"  (\u2190 budget {budget}: all truncated)"
    ax.set_xlabel(label, fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _markers(ax: Any, stats: Any) -> None:
    if stats is None:
        return
    ax.axvline(stats.p50, color="black", linestyle=":", linewidth=1.2, label=f"p50 {stats.p50:.0f}")
    ax.axvline(stats.p99, color="tab:orange", linestyle="-.", linewidth=1.2, label=f"p99 {stats.p99:.0f}")


def _cdf_panel(ax: Any, report: FitReport, edges: Sequence[float], counts: Sequence[int]) -> None:
    total = sum(counts)
    cumulative, running = [0.0], 0
    for c in counts:
        running += c
        cumulative.append(running / total)
    ax.plot(list(edges), cumulative, color="tab:blue", linewidth=1.5, label="all heads")
    lo, hi = _data_range(edges, counts)
    left, right, where = x_limits(lo, hi, report.max_action_tokens)
    ax.set_xlim(left, right)
    ax.set_ylim(0.0, 1.02)
    _markers(ax, report.token_lengths)
    _mark_budget(ax, report.max_action_tokens, where)
    truncated = report.truncation_rate
    suffix = "" if truncated is None else f", {100 * truncated:.2f}% truncated"
    ax.set_title(f"all heads: CDF ({total} held-out chunks{suffix})", fontsize=9)
    ax.set_ylabel("share of chunks with <= x tokens", fontsize=8)


def _head_panel(ax: Any, head: Any, edges: Sequence[float], budget: int | None) -> None:
    ax.stairs(list(head.histogram), list(edges), fill=True, color="tab:blue", alpha=0.7, label="chunks")
    lo, hi = _data_range(edges, head.histogram)
    left, right, where = x_limits(lo, hi, budget)
    ax.set_xlim(left, right)
    _markers(ax, head.token_lengths)
    _mark_budget(ax, budget, where)
    ax.set_title(f"[{head.head}] {head.key} ({sum(head.histogram)} chunks)", fontsize=9)
    ax.set_ylabel("held-out chunks", fontsize=8)


def build_figure(report: FitReport) -> Figure:
    """The plot as a matplotlib ``Figure`` (no pyplot, no global backend change).

    Raises:
        ValueError: The report has no held-out token lengths to plot.
    """
    from matplotlib.figure import Figure

    edges = list(report.histogram_edges)
    heads = [h for h in report.heads if any(h.histogram)]
    if len(edges) < 2 or not heads:
        raise ValueError("the report has no held-out token lengths to plot")
    counts = [sum(column) for column in zip(*(h.histogram for h in heads), strict=True)]
    panels = len(heads) + 1
    cols = min(_COLUMNS, panels)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(_PANEL_INCHES[0] * cols, _PANEL_INCHES[1] * rows), dpi=_DPI, layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    _cdf_panel(axes[0], report, edges, counts)
    for ax, head in zip(axes[1:], heads, strict=False):
        _head_panel(ax, head, edges, report.max_action_tokens)
    for ax in axes[: len(heads) + 1]:
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="best")
    for ax in axes[len(heads) + 1 :]:
        ax.set_axis_off()
    return fig


def plot_report(report: FitReport, path: Path) -> Path:
    """Write the plot to ``path`` as a PNG (atomically: a failed write leaves no partial file).

    Raises:
        OSError: ``path`` cannot be written.
        ValueError: The report has no held-out token lengths to plot.
    """
    buffer = io.BytesIO()
    build_figure(report).savefig(buffer, format="png", dpi=_DPI)
    write_bytes_atomic(path, buffer.getvalue())
    return path
