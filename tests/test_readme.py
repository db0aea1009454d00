"""The README's examples run as written.

Blocks preceded by ``<!-- readme-test: shell -->`` run with bash (``set -euo pipefail``), blocks marked
``python`` run in a fresh interpreter, and ``file NAME`` blocks are written to ``NAME`` first. All of them
run in order in one scratch folder that has ``examples/`` linked in, with the project's console scripts on
``PATH``: exactly what a user who copies them from a fresh clone gets.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- readme-test: (shell|python|file (\S+)) -->\n```\w*\n(.*?)```", re.DOTALL)


def readme_blocks() -> list[tuple[str, str | None, str]]:
    """Return (kind, file name, code) for every marked block, in README order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [(m.group(1).split()[0], m.group(2), m.group(3)) for m in MARKER.finditer(text)]


def test_readme_has_marked_examples_for_every_feature() -> None:
    code = "\n".join(block for _, _, block in readme_blocks())
    for needle in (
        "fasttok-preflight",
        "fasttok fit",
        "fasttok inspect",
        "fasttok tune",
        "fasttok export-stats",
        "FastTokenizerCallback",
        "@hookimpl",
    ):
        assert needle in code, f"README lost its tested example of {needle}"


def test_readme_quick_start_commands_are_the_ci_command() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "bash scripts/test.sh" in text
    assert "bash scripts/demo.sh" in text
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^bash scripts/test\.sh$", ci, re.MULTILINE)


def test_readme_examples_run_as_written(tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    blocks = readme_blocks()
    assert blocks, "no marked README blocks found"
    for index, (kind, name, code) in enumerate(blocks):
        if kind == "file":
            (tmp_path / name).write_text(code, encoding="utf-8")
            continue
        if kind == "shell":
            cmd = ["bash", "-c", "set -euo pipefail\n" + code]
        else:
            cmd = [sys.executable, "-c", code]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            output = f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            pytest.fail(f"README block {index} ({kind}) failed:\n{code}\n{output}")
    # The blocks' outputs are real artefacts, not just exit codes.
    assert (tmp_path / "example_tokenizer" / "fit_report.json").is_file()
    assert (tmp_path / "example_tokenizer_cb" / "fasttok.json").is_file()
    assert '"version": "2.1.0"' in (tmp_path / "preflight.sarif").read_text(encoding="utf-8")
    assert "HR001" in (tmp_path / "findings.json").read_text(encoding="utf-8")
    assert "action" in json.loads((tmp_path / "so100_stats.json").read_text(encoding="utf-8"))
    assert (tmp_path / "example_tuned" / "fit_report.json").is_file()
