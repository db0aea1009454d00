"""Resolving a mixture: names, effective tags, metadata per entry, errors kept on the entry."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from fasttok_plugin.lerobot import DatasetError, read_episode_frames
from fasttok_plugin.mixture import MixtureError, load_mixture
from fasttok_plugin.resolve import ResolvedMixture, dataset_names, resolve_mixture
from fasttok_plugin.testing import write_lerobot_dataset


@pytest.mark.parametrize(
    ("repo_ids", "names"),
    [
        (["A", "B", "A"], ["A#0", "B", "A#1"]),
        (["A", "B", "C"], ["A", "B", "C"]),
        (["A", "A", "A", "B", "B"], ["A#0", "A#1", "A#2", "B#0", "B#1"]),
        ([], []),
    ],
)
def test_dataset_names_number_every_occurrence_of_a_repeated_repo_id(repo_ids, names):
    assert dataset_names(repo_ids) == names


def test_resolves_the_example_mixture(example_mixture):
    resolved = resolve_mixture(example_mixture)
    assert isinstance(resolved, ResolvedMixture)
    assert resolved.config.path == example_mixture
    assert [e.index for e in resolved.entries] == list(range(6))
    assert resolved.names == tuple(e.repo_id for e in resolved.config.datasets)
    assert resolved.errors == ()
    by_name = {e.name.split("/")[1]: e for e in resolved.entries}
    assert by_name["arm7_a"].meta.stats.source == "meta/stats.json"
    assert by_name["arm7_b"].meta.stats.source == "meta/episodes_stats.jsonl"
    assert (by_name["arm7_a"].robot_type, by_name["arm7_a"].control_mode) == ("arm7", "joint_pos")
    assert by_name["bimanual"].meta.action_dim == 14
    assert by_name["bimanual"].meta.version == "v3.0"
    assert by_name["untagged"].robot_type is None
    # The override in the mixture beats info.json's "unknown".
    assert by_name["so100_override"].meta.robot_type == "unknown"
    assert (by_name["so100_override"].robot_type, by_name["so100_override"].control_mode) == (
        "so100",
        "joint_pos",
    )


def test_effective_tags_override_else_info(make_dataset, write_mixture_file):
    make_dataset("a", robot_type="arm", control_mode="joint_pos")
    document = {
        "datasets": [
            {"repo_id": "a", "root": "datasets/a"},
            {"repo_id": "a", "root": "datasets/a", "control_mode": "ee_delta"},
            {"repo_id": "a", "root": "datasets/a", "robot_type": "", "control_mode": "UNKNOWN"},
        ]
    }
    resolved = resolve_mixture(write_mixture_file(document))
    assert resolved.names == ("a#0", "a#1", "a#2")
    tags = [(e.robot_type, e.control_mode) for e in resolved.entries]
    # An override given in the mixture wins even when blank: norm heads then treat it as missing.
    assert tags == [("arm", "joint_pos"), ("arm", "ee_delta"), ("", "UNKNOWN")]
    assert all(e.meta.robot_type == "arm" for e in resolved.entries)


def test_dataset_errors_are_stored_on_the_entry_never_raised(make_dataset, write_mixture_file, tmp_path):
    make_dataset("good")
    make_dataset("bad_fps", info_overrides={"fps": None})
    document = {
        "datasets": [
            {"repo_id": "org/good", "root": "datasets/good"},
            {"repo_id": "org/missing", "root": "datasets/missing"},
            {"repo_id": "org/bad_fps", "root": "datasets/bad_fps"},
        ]
    }
    resolved = resolve_mixture(write_mixture_file(document))
    good, missing, bad = resolved.entries
    assert good.error is None
    assert good.meta is not None
    assert missing.meta is None
    assert isinstance(missing.error, DatasetError)
    assert missing.error.reason == "root_missing"
    assert missing.error.path == tmp_path / "datasets" / "missing"
    message = str(missing.error)
    assert "entry 1 (org/missing)" in message
    assert str(tmp_path / "datasets" / "missing") in message
    assert "Fix:" in message
    assert bad.error.reason == "info_invalid"
    assert "entry 2 (org/bad_fps)" in str(bad.error)
    assert resolved.errors == (missing, bad)


def test_default_root_under_hf_lerobot_home(lerobot_home, write_mixture_file):
    written = write_lerobot_dataset(lerobot_home / "org" / "home_ds", action_dim=3)
    resolved = resolve_mixture(write_mixture_file({"datasets": [{"repo_id": "org/home_ds"}]}))
    entry = resolved.entries[0]
    assert entry.error is None
    assert entry.meta.root == written.root
    assert entry.meta.action_dim == 3


def test_entry_selection_and_action_key_reach_the_metadata(make_dataset, write_mixture_file):
    ds = make_dataset(
        "sel", version="v2.1", episode_lengths=(5, 15, 25), action_key="joint_cmd", action_dim=2
    )
    document = {
        "dataset_mixture": {
            "datasets": [
                {
                    "repo_id": "sel",
                    "root": "datasets/sel",
                    "episodes": [2, 0],
                    "data_features_name_mapping": {"actions": "joint_cmd"},
                }
            ]
        }
    }
    entry = resolve_mixture(write_mixture_file(document)).entries[0]
    assert entry.error is None
    assert entry.meta.action_key == "joint_cmd"
    assert [e.index for e in entry.meta.episodes] == [0, 2]
    selected = ds.concatenated([0, 2]).astype(np.float64)
    np.testing.assert_allclose(entry.meta.stats.mean, selected.mean(0), rtol=1e-10)
    assert entry.meta.stats.count == 30


def test_accepts_a_parsed_config_and_propagates_mixture_errors(example_mixture, tmp_path):
    config = load_mixture(example_mixture)
    resolved = resolve_mixture(config)
    assert resolved.config is config
    with pytest.raises(MixtureError):
        resolve_mixture(tmp_path / "absent.json")


def test_resolves_both_layouts_and_list_types(make_dataset, write_mixture_file):
    specs = {
        "v21_fixed": {"version": "v2.1"},
        "v21_var": {"version": "v2.1", "list_type": "variable"},
        "v30_fixed": {"version": "v3.0"},
        "v30_var": {"version": "v3.0", "list_type": "variable", "write_stats": False},
    }
    written = {
        name: make_dataset(name, action_dim=4, seed=i, **kw) for i, (name, kw) in enumerate(specs.items())
    }
    document = {"datasets": [{"repo_id": n, "root": f"datasets/{n}"} for n in specs]}
    for entry in resolve_mixture(write_mixture_file(document)).entries:
        values = written[entry.name].concatenated().astype(np.float64)
        np.testing.assert_array_equal(entry.meta.stats.min, values.min(0))
        np.testing.assert_array_equal(entry.meta.stats.max, values.max(0))


def test_every_bad_input_names_entry_file_and_fix(make_dataset, write_mixture_file, tmp_path):
    make_dataset("ok")
    make_dataset("no_features", info_overrides={"features": None})
    make_dataset("short_stats", action_dim=4, stats_override={"std": [1.0, 1.0]})
    wrong_dim = make_dataset("wrong_dim", action_dim=5)
    info_path = wrong_dim.root / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["features"]["action"]["shape"] = [6]
    info_path.write_text(json.dumps(info))
    names = ["ok", "gone", "no_features", "short_stats", "wrong_dim"]
    document = {"datasets": [{"repo_id": f"org/{n}", "root": f"datasets/{n}"} for n in names]}
    ok, gone, no_features, short_stats, dim = resolve_mixture(write_mixture_file(document)).entries
    assert ok.error is None
    assert ok.meta.stats_error is None

    cases = [
        (gone.error, "root_missing", "entry 1 (org/gone)", tmp_path / "datasets/gone"),
        (
            no_features.error,
            "info_invalid",
            "entry 2 (org/no_features)",
            tmp_path / "datasets/no_features/meta/info.json",
        ),
        (
            short_stats.meta.stats_error,
            "stats_invalid",
            "entry 3 (org/short_stats)",
            tmp_path / "datasets/short_stats/meta/stats.json",
        ),
    ]
    with pytest.raises(DatasetError) as info_error:
        read_episode_frames(dim.meta, dim.meta.episodes[0])
    cases.append(
        (info_error.value, "data_invalid", "entry 4 (org/wrong_dim)", dim.meta.episodes[0].data_file)
    )
    for error, reason, label, path in cases:
        assert error.reason == reason
        assert error.path == path
        message = str(error)
        assert label in message
        assert str(path) in message
        assert "Fix:" in message
        assert error.hint


def test_resolved_mixture_pickles_for_worker_processes(example_mixture):
    resolved = resolve_mixture(example_mixture)
    clone = pickle.loads(pickle.dumps(resolved))
    assert clone.names == resolved.names
    assert clone.config.sha256 == resolved.config.sha256
    for a, b in zip(clone.entries, resolved.entries, strict=True):
        assert a.entry == b.entry
        np.testing.assert_array_equal(a.meta.stats.mean, b.meta.stats.mean)
        assert a.meta.episodes == b.meta.episodes
