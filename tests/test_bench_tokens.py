"""benchmarks/bench_tokens.py --quick runs end to end in a subprocess: table, matched-MSE ratios, PNG.

It covers a ``native`` row (each chunk at its entry's native width): its MSE over the native dims must equal
the padded rows' at the same scale (same quantization of the same values), so the rows are comparable.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_tokens.py"


@pytest.mark.slow  # about 15 s on a loaded 2-core machine: 10 small fits
def test_bench_tokens_quick_prints_every_setting_and_writes_the_png(tmp_path: Path) -> None:
    png = tmp_path / "curves.png"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--png", str(png)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    ratios = out.split("at matched MSE")[1]
    labels = ("reference FAST (time)", "char, time (default)", "char, dc_dims", "char, dims", "native, dims")
    for label in labels:
        assert label in ratios
    # Native widths [6, 7, 8, 14] of the quick corpus's robots (franka, ur5e, aloha, so100).
    assert "(native widths [6, 7, 8, 14])" in out
    table = out.split("round-trip MSE per scale:")[1].split("at matched MSE")[0]
    mse = {
        line[:26].strip(): re.findall(r"\(([0-9.e+-]+)\)", line) for line in table.splitlines() if "/" in line
    }
    # Every row is measured over the native dims: a native row decodes the same quantized values as the
    # padded char rows, so its round-trip MSE is the same at every scale (a padded-dims MSE would differ).
    assert mse["native, dims"] == mse["char, dims"] == mse["char, time (default)"]
    assert len(mse["native, dims"]) == 2
    # The reference against itself is exactly 1 at every scale.
    reference = next(line for line in ratios.splitlines() if line.startswith("reference FAST"))
    assert re.findall(r"\d\.\d\d, \d\.\d\d", reference) == ["1.00, 1.00", "1.00, 1.00"]
    dims = next(line for line in ratios.splitlines() if line.startswith("char, dims "))
    mean_ratios = [float(a) for a, _ in re.findall(r"(\d\.\d\d), (\d\.\d\d)", dims)]
    assert all(r < 1.0 for r in mean_ratios)  # dim-major is shorter at matched error
    native = next(line for line in ratios.splitlines() if line.startswith("native, dims "))
    native_ratios = [float(a) for a, _ in re.findall(r"(\d\.\d\d), (\d\.\d\d)", native)]
    assert len(native_ratios) == 2
    assert all(r < 1.0 for r in native_ratios)  # and so is the native layout
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
