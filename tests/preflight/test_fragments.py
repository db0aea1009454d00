"""The pre-commit hook and ``$ref`` fragments; ``--jobs``: parallel metadata reads report the same findings.

pre-commit runs ``<entry> <args> <changed files matching files:>`` (``pass_filenames: true``); the tests
build that command from ``.pre-commit-hooks.yaml`` itself and run it as a subprocess on real datasets.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fasttok_plugin.preflight._fragments import includers, is_fragment
from fasttok_plugin.testing import write_lerobot_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
Run = Callable[..., Any]


@pytest.fixture
def hook() -> dict[str, Any]:
    (definition,) = yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text())
    return definition


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """``configs/train_mixture.json`` includes the entry ``configs/parts/arm_mixture.json``."""
    for name, dim in (("arm", 4), ("base", 2)):
        write_lerobot_dataset(
            tmp_path / "datasets" / name, robot_type=name, control_mode="pos", action_dim=dim
        )
    parts = tmp_path / "configs" / "parts"
    parts.mkdir(parents=True)
    (parts / "arm_mixture.json").write_text(
        json.dumps({"repo_id": "lab/arm", "root": "../datasets/arm", "robot_type": "arm"}, indent=2)
    )
    (tmp_path / "configs" / "train_mixture.json").write_text(
        json.dumps(
            {
                "datasets": [
                    {"$ref": "parts/arm_mixture.json", "root": "../datasets/arm"},
                    {"repo_id": "lab/base", "root": "../datasets/base"},
                ]
            },
            indent=2,
        )
    )
    return tmp_path


def hook_command(hook: dict[str, Any], changed: list[str], user_args: list[str] = ()) -> list[str]:
    """What pre-commit runs: the entry, the user's args, then the changed files the hook's pattern keeps."""
    files = [f for f in changed if re.search(hook["files"], f)]
    return [*shlex.split(hook["entry"])[1:], *user_args, *files]


def test_the_hook_pattern_matches_the_fragment_and_the_hook_skips_it(hook, repo, run_cli: Run) -> None:
    changed = ["configs/train_mixture.json", "configs/parts/arm_mixture.json", "README.md"]
    command = hook_command(hook, changed, ["--max-action-dim", "8"])
    assert "configs/parts/arm_mixture.json" in command  # the pattern alone would check it as a mixture
    result = run_cli(*command, cwd=repo)
    assert result.returncode == 0, result.output
    assert "lab/arm" not in result.stderr
    assert (
        "fasttok-preflight: skipped configs/parts/arm_mixture.json: a $ref fragment (no datasets); "
        "checked through configs/train_mixture.json"
    ) in result.stderr
    assert "2 datasets" in result.stdout


def test_without_skip_fragments_the_fragment_fails_on_its_own(repo, run_cli: Run) -> None:
    result = run_cli("configs/parts/arm_mixture.json", cwd=repo)
    assert result.returncode == 1
    assert "FT001" in result.stdout


def test_a_changed_fragment_alone_is_skipped_and_a_broken_include_is_still_caught(
    hook, repo, run_cli: Run
) -> None:
    command = hook_command(hook, ["configs/parts/arm_mixture.json"])
    alone = run_cli(*command, cwd=repo)
    assert alone.returncode == 0, alone.output
    assert "checked by the mixtures that include it" in alone.stderr
    # The fragment's content is checked through the mixture: a bad value in it fails the including file.
    (repo / "configs" / "parts" / "arm_mixture.json").write_text(
        json.dumps({"repo_id": "lab/arm", "robot_type": 5})
    )
    both = run_cli(
        *hook_command(hook, ["configs/train_mixture.json", "configs/parts/arm_mixture.json"]), cwd=repo
    )
    assert both.returncode == 1
    assert "FT001" in both.stdout
    assert "(lab/arm).robot_type" in both.stdout  # the value written in the fragment


def test_what_counts_as_a_fragment(tmp_path: Path) -> None:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    assert is_fragment(write("entry.json", '{"repo_id": "a/b"}'))
    assert is_fragment(write("entries.json", '[{"repo_id": "a/b"}]'))
    assert not is_fragment(write("bare.json", '{"datasets": []}'))
    assert not is_fragment(write("wrapped.json", '{"dataset_mixture": {"datasets": []}}'))
    # A mixture built on another through a top-level $ref is a mixture, not a fragment.
    assert not is_fragment(write("derived.json", '{"$ref": "bare.json", "action_freq": 10}'))
    assert is_fragment(write("tags.json", '{"$ref": "entry.json", "robot_type": "arm"}'))
    # Unreadable or invalid JSON is checked as a mixture, which reports the problem (exit 2).
    assert not is_fragment(write("broken.json", '{"datasets": ['))
    assert not is_fragment(tmp_path / "missing.json")


def test_includers_lists_only_the_mixtures_that_include_the_fragment(repo: Path) -> None:
    configs = repo / "configs"
    (configs / "other_mixture.json").write_text(json.dumps({"datasets": [{"repo_id": "x/y", "root": "."}]}))
    found = includers(
        configs / "parts" / "arm_mixture.json",
        [configs / "train_mixture.json", configs / "other_mixture.json"],
    )
    assert found == [configs / "train_mixture.json"]


def test_jobs_one_and_many_report_the_same_findings(build_mixture, ds, run_cli: Run, tmp_path: Path) -> None:
    mixture = build_mixture(
        *(ds(f"d{i}", action_dim=4 + i % 3, robot_type=f"r{i % 3}") for i in range(8)),
        ds("missing", write=False),
        ds("wide", action_dim=40),
    )
    sequential = run_cli(mixture, "--format", "json", "--jobs", "1", cwd=tmp_path)
    parallel = run_cli(mixture, "--format", "json", "--jobs", "6", cwd=tmp_path)
    assert sequential.returncode == parallel.returncode == 1
    assert json.loads(sequential.stdout)["findings"] == json.loads(parallel.stdout)["findings"]
    assert {f["code"] for f in json.loads(parallel.stdout)["findings"]} >= {"FT301", "FT201"}
    bad = run_cli(mixture, "--jobs", "0", cwd=tmp_path)
    assert bad.returncode == 2
    assert "--jobs" in bad.stderr
