"""benchmarks/explore_tokens.py --quick runs end to end in a subprocess, and its harness is checked.

Its candidates are fit outside `FastTokenizer` on the same quantized codes; the ``BPE, dims (check)``
candidate is the shipped ``native, dims`` setting rebuilt that way, so its held-out tokens must equal the
`FastTokenizer` row's exactly (otherwise every other candidate's numbers would be off too).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "explore_tokens.py"


def _cells(table: str, label: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(label))
    return re.findall(r"[0-9.]+ / [0-9]+ / [0-9]+ \([0-9.e+-]+\)", line)


@pytest.mark.slow  # about 10 s on a loaded 2-core machine: 16 small fits
def test_explore_tokens_quick_reproduces_the_shipped_row_and_reports_every_candidate() -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, run.stderr
    table = run.stdout.split("round-trip MSE per scale:")[1].split("at matched MSE")[0]
    shipped = _cells(table, "native, dims ")
    assert len(shipped) == 2  # two scales
    assert _cells(table, "BPE, dims (check)") == shipped
    ratios = run.stdout.split("at matched MSE")[1]
    for label in ("BPE, dc_dims, mf 4", "BPE, dims, trim", "BPE, dc_energy", "BPE, k2_dims"):
        line = next(line for line in ratios.splitlines() if line.startswith(label))
        assert len(re.findall(r"\d\.\d\d, \d\.\d\d", line)) == 2
        assert "avg:" in line
