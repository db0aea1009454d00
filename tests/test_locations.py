"""Dataset roots found where LeRobot keeps them: its home folder and its hub snapshot cache.

LeRobot 0.6, ``src/lerobot/utils/constants.py``::

    default_cache_path = Path(HF_HOME) / "lerobot"
    HF_LEROBOT_HOME = Path(os.getenv("HF_LEROBOT_HOME", default_cache_path)).expanduser()
    HF_LEROBOT_HUB_CACHE = HF_LEROBOT_HOME / "hub"

with ``HF_HOME`` from ``huggingface_hub.constants``. ``src/lerobot/datasets/dataset_metadata.py`` reads
``HF_LEROBOT_HOME / repo_id`` first, else ``snapshot_download(repo_id, revision=revision or "v3.0",
cache_dir=HF_LEROBOT_HUB_CACHE)``: ``hub/datasets--<org>--<name>/snapshots/<commit>/`` with files
symlinked into ``blobs/`` and ``refs/<branch or tag>`` holding the commit. The tests build that layout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fasttok_plugin.lerobot.locations import find_dataset_root, hf_home, hub_repo_folder, lerobot_home
from fasttok_plugin.preflight import run_preflight
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.testing import make_example_mixture, write_lerobot_dataset

COMMIT_A = "a" * 40
COMMIT_B = "0123456789abcdef0123456789abcdef01234567"
ENV_NAMES = ("HF_LEROBOT_HOME", "HF_HOME", "XDG_CACHE_HOME")


def write_hub_snapshot(
    hub: Path, repo_id: str, commit: str, refs: dict[str, str] | None = None, **dataset: object
) -> Path:
    """Write a dataset as ``snapshot_download(cache_dir=hub)`` leaves it; return the snapshot folder.

    Files live in ``blobs/<sha256>``; ``snapshots/<commit>/<path>`` are relative symlinks to them; each
    ``refs/<name>`` holds a commit hash without a newline (as huggingface_hub writes it).
    """
    repo = hub / ("datasets--" + repo_id.replace("/", "--"))
    staging = repo / ".staging"
    write_lerobot_dataset(staging, **dataset)  # type: ignore[arg-type]
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for source in sorted(p for p in staging.rglob("*") if p.is_file()):
        blob = repo / "blobs" / hashlib.sha256(source.read_bytes()).hexdigest()
        if not blob.exists():
            shutil.copyfile(source, blob)
        link = snapshot / source.relative_to(staging)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    shutil.rmtree(staging)
    for name, target in (refs or {}).items():
        (repo / "refs" / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / name).write_text(target)
    return snapshot


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No HF variable set and ``HOME`` under ``tmp_path`` (nothing touches the real caches)."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "user"
    monkeypatch.setenv("HOME", str(home))
    return home


def mixture(tmp_path: Path, *entries: dict[str, object]) -> Path:
    path = tmp_path / "configs" / "mixture.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"datasets": list(entries)}))
    return path


# --- the home folder ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"XDG_CACHE_HOME": "{tmp}/xdg"},
        {"HF_HOME": "{tmp}/hf"},
        {"HF_HOME": "{tmp}/hf", "XDG_CACHE_HOME": "{tmp}/xdg"},
        {"HF_LEROBOT_HOME": "{tmp}/lr", "HF_HOME": "{tmp}/hf"},
        {"HF_HOME": "~/elsewhere"},
    ],
)
def test_lerobot_home_matches_lerobots_formula_over_huggingface_hub(clean_env, tmp_path, monkeypatch, env):
    """Our rule against LeRobot's formula evaluated on the installed huggingface_hub's ``HF_HOME``."""
    pytest.importorskip("huggingface_hub")
    values = {name: value.format(tmp=tmp_path) for name, value in env.items()}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    formula = (
        "import os; from pathlib import Path; from huggingface_hub.constants import HF_HOME; "
        # src/lerobot/utils/constants.py
        "print(Path(os.getenv('HF_LEROBOT_HOME', Path(HF_HOME) / 'lerobot')).expanduser())"
    )
    lerobots = subprocess.run(
        [sys.executable, "-c", formula], capture_output=True, text=True, check=True, env=os.environ.copy()
    ).stdout.strip()
    assert lerobot_home() == Path(lerobots)
    assert hub_repo_folder("org/name") == Path(lerobots) / "hub" / "datasets--org--name"


@pytest.mark.parametrize("name", ["HF_LEROBOT_HOME", "HF_HOME"])
def test_an_empty_variable_counts_as_unset(clean_env, monkeypatch, name):
    monkeypatch.setenv(name, "")
    assert hf_home() == clean_env / ".cache" / "huggingface"
    assert lerobot_home() == clean_env / ".cache" / "huggingface" / "lerobot"


def test_a_dataset_under_hf_home_is_found_without_hf_lerobot_home(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    written = write_lerobot_dataset(tmp_path / "hf" / "lerobot" / "org" / "arm", action_dim=3)
    resolved = resolve_mixture(mixture(tmp_path, {"repo_id": "org/arm"}))
    assert resolved.entries[0].error is None
    assert resolved.entries[0].meta.root == written.root
    assert resolved.config.datasets[0].root == written.root  # the documented default root


# --- the hub snapshot cache ----------------------------------------------------------------------------


def test_a_hub_snapshot_named_by_refs_main_is_found_and_preflights_clean(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lr"))
    snapshot = write_hub_snapshot(
        tmp_path / "lr" / "hub", "lerobot/pusht", COMMIT_A, {"main": COMMIT_A}, action_dim=2
    )
    assert (snapshot / "meta" / "info.json").is_symlink()
    result = run_preflight(mixture(tmp_path, {"repo_id": "lerobot/pusht"}), max_action_dim=8)
    assert result.errors == ()
    resolved = resolve_mixture(mixture(tmp_path, {"repo_id": "lerobot/pusht"}))
    assert resolved.entries[0].meta.root == snapshot
    assert resolved.entries[0].meta.action_dim == 2


def test_without_revision_lerobots_default_tag_wins_over_main(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lr"))
    hub = tmp_path / "lr" / "hub"
    tagged = write_hub_snapshot(hub, "org/ds", COMMIT_A, {"v3.0": COMMIT_A}, action_dim=3)
    main = write_hub_snapshot(hub, "org/ds", COMMIT_B, {"main": COMMIT_B}, action_dim=5)
    assert find_dataset_root("org/ds").root == tagged
    assert find_dataset_root("org/ds", "main").root == main
    assert find_dataset_root("org/ds", COMMIT_B).root == main  # a commit hash names its snapshot directly
    entries = resolve_mixture(
        mixture(tmp_path, {"repo_id": "org/ds"}, {"repo_id": "org/ds", "revision": "main"})
    ).entries
    assert [e.meta.action_dim for e in entries] == [3, 5]


def test_the_only_ref_is_taken_and_several_others_ask_for_a_revision(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lr"))
    hub = tmp_path / "lr" / "hub"
    only = write_hub_snapshot(hub, "org/one", COMMIT_A, {"v2.1": COMMIT_A}, action_dim=2)
    assert find_dataset_root("org/one").root == only
    write_hub_snapshot(hub, "org/two", COMMIT_A, {"v2.1": COMMIT_A, "dev": COMMIT_A}, action_dim=2)
    location = find_dataset_root("org/two")
    assert location.root is None
    assert "refs dev, v2.1" in location.searched[-1]
    assert 'set "revision"' in location.searched[-1]
    assert find_dataset_root("org/two", "dev").root is not None


def test_the_home_folder_comes_before_the_snapshot_as_in_lerobot(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lr"))
    local = write_lerobot_dataset(tmp_path / "lr" / "org" / "ds", action_dim=4).root
    write_hub_snapshot(tmp_path / "lr" / "hub", "org/ds", COMMIT_A, {"main": COMMIT_A}, action_dim=2)
    assert find_dataset_root("org/ds").root == local
    # A home folder without meta/info.json is passed over for the snapshot, as LeRobot re-downloads it.
    shutil.rmtree(local / "meta")
    assert find_dataset_root("org/ds").root == hub_repo_folder("org/ds") / "snapshots" / COMMIT_A


def test_a_legacy_local_dir_download_is_passed_over_for_the_snapshot(clean_env, tmp_path, monkeypatch):
    """src/lerobot/datasets/utils.py ``has_legacy_hub_download_metadata``: ``.cache/huggingface/download``."""
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lr"))
    local = write_lerobot_dataset(tmp_path / "lr" / "org" / "ds", action_dim=4).root
    (local / ".cache" / "huggingface" / "download").mkdir(parents=True)
    assert find_dataset_root("org/ds").root == local  # no snapshot: the mirror is all there is
    assert "legacy local_dir download" in find_dataset_root("org/ds").searched[0]
    hub = tmp_path / "lr" / "hub"
    snapshot = write_hub_snapshot(hub, "org/ds", COMMIT_A, {"v3.0": COMMIT_A}, action_dim=2)
    assert find_dataset_root("org/ds").root == snapshot


def test_a_given_root_is_never_replaced_by_the_cache(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lr"))
    write_hub_snapshot(tmp_path / "lr" / "hub", "org/ds", COMMIT_A, {"main": COMMIT_A}, action_dim=2)
    result = run_preflight(mixture(tmp_path, {"repo_id": "org/ds", "root": "../nowhere"}))
    (finding,) = [f for f in result.findings if f.code == "FT301"]
    assert str(tmp_path / "nowhere") in finding.message
    assert "snapshots" not in finding.message
    assert finding.pointer == "/datasets/0/root"


# --- FT301 says where it looked --------------------------------------------------------------------------


def test_ft301_lists_every_place_looked_at(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    home = tmp_path / "hf" / "lerobot"
    write_hub_snapshot(home / "hub", "org/tagged", COMMIT_A, {"main": COMMIT_A}, action_dim=2)
    path = mixture(tmp_path, {"repo_id": "org/absent"}, {"repo_id": "org/tagged", "revision": "v2.1"})
    result = run_preflight(path, max_action_dim=8)
    absent, tagged = (f for f in result.findings if f.code == "FT301")
    assert absent.entry_index == 0
    assert absent.pointer == "/datasets/0"
    assert f"{home / 'org' / 'absent'} (no such folder)" in absent.message
    assert f"{home / 'hub' / 'datasets--org--absent' / 'snapshots'} (no such folder)" in absent.message
    assert "HF_LEROBOT_HOME or HF_HOME" in absent.hint
    assert f"{home / 'hub' / 'datasets--org--tagged' / 'refs' / 'v2.1'} (no such ref)" in tagged.message
    assert f"--revision v2.1 --cache-dir {home / 'hub'}" in tagged.hint  # where LeRobot 0.6 downloads to


def test_the_cli_prints_where_it_looked(clean_env, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env["HF_HOME"] = str(tmp_path / "hf")
    proc = subprocess.run(
        [sys.executable, "-m", "fasttok_plugin.preflight.cli", str(mixture(tmp_path, {"repo_id": "org/x"}))],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "FT301" in proc.stdout
    assert str(tmp_path / "hf" / "lerobot" / "org" / "x") in proc.stdout
    assert str(tmp_path / "hf" / "lerobot" / "hub" / "datasets--org--x" / "snapshots") in proc.stdout


# --- parallel reads ------------------------------------------------------------------------------------


def test_parallel_resolution_equals_the_sequential_one(tmp_path):
    path = make_example_mixture(tmp_path / "ex", n_datasets=12)
    one, many = resolve_mixture(path, threads=1), resolve_mixture(path, threads=4)
    assert one.names == many.names
    for a, b in zip(one.entries, many.entries, strict=True):
        assert a.error is None
        assert b.error is None
        assert (a.meta.root, a.meta.action_dim, a.meta.selected_frames) == (
            b.meta.root,
            b.meta.action_dim,
            b.meta.selected_frames,
        )
        np.testing.assert_array_equal(a.meta.stats.min, b.meta.stats.min)
        np.testing.assert_array_equal(a.meta.stats.std, b.meta.stats.std)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        resolve_mixture(path, threads=0)


@pytest.mark.parametrize("repo_id", ["org/" + "n" * 300, "org/a\0b"])
def test_a_repo_id_no_filesystem_can_hold_is_reported_not_raised(clean_env, tmp_path, monkeypatch, repo_id):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lr"))
    (tmp_path / "lr" / "hub").mkdir(parents=True)
    result = run_preflight(mixture(tmp_path, {"repo_id": repo_id}))
    assert [f.code for f in result.findings if f.severity.value == "error"] == ["FT301"]
