"""Fixtures of the preflight tests: mixtures of real on-disk datasets, and the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fasttok_plugin.testing import write_lerobot_dataset, write_mixture

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PLUGIN_DIR = REPO_ROOT / "examples" / "preflight_plugin"


@dataclass(frozen=True)
class DS:
    """One mixture entry backed by a dataset written to ``<tmp>/datasets/<name>``.

    ``dataset`` holds keyword arguments of ``write_lerobot_dataset`` (robot ``arm``/``pos``, dim 4 and two
    episodes of 60 and 80 frames at 30 fps by default); ``write=False`` leaves the root missing.
    """

    name: str
    entry: Mapping[str, Any] = field(default_factory=dict)
    dataset: Mapping[str, Any] = field(default_factory=dict)
    write: bool = True
    repo_id: str | None = None


def ds(
    name: str,
    *,
    entry: Mapping[str, Any] | None = None,
    write: bool = True,
    repo_id: str | None = None,
    **dataset: Any,
) -> DS:
    """Shorthand for :class:`DS`: ``ds("a", entry={"robot_type": "x"}, action_dim=7)``."""
    return DS(name, dict(entry or {}), dataset, write, repo_id)


@pytest.fixture(name="ds")
def ds_fixture() -> Callable[..., DS]:
    """The :func:`ds` shorthand, as a fixture (test modules cannot import conftest)."""
    return ds


DATASET_DEFAULTS: dict[str, Any] = {
    "robot_type": "arm",
    "control_mode": "pos",
    "action_dim": 4,
    "episode_lengths": (60, 80),
    "fps": 30.0,
}


@pytest.fixture
def build_mixture(tmp_path: Path) -> Callable[..., Path]:
    """Factory ``build_mixture(*specs, name="mixture.json", **top_level_keys) -> Path``.

    Writes each spec's dataset once (specs sharing a name share the dataset) and a bare mixture whose
    entries point at them with relative roots.
    """

    def build(*specs: DS, name: str = "mixture.json", **top: Any) -> Path:
        entries = []
        for spec in specs:
            root = tmp_path / "datasets" / spec.name
            if spec.write and not root.exists():
                write_lerobot_dataset(root, **{**DATASET_DEFAULTS, **spec.dataset})
            entry = {"repo_id": spec.repo_id or f"test/{spec.name}", "root": f"datasets/{spec.name}"}
            entries.append({**entry, **spec.entry})
        return write_mixture(tmp_path / name, {"datasets": entries, **top})

    return build


@dataclass(frozen=True)
class CliRun:
    """Outcome of one ``fasttok-preflight`` subprocess."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _cli_command() -> list[str]:
    script = Path(sys.executable).parent / "fasttok-preflight"
    # The installed console script is what users run; fall back to -m outside a virtualenv.
    return [str(script)] if script.exists() else [sys.executable, "-m", "fasttok_plugin.preflight.cli"]


def run_cli_process(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path,
    pythonpath: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> CliRun:
    """Run ``fasttok-preflight *args`` in ``cwd`` and capture everything."""
    environment = {
        k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "FASTTOK_DEBUG")
    }
    # The checkout under test comes right after the given paths, so plugins import *this* fasttok_plugin.
    paths = [*map(str, pythonpath), str(REPO_ROOT)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    environment.update(env or {})
    proc = subprocess.run(
        [*_cli_command(), *map(str, args)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., CliRun]:
    """Factory ``run_cli(*args, cwd=tmp_path, pythonpath=(), env=None) -> CliRun`` (a real subprocess)."""

    def run(
        *args: str | os.PathLike[str],
        cwd: Path | None = None,
        pythonpath: Sequence[Path] = (),
        env: Mapping[str, str] | None = None,
    ) -> CliRun:
        return run_cli_process(args, cwd=cwd or tmp_path, pythonpath=pythonpath, env=env)

    return run
