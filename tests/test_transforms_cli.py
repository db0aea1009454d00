"""`fasttok fit` with transform flags and mixture keys, as real subprocesses; `fasttok inspect` shows them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fasttok_plugin.fit import FitReport
from fasttok_plugin.testing import write_lerobot_dataset, write_mixture
from tests.test_cli import FAST_FIT, fasttok


@pytest.fixture
def mixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The stats cache defaults to $XDG_CACHE_HOME; subprocesses inherit it.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))
    write_lerobot_dataset(tmp_path / "arm", robot_type="arm", control_mode="pos", action_dim=7)
    return write_mixture(tmp_path / "mixture.json", {"datasets": [{"repo_id": "lab/arm", "root": "arm"}]})


@pytest.mark.slow
def test_cli_fit_with_transform_flags_then_inspect(mixture: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    flags = ["--encoded-dims", "0:6", "--relative-dims", "0:7", "--relative-exclude", "6"]
    done = fasttok("fit", str(mixture), "--out", str(out), *FAST_FIT, "-q", *flags)
    assert done.returncode == 0, done.stderr
    report = FitReport.load(out)
    assert report.stats_source == "data"
    assert report.transforms == ("columns 0:6 | relative 0:6 - observation.state[chunk start]",)
    assert report.settings["transform"]["action_index"] == [0, 1, 2, 3, 4, 5]
    # The folder records the transform for inference (ActionDecoder adds the state back).
    (head,) = json.loads((out / "norm_stats.json").read_text())["heads"]
    assert head["transform"] == {
        "action_index": [0, 1, 2, 3, 4, 5],
        "relative_dims": [0, 1, 2, 3, 4, 5],
        "state_key": "observation.state",
    }
    shown = fasttok("inspect", str(out))
    assert shown.returncode == 0, shown.stderr
    assert "stats data" in shown.stdout
    assert "Transforms  columns 0:6 | relative 0:6" in shown.stdout
    # The same transform written in the mixture is the same fit (same fingerprint).
    document = json.loads(mixture.read_text())
    document.update({"encoded_dims": "0:6", "relative_dims": "0:6"})
    keyed = write_mixture(tmp_path / "keyed.json", document)
    again = fasttok("fit", str(keyed), "--out", str(tmp_path / "tok2"), *FAST_FIT, "-q")
    assert again.returncode == 0, again.stderr
    assert FitReport.load(tmp_path / "tok2").fit_fingerprint == report.fit_fingerprint


@pytest.mark.parametrize(
    ("flags", "option"),
    [
        (["--relative-dims", "0:x"], "--relative-dims"),
        (["--relative-exclude", "1"], "--relative-exclude"),
    ],
)
def test_bad_transform_flags_exit_2_with_one_line(
    mixture: Path, tmp_path: Path, flags: list[str], option: str
) -> None:
    done = fasttok("fit", str(mixture), "--out", str(tmp_path / "tok"), *flags)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert option in lines[0]
    assert not (tmp_path / "tok").exists()


def test_stored_stats_with_transform_flags_exit_2_saying_why(mixture: Path, tmp_path: Path) -> None:
    done = fasttok(
        "fit",
        str(mixture),
        "--out",
        str(tmp_path / "tok"),
        "--relative-dims",
        "0",
        "--stats-source",
        "stored",
    )
    assert done.returncode == 2
    assert "no stats.json holds the stats of transformed actions" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "tok").exists()


def test_fasttok_preflight_checks_the_transform_flags(mixture: Path, tmp_path: Path) -> None:
    from tests.preflight.conftest import run_cli_process

    past = run_cli_process([mixture, "--encoded-dims", "0:9", "--isolated"], cwd=tmp_path)
    assert past.returncode == 1, past.stderr
    assert "FT604" in past.stdout
    fine = run_cli_process(
        [mixture, "--encoded-dims", "0:6", "--relative-dims", "0:6", "--isolated"], cwd=tmp_path
    )
    assert fine.returncode == 0, fine.stdout + fine.stderr
    stored = run_cli_process(
        [mixture, "--relative-dims", "0", "--stats-source", "stored", "--isolated"], cwd=tmp_path
    )
    assert stored.returncode == 1
    assert "FT605" in stored.stdout
    bad = run_cli_process([mixture, "--relative-dims", "x", "--isolated"], cwd=tmp_path)
    assert bad.returncode == 2
    assert "--relative-dims" in bad.stderr
    assert "Traceback" not in bad.stderr
