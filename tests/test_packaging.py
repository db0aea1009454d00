"""Packaging conventions: license metadata, py.typed, shipped docs, ``--version``, help for every option."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

import fasttok_plugin
from fasttok_plugin import cli
from fasttok_plugin.preflight import cli as preflight_cli

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT
    )


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _all_parsers(sub)
    return found


@pytest.mark.parametrize(
    "parser", [cli.build_parser(), preflight_cli.build_parser()], ids=["fasttok", "fasttok-preflight"]
)
def test_every_option_of_every_command_has_help(parser: argparse.ArgumentParser) -> None:
    missing = [
        f"{sub.prog} {'/'.join(action.option_strings) or action.dest}"
        for sub in _all_parsers(parser)
        for action in sub._actions
        if not (action.help or "").strip() or action.help == argparse.SUPPRESS
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("module", "prog"), [("fasttok_plugin", "fasttok"), ("fasttok_plugin.preflight.cli", "fasttok-preflight")]
)
def test_version_flag_prints_the_package_version(module: str, prog: str) -> None:
    done = _run("-m", module, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{prog} {PYPROJECT['project']['version']}"
    assert fasttok_plugin.__version__ == PYPROJECT["project"]["version"]


def test_python_dash_m_runs_the_fasttok_command(tmp_path: Path) -> None:
    done = _run("-m", "fasttok_plugin", "inspect", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert done.stderr.startswith("fasttok inspect: error: ")
    assert "Traceback" not in done.stderr


def test_docs_named_in_help_texts_and_rule_hints_exist() -> None:
    from fasttok_plugin.preflight.manager import PreflightPlugins

    texts = [p.format_help() for p in _all_parsers(cli.build_parser())]
    texts.append(preflight_cli.build_parser().format_help())
    texts += [f"{r.summary} {r.fix}" for r in PreflightPlugins(entry_points=False).rules().values()]
    # argparse wraps lines; join them back before looking for paths.
    named = set(re.findall(r"(\S+\.md)\b", " ".join(" ".join(texts).split())))
    assert named, "the help texts should point at the docs"
    for path in named:
        assert Path(path).is_file(), path


def test_pyproject_license_build_backend_and_package_list() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0"  # PEP 639 expression, not the deprecated table
    assert project["license-files"] == ["LICENSE"]
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text
    assert "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text  # the full text, not a stub
    (backend,) = PYPROJECT["build-system"]["requires"]
    assert re.fullmatch(r"setuptools>=77[.\d]*,<\d+", backend), backend
    # The package list is explicit (so docs/ ships as fasttok_plugin._docs): it must name every package.
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "fasttok_plugin").rglob("__init__.py")
    }
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == on_disk | {"fasttok_plugin._docs"}
    assert (ROOT / "fasttok_plugin" / "py.typed").is_file()


def test_dependency_floors_and_caps() -> None:
    # tokenizers 0.19 cannot read our tokenizer.json ("data did not match any variant of untagged enum
    # ModelWrapper"); 0.20.0 reads it and fits byte-identical files (checked in a venv, see tox env
    # tokenizers-floor). transformers 4.53 is openpi's pin (tox env lowest).
    specs = [*PYPROJECT["project"]["dependencies"]]
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        specs += extra
    tokenizers = {s for s in specs if s.startswith("tokenizers")}
    transformers = {s for s in specs if s.startswith("transformers")}
    assert tokenizers == {"tokenizers>=0.20,<0.24"}
    assert transformers == {"transformers>=4.53,<6"}
    tox = (ROOT / "tox.ini").read_text(encoding="utf-8")
    assert "transformers==4.53.0" in tox
    assert "tokenizers==0.20.0" in tox


@pytest.mark.slow
def test_built_wheel_ships_license_types_and_docs(tmp_path: Path) -> None:
    # Build from a copy: setuptools leaves build/ and *.egg-info next to the sources.
    source = tmp_path / "src"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        source.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    for name in ("fasttok_plugin", "docs"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = ["wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "pip", *build],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("fasttok_plugin-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "fasttok_plugin/py.typed" in names
    assert "fasttok_plugin/__main__.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    for doc in (ROOT / "docs").glob("*.md"):
        assert f"fasttok_plugin/_docs/{doc.name}" in names
    assert "License-Expression: Apache-2.0" in metadata
    assert not any(n.startswith("tests/") for n in names)
