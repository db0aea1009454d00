"""benchmarks/bench_tokens.py --quick runs end to end in a subprocess: table, matched-MSE ratios, PNG.

It covers a ``native`` row (each chunk at its entry's native width): its MSE over the native dims must equal
the padded rows' at the same scale (same quantization of the same values), so the rows are comparable. And
a ``token_aware`` row: its MSE is its own decode(encode(x)) error (larger at the same scale), and at matched
MSE it is shorter than its ``nearest`` twin.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_tokens.py"


@pytest.mark.slow  # about 15 s on a loaded 2-core machine: 13 small fits
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
    labels = (
        "reference FAST (time)",
        "char, time (default)",
        "char, dc_dims",
        "char, dims",
        "native, dims",
        "native, dims, token_aware",
    )
    for label in labels:
        assert label in ratios
    # Native widths [6, 7, 8, 14] of the quick corpus's robots (franka, ur5e, aloha, so100).
    assert "(native widths [6, 7, 8, 14])" in out
    table = out.split("round-trip MSE per scale:")[1].split("extra fits")[0]
    mse = {
        line[:30].strip(): re.findall(r"\(([0-9.e+-]+)\)", line) for line in table.splitlines() if "/" in line
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
    # token_aware: the same quantization step, but some values rounded the other way, so the row's MSE
    # (its own decode(encode(x)) error) is larger than its nearest twin's at every scale ...
    aware_mse = [float(m) for m in mse["native, dims, token_aware"]]
    assert len(aware_mse) == 2
    assert all(a > float(n) for a, n in zip(aware_mse, mse["native, dims"], strict=True))
    # ... and at matched MSE it is shorter than the twin, at every scale (mean and p99).
    aware = next(line for line in ratios.splitlines() if line.startswith("native, dims, token_aware "))
    aware_ratios = [(float(a), float(b)) for a, b in re.findall(r"(\d\.\d\d), (\d\.\d\d)", aware)]
    twin_ratios = [(float(a), float(b)) for a, b in re.findall(r"(\d\.\d\d), (\d\.\d\d)", native)]
    assert len(aware_ratios) == 2
    for (mean, p99), (twin_mean, twin_p99) in zip(aware_ratios, twin_ratios, strict=True):
        assert mean < twin_mean
        assert p99 < twin_p99
    # Its error at scale 20 is above the reference's lowest: an extra fit at scale 40 brackets it, so the
    # interpolation at the reference's scale-20 error is not clamped to its shortest point.
    extra = out.split("extra fits")[1].split("at matched MSE")[0]
    assert re.search(r"native, dims, token_aware +scale 40: ", extra)
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
