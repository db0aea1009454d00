"""The conventions check (issue #12 item 5): FT611 / FT612 before any compute, on real generated datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fasttok_plugin.errors import PreflightError, PreflightUsageError
from fasttok_plugin.fit.settings import FitSettings
from fasttok_plugin.fitting import fit_tokenizer
from fasttok_plugin.preflight import run_preflight
from fasttok_plugin.testing import write_lerobot_dataset, write_mixture


def _mixture(tmp_path: Path, **top_level: object) -> Path:
    """arm::pos (3 dims) and base::vel (2 dims): one width per tagged head, mixed widths globally."""
    write_lerobot_dataset(tmp_path / "a", robot_type="arm", control_mode="pos", action_dim=3)
    write_lerobot_dataset(tmp_path / "b", version="v2.1", robot_type="base", control_mode="vel", action_dim=2)
    entries = [{"repo_id": "t/a", "root": "a"}, {"repo_id": "t/b", "root": "b"}]
    return write_mixture(tmp_path / "m.json", {"datasets": entries, **top_level})


def _codes(result) -> list[str]:
    return [f.code for f in result.findings if f.code.startswith("FT6")]


def test_native_layout_with_a_head_of_mixed_widths_is_an_error(tmp_path: Path) -> None:
    path = _mixture(tmp_path, convention="lerobot")  # lerobot: one global head, native layout
    result = run_preflight(path, max_action_dim=8)
    (finding,) = [f for f in result.findings if f.code == "FT612"]
    assert finding.severity.value == "error"
    assert "t/a: 3, t/b: 2" in finding.message
    assert finding.pointer == "/convention"
    assert finding.line == 1 or finding.line is not None
    assert '"head_grouping": "robot_control"' in finding.hint
    # The same convention with per-robot heads, or padded, is fine.
    fixed = _mixture(tmp_path, convention={"name": "lerobot", "head_grouping": "robot_control"})
    assert _codes(run_preflight(fixed, max_action_dim=8)) == []
    assert _codes(run_preflight(path, max_action_dim=8, options={"convention": "openpi"})) == []
    assert _codes(run_preflight(_mixture(tmp_path), max_action_dim=8)) == []  # no convention: no check


def test_a_head_wider_than_max_action_dim_is_an_error_under_native_too(tmp_path: Path) -> None:
    path = _mixture(tmp_path, convention={"name": "lerobot", "head_grouping": "robot_control"})
    result = run_preflight(path, max_action_dim=2)
    assert [f.entry_name for f in result.findings if f.code == "FT201"] == ["t/a"]
    assert not result.ok


def test_data_stats_convention_with_missing_data_files_is_an_error(tmp_path: Path) -> None:
    path = _mixture(tmp_path)
    data = sorted((tmp_path / "b").rglob("*.parquet"))
    data[0].unlink()
    result = run_preflight(path, options={"convention": "openpi"})
    (finding,) = [f for f in result.findings if f.code == "FT611"]
    assert finding.entry_name == "t/b"
    assert str(data[0]) in finding.message
    assert "stats computed from the frames" in finding.message
    # A convention with stored stats reads them from stats.json: no FT611 (the sampler reports the file).
    assert "FT611" not in _codes(run_preflight(path, options={"convention": "opentau"}))


def test_the_fit_runs_the_check_with_its_own_convention(tmp_path: Path) -> None:
    path = _mixture(tmp_path)
    settings = FitSettings(chunk_size=8, max_action_dim=4, convention="lerobot", total_chunks=100)
    with pytest.raises(PreflightError, match="FT612"):
        fit_tokenizer(path, settings, out_dir=tmp_path / "tok")
    assert not (tmp_path / "tok").exists()


def test_a_bad_convention_option_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(PreflightUsageError, match="option 'convention'"):
        run_preflight(_mixture(tmp_path), options={"convention": "pi0"})


def test_fasttok_preflight_convention_flag(tmp_path: Path) -> None:
    path = _mixture(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "FASTTOK_DEBUG"}
    command = [sys.executable, "-m", "fasttok_plugin.preflight.cli", str(path), "--max-action-dim", "8"]
    run = subprocess.run(
        [*command, "--convention", "lerobot", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    assert "FT612" in {f["code"] for f in json.loads(run.stdout)["findings"]}
    bad = subprocess.run(
        [*command, "--convention", "pi0"], capture_output=True, text=True, env=env, timeout=120
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
