"""benchmarks/bench_tokens.py --quick runs end to end in a subprocess: table, matched-MSE ratios, PNG."""

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
    for label in ("reference FAST (time)", "char, time (default)", "char, dc_dims", "char, dims"):
        assert label in ratios
    # The reference against itself is exactly 1 at every scale.
    reference = next(line for line in ratios.splitlines() if line.startswith("reference FAST"))
    assert re.findall(r"\d\.\d\d, \d\.\d\d", reference) == ["1.00, 1.00", "1.00, 1.00"]
    dims = next(line for line in ratios.splitlines() if line.startswith("char, dims "))
    mean_ratios = [float(a) for a, _ in re.findall(r"(\d\.\d\d), (\d\.\d\d)", dims)]
    assert all(r < 1.0 for r in mean_ratios)  # dim-major is shorter at matched error
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
