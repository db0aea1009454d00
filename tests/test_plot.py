"""`fasttok inspect --plot`: the PNG written from a real fit, its panels, and its failure modes."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fasttok_plugin.cli import main
from fasttok_plugin.fitting import FitReport, FitSettings, fit_tokenizer

pytest.importorskip("matplotlib")

from matplotlib import image as mpimg

from fasttok_plugin._report_plot import build_figure, x_limits
from fasttok_plugin.testing import make_example_mixture

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _restore_package_logger() -> Iterator[None]:
    """``main()`` configures the ``fasttok_plugin`` logger for a CLI run; undo it for the next tests."""
    logger = logging.getLogger("fasttok_plugin")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer directory fit on the six-entry example mixture (budget 256), as `fasttok fit` does."""
    root = tmp_path_factory.mktemp("plot")
    mixture = make_example_mixture(root / "example", n_datasets=6)
    settings = FitSettings(chunk_size=10, vocab_size=300, total_chunks=400, max_fit_chunks=200)
    fit_tokenizer(mixture, settings, out_dir=root / "tok")
    return root / "tok"


@pytest.mark.parametrize(
    ("lo", "hi", "budget", "where"),
    [
        (15, 23, 256, "right"),  # far above the data: the axis stays on the data
        (15, 23, 24, "inside"),  # just past the data: shown
        (15, 23, 19, "inside"),
        (41, 52, 24, "left"),  # below every chunk
        (15, 23, None, "none"),
    ],
)
def test_x_limits_fit_the_data_and_show_a_nearby_budget(lo, hi, budget, where) -> None:
    left, right, placed = x_limits(lo, hi, budget)
    assert placed == where
    assert left < lo
    assert right > hi
    if where == "inside":
        assert left < budget < right
    else:
        assert right - left < 1.2 * (hi - lo)  # the data fills the panel


@pytest.mark.slow
def test_plot_png_is_written_even_when_stdout_is_closed_early(fitted: Path, tmp_path: Path) -> None:
    report = FitReport.load(fitted)
    heads = [h for h in report.heads if any(h.histogram)]
    path = tmp_path / "plots" / "lengths.png"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # `fasttok inspect DIR --plot F | head -1`: the reader goes away after the first line.
    process = subprocess.Popen(
        [sys.executable, "-m", "fasttok_plugin", "inspect", str(fitted), "--plot", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith(b"Tokenizer ")
    process.stdout.close()
    assert process.wait(timeout=300) == 0

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(path)
    rows = math.ceil((len(heads) + 1) / 3)
    assert pixels.shape == (rows * 300, min(3, len(heads) + 1) * 420, 4)
    rgb = pixels[..., :3]
    drawn = (rgb < 0.9).any(axis=-1).mean()
    assert 0.03 < drawn < 0.9, drawn  # neither blank nor a solid block
    # Bars in tab:blue (0.12, 0.47, 0.71) at alpha 0.7 on white: clearly blue pixels exist.
    blue = (rgb[..., 2] > 0.6) & (rgb[..., 0] < 0.5)
    assert blue.mean() > 0.01


def test_plot_flag_writes_the_png_and_says_so(fitted: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "lengths.png"
    assert main(["inspect", str(fitted), "--plot", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Token lengths per head" in out
    assert out.rstrip().endswith(f"wrote {path}")
    assert mpimg.imread(path).ndim == 3


def test_figure_panels_have_labels_markers_and_data_fitted_axes(fitted: Path) -> None:
    report = FitReport.load(fitted)
    assert report.max_action_tokens == 256
    heads = [h for h in report.heads if any(h.histogram)]
    figure = build_figure(report)
    axes = [ax for ax in figure.axes if ax.axison]
    assert len(axes) == len(heads) + 1

    cdf = axes[0]
    assert cdf.get_title().startswith("all heads: CDF")
    (line,) = [ln for ln in cdf.get_lines() if ln.get_label() == "all heads"]
    assert line.get_ydata()[-1] == pytest.approx(1.0)
    assert cdf.get_ylabel()
    assert cdf.get_xlim()[1] < 256

    edges = np.asarray(report.histogram_edges)
    for ax, head in zip(axes[1:], heads, strict=True):
        counts = np.asarray(head.histogram)
        lo, hi = edges[np.flatnonzero(counts)[0]], edges[np.flatnonzero(counts)[-1] + 1]
        left, right = ax.get_xlim()
        assert left <= lo
        assert right >= hi
        assert right - left < 1.2 * (hi - lo)  # fitted to the data, not stretched to the budget
        assert head.key in ax.get_title()
        assert ax.get_ylabel() == "held-out chunks"
        assert "budget 256" in ax.get_xlabel()
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert f"p50 {head.token_lengths.p50:.0f}" in labels
        assert f"p99 {head.token_lengths.p99:.0f}" in labels


def test_unwritable_plot_path_exits_2_with_one_line(fitted: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    target = blocker / "lengths.png"
    assert main(["inspect", str(fitted), "--plot", str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"fasttok inspect: error: cannot write the plot {target}: ")
    assert "Token lengths per head" in captured.out  # the report itself is still printed
    assert blocker.read_text() == "not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_without_matplotlib_the_report_prints_and_the_plot_is_refused(fitted: Path, tmp_path: Path) -> None:
    path = tmp_path / "lengths.png"
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"  # as if it were not installed
        "from fasttok_plugin.cli import main\n"
        f"sys.exit(main(['inspect', {str(fitted)!r}, '--plot', {str(path)!r}]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert "matplotlib" in done.stderr
    assert "fasttok-plugin[plot]" in done.stderr
    assert "Token lengths per head" in done.stdout
    assert not path.exists()
