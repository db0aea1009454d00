"""docs/conventions.md runs as written (issue #12 item 4): one recipe per framework.

Blocks preceded by ``<!-- docs-test: shell -->`` run with bash, ``python`` blocks in a fresh interpreter,
``file NAME`` blocks are written first; all in order in one scratch folder with ``examples/`` linked in and
the console scripts on ``PATH``. The folders load through ``transformers.AutoProcessor`` offline.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- docs-test: (shell|python|file (\S+)) -->\n```\w*\n(.*?)```", re.DOTALL)
DOC = ROOT / "docs" / "conventions.md"


def _blocks() -> list[tuple[str, str | None, str]]:
    text = DOC.read_text(encoding="utf-8")
    return [(m.group(1).split()[0], m.group(2), m.group(3)) for m in MARKER.finditer(text)]


def test_every_framework_has_a_recipe() -> None:
    code = "\n".join(block for _, _, block in _blocks())
    for needle in ("--convention opentau", '"name": "lerobot"', "--convention openpi", "AutoProcessor"):
        assert needle in code
    for fmt in ("opentau", "lerobot", "openpi"):
        assert f"--format {fmt}" in code


@pytest.mark.slow
def test_the_recipes_run_as_written(tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{ROOT}"  # chunks.py and this worktree's package
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "hf_modules"))
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg_cache")
    printed = []
    for index, (kind, name, code) in enumerate(_blocks()):
        if kind == "file":
            (tmp_path / str(name)).write_text(code, encoding="utf-8")
            continue
        cmd = (
            ["bash", "-c", "set -euo pipefail\n" + code] if kind == "shell" else [sys.executable, "-c", code]
        )
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail(
                f"block {index} ({kind}) failed:\n{code}\n"
                f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            )
        printed.append(proc.stdout)
    assert "arm7::joint_pos" in "".join(printed)
    for folder in ("tok_opentau", "tok_lerobot", "tok_openpi"):
        assert (tmp_path / folder / "norm_stats.json").is_file()
