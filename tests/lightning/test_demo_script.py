"""examples/demo.py end to end: generate -> preflight -> train (fit) -> train (load) -> fit report."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def test_demo_fits_on_the_first_run_and_loads_on_the_second(tmp_path) -> None:
    workdir = tmp_path / "demo"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, str(DEMO), "--workdir", str(workdir), "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    out = completed.stdout
    assert "== 2. preflight ==" in out
    assert "passed:" in out
    run1, run2 = out.split("== 3.1 ")[1].split("== 3.2 ")
    losses = [float(part.split("last loss ")[1].split(",")[0]) for part in (run1, run2)]
    assert all(math.isfinite(loss) and loss > 0 for loss in losses), losses
    assert "fit a new tokenizer" in run1
    assert "2 steps" in run1
    assert "loaded the cached tokenizer (no sampling, no fit)" in run2
    assert "2 steps" in run2
    assert "== 4. fit report" in out
    assert "truncation rate" in out
    assert "round-trip MSE" in out
    sidecar = json.loads((workdir / "tokenizer" / "fasttok.json").read_text())
    fingerprint = sidecar["metadata"]["fit_fingerprint"]
    assert fingerprint in out
    # Both runs logged the fit report's metrics through the trainer's logger.
    for run in ("run1", "run2"):
        metrics = next((workdir / "logs" / run).glob("version_*/metrics.csv")).read_text()
        assert "fasttok/tokens_mean" in metrics.splitlines()[0]
