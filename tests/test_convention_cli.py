"""The convention in the mixture file and on the command line; ``fasttok export-stats`` (issue #12).

Real subprocesses of ``fasttok`` on generated LeRobot datasets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fasttok_plugin.conventions import resolve_convention
from fasttok_plugin.errors import MixtureError
from fasttok_plugin.mixture import load_mixture
from fasttok_plugin.testing import make_example_mixture, write_lerobot_dataset, write_mixture

FAST_FIT = ["--chunk-size", "8", "--vocab-size", "300", "--total-chunks", "200", "--max-fit-chunks", "100"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))


def _fasttok(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FASTTOK_DEBUG"}
    command = [sys.executable, "-m", "fasttok_plugin.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def _one_dataset_mixture(tmp_path: Path, **top_level: object) -> Path:
    write_lerobot_dataset(tmp_path / "a", action_dim=3)
    return write_mixture(tmp_path / "m.json", {"datasets": [{"repo_id": "a", "root": "a"}], **top_level})


def test_the_mixture_key_takes_a_name_or_overrides(tmp_path: Path) -> None:
    assert load_mixture(_one_dataset_mixture(tmp_path, convention="openpi")).convention == resolve_convention(
        "openpi"
    )
    path = _one_dataset_mixture(tmp_path, convention={"name": "lerobot", "normalization": "quantile"})
    assert load_mixture(path).convention == resolve_convention("lerobot", normalization="quantile")
    assert load_mixture(_one_dataset_mixture(tmp_path)).convention is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("pi0", "unknown convention 'pi0'"),
        ({"name": "openpi", "epsilon": 1}, "unknown convention field(s) 'epsilon'"),
        ({"name": "openpi", "normalization": "min_max"}, "'min_max' does not exist in the openpi formula"),
        (3, "a convention is a name"),
    ],
)
def test_a_bad_mixture_convention_names_the_pointer_and_the_fix(
    tmp_path: Path, value: object, message: str
) -> None:
    path = _one_dataset_mixture(tmp_path, convention=value)
    with pytest.raises(MixtureError) as info:
        load_mixture(path)
    (problem,) = info.value.problems
    assert problem.pointer == "/convention"
    assert message in problem.message
    assert '"convention": one of "opentau", "lerobot", "openpi"' in problem.hint


def test_cli_fit_with_a_convention_then_export_stats(tmp_path: Path) -> None:
    mixture = make_example_mixture(tmp_path / "example", n_datasets=6)
    out = tmp_path / "tok"
    fit = _fasttok("fit", str(mixture), "--out", str(out), "--quiet", "--convention", "openpi", *FAST_FIT)
    assert fit.returncode == 0, fit.stderr
    stats = json.loads((out / "norm_stats.json").read_text())
    assert (stats["convention"]["name"], stats["normalization"], stats["head_grouping"]) == (
        "openpi",
        "quantile",
        "global",
    )
    report = json.loads((out / "fit_report.json").read_text())
    assert report["normalization"] == "quantile"
    shown = _fasttok("inspect", str(out))
    assert shown.returncode == 0, shown.stderr
    assert "quantile/legacy (convention openpi: openpi formula, eps 1e-06, padded)" in shown.stdout
    exported = tmp_path / "norm_stats.json"
    run = _fasttok("export-stats", str(out), "--format", "openpi", "--out", str(exported))
    assert run.returncode == 0, run.stderr
    assert set(json.loads(exported.read_text())["norm_stats"]["actions"]) == {"mean", "std", "q01", "q99"}
    # A file we did not write is refused with one line, exit 1, and left untouched.
    foreign = tmp_path / "stats.json"
    foreign.write_text("{}")
    run = _fasttok("export-stats", str(out), "--format", "lerobot", "--out", str(foreign))
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1
    assert "was not written by fasttok export-stats" in run.stderr
    assert foreign.read_text() == "{}"


def test_cli_overrides_and_bad_conventions(tmp_path: Path) -> None:
    mixture = _one_dataset_mixture(tmp_path)
    out = tmp_path / "tok"
    override = '{"name": "lerobot", "layout": "padded", "normalization": "min_max"}'
    fit = _fasttok("fit", str(mixture), "--out", str(out), "--quiet", "--convention", override, *FAST_FIT)
    assert fit.returncode == 0, fit.stderr
    stats = json.loads((out / "norm_stats.json").read_text())
    assert (stats["formula"], stats["normalization"], stats["eps"]) == ("lerobot", "min_max", 1e-8)
    bad = _fasttok("fit", str(mixture), "--out", str(tmp_path / "x"), "--convention", "pi0")
    assert bad.returncode == 2
    assert "unknown convention 'pi0'" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = _fasttok("export-stats", str(tmp_path), "--format", "openpi", "--out", str(tmp_path / "o.json"))
    assert missing.returncode == 2
    assert "cannot read the normalization stats" in missing.stderr
