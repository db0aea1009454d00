"""build_norm_heads pins every rule of DESIGN §5 on real LeRobot datasets written to disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from fasttok_plugin.heads import (
    DimOverflow,
    NormHeads,
    NormHeadsError,
    build_norm_heads,
    compute_norm_key,
    is_missing_tag,
)
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.testing import SyntheticDataset

VERSIONS = ["v2.1", "v3.0"]
MakeDataset = Callable[..., SyntheticDataset]
WriteMixture = Callable[..., Path]


def read_actions(root: Path, dim: int, episodes: Sequence[int] | None = None) -> np.ndarray:
    """Read the action column back from every data parquet of a dataset (independent of lerobot.py)."""
    blocks = []
    for path in sorted((root / "data").rglob("*.parquet")):
        table = pq.read_table(path, columns=["action", "episode_index", "index"])
        if episodes is not None:
            table = table.filter(pc.is_in(table["episode_index"], value_set=pc.cast(episodes, "int64")))
        if table.num_rows == 0:
            continue
        table = table.sort_by("index")
        flat = table["action"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
        blocks.append(flat.reshape(-1, dim).astype(np.float64))
    return np.concatenate(blocks)


def heads_for(
    write_mixture_file: WriteMixture, entries: Sequence[Mapping[str, Any]], max_action_dim: int, **top: Any
) -> NormHeads:
    """Write a mixture whose roots are ``datasets/<repo>``, resolve it and build its heads."""
    datasets = [{"root": f"datasets/{e['repo_id']}", **e} for e in entries]
    path = write_mixture_file({"datasets": datasets, **top})
    return build_norm_heads(resolve_mixture(path), max_action_dim)


# --- tags and keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "   ", "unknown", "UNKNOWN", "Unknown", " unknown\t"])
def test_sentinel_tag_values_are_missing(value: object) -> None:
    assert is_missing_tag(value)
    assert compute_norm_key(value, "joint_pos", "org/ds") == ("org/ds", True)
    assert compute_norm_key("arm", value, "org/ds") == ("org/ds", True)


@pytest.mark.parametrize("value", ["arm", "unknown_arm", "not unknown", "0"])
def test_real_tag_values_make_a_robot_key(value: str) -> None:
    assert not is_missing_tag(value)
    assert compute_norm_key(value, "ee", "org/ds") == (f"{value}::ee", False)


@pytest.mark.parametrize("version", VERSIONS)
def test_repeated_repo_ids_are_numbered_and_untagged_entries_fall_back_to_their_name(
    version: str, make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    make_dataset("A", version=version, robot_type=None, action_dim=3)
    make_dataset("B", version=version, robot_type="arm", control_mode="ee", action_dim=3)
    heads = heads_for(write_mixture_file, [{"repo_id": "A"}, {"repo_id": "B"}, {"repo_id": "A"}], 4)

    assert heads.entry_names == ("A#0", "B", "A#1")
    assert heads.keys == ("A#0", "arm::ee", "A#1")
    assert heads.dataset_to_head == (0, 1, 2)
    assert heads.fallback_entries == (0, 2)
    assert [(d.repo_id, d.entries) for d in heads.duplicate_fallbacks] == [("A", (0, 2))]
    # Same data, separate singleton heads: identical stats, which is why the duplicate is reported.
    np.testing.assert_array_equal(heads.min[0], heads.min[2])
    assert any("'A'" in w for w in heads.warnings())
    assert heads.errors() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_sentinel_tags_on_disk_fall_back_and_overrides_beat_info(
    version: str, make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    make_dataset("null_rt", version=version, robot_type=None, control_mode="ee")
    make_dataset("blank_rt", version=version, robot_type="  ", control_mode="ee")
    make_dataset("shouty", version=version, robot_type="UNKNOWN", control_mode="ee")
    make_dataset("blank_cm", version=version, robot_type="arm", info_overrides={"control_mode": ""})
    make_dataset("no_cm", version=version, robot_type="arm")  # control_mode absent from info.json
    make_dataset("fixed", version=version, robot_type="unknown")
    entries = [
        {"repo_id": "null_rt"},
        {"repo_id": "blank_rt"},
        {"repo_id": "shouty"},
        {"repo_id": "blank_cm"},
        {"repo_id": "no_cm"},
        {"repo_id": "fixed", "robot_type": "arm", "control_mode": "ee"},
    ]
    heads = heads_for(write_mixture_file, entries, 8)

    assert heads.keys == ("null_rt", "blank_rt", "shouty", "blank_cm", "no_cm", "arm::ee")
    assert heads.fallback_entries == (0, 1, 2, 3, 4)
    assert heads.missing_tags == ()  # not required: fallbacks are allowed
    assert heads.duplicate_fallbacks == ()


@pytest.mark.parametrize("version", VERSIONS)
def test_require_non_empty_lists_every_offender_with_the_override_that_fixes_it(
    version: str, make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    make_dataset("ok", version=version, robot_type="arm", control_mode="ee")
    make_dataset("no_rt", version=version, robot_type=None, control_mode="ee")
    make_dataset("no_cm", version=version, robot_type="arm")
    make_dataset("neither", version=version, robot_type="Unknown")
    entries = [{"repo_id": r} for r in ("ok", "no_rt", "no_cm", "neither")]
    heads = heads_for(
        write_mixture_file,
        entries,
        8,
        require_non_empty_robot_type=True,
        require_non_empty_control_mode=True,
    )

    offenders = [(m.entry, m.name, m.field) for m in heads.missing_tags]
    assert offenders == [
        (1, "no_rt", "robot_type"),
        (2, "no_cm", "control_mode"),
        (3, "neither", "robot_type"),
        (3, "neither", "control_mode"),
    ]
    errors = heads.errors()
    assert len(errors) == 4
    for (entry, name, field), message in zip(offenders, errors, strict=True):
        assert f"entry {entry} ({name})" in message
        assert f'"{field}"' in message
        assert f"/datasets/{entry}" in message
        assert f"require_non_empty_{field}" in message
    with pytest.raises(NormHeadsError) as caught:
        heads.raise_for_errors()
    assert caught.value.errors == tuple(errors)


@pytest.mark.parametrize("flag", ["require_non_empty_robot_type", "require_non_empty_control_mode"])
def test_require_non_empty_checks_only_the_field_it_names(
    flag: str, make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    make_dataset("no_cm", robot_type="arm")
    heads = heads_for(write_mixture_file, [{"repo_id": "no_cm"}], 8, **{flag: True})
    expected = ["control_mode"] if flag == "require_non_empty_control_mode" else []
    assert [m.field for m in heads.missing_tags] == expected


def test_keys_keep_first_occurrence_order(
    make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    for name, mode in [("x", "a"), ("y", "b"), ("z", "a"), ("w", "b")]:
        make_dataset(name, robot_type="arm", control_mode=mode, action_dim=2, seed=len(name))
    heads = heads_for(write_mixture_file, [{"repo_id": r} for r in "xyzw"], 2)

    assert heads.keys == ("arm::a", "arm::b")
    assert heads.dataset_to_head == (0, 1, 0, 1)
    assert heads.head_members == ((0, 2), (1, 3))


# --- stats pooling -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "list_type", "write_stats"),
    [
        ("v2.1", "fixed", True),
        ("v2.1", "variable", True),
        ("v2.1", "fixed", False),  # v2.1 writers often omit meta/stats.json: aggregate episodes_stats
        ("v3.0", "fixed", True),
        ("v3.0", "variable", True),
        ("v3.0", "variable", False),  # aggregate the stats/... columns of the episode tables
    ],
)
def test_head_stats_equal_numpy_over_the_members_concatenated_raw_actions(
    version: str,
    list_type: str,
    write_stats: bool,
    make_dataset: MakeDataset,
    write_mixture_file: WriteMixture,
) -> None:
    # Different lengths and offsets: an unweighted average of means/stds would be visibly wrong.
    members = [
        make_dataset(
            f"m{i}",
            version=version,
            list_type=list_type,
            write_stats=write_stats,
            robot_type="arm",
            control_mode="joint",
            action_dim=3,
            episode_lengths=lengths,
            seed=i,
        )
        for i, lengths in enumerate([(12, 30), (7,), (50, 9, 21)])
    ]
    other = make_dataset("other", version=version, list_type=list_type, write_stats=write_stats, action_dim=2)
    entries = [{"repo_id": "m0"}, {"repo_id": "other"}, {"repo_id": "m1"}, {"repo_id": "m2"}]
    heads = heads_for(write_mixture_file, entries, 5)

    assert heads.keys == ("arm::joint", "other")  # "other" has no control_mode: a fallback head
    data = np.concatenate([read_actions(m.root, 3) for m in members])
    head = heads.dataset_to_head[0]
    assert heads.head_members[head] == (0, 2, 3)
    assert heads.native_dims[head] == 3
    assert int(heads.counts[head]) == data.shape[0]
    np.testing.assert_allclose(heads.min[head, :3], data.min(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(heads.max[head, :3], data.max(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(heads.mean[head, :3], data.mean(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(heads.std[head, :3], data.std(axis=0), rtol=1e-9, atol=1e-12)
    naive_mean = np.mean([read_actions(m.root, 3).mean(axis=0) for m in members], axis=0)
    assert not np.allclose(naive_mean, heads.mean[head, :3], rtol=1e-6)
    # Dims beyond the native dim are zero-padded, exactly like the data.
    assert heads.native_dims == (3, 2)
    for stat in (heads.min, heads.max, heads.mean, heads.std):
        assert np.all(stat[head, 3:] == 0.0)
    other_head = heads.dataset_to_head[1]
    other_data = read_actions(other.root, 2)
    np.testing.assert_allclose(heads.min[other_head, :2], other_data.min(axis=0), rtol=0, atol=1e-12)
    assert np.all(heads.max[other_head, 2:] == 0.0)


@pytest.mark.parametrize("version", VERSIONS)
def test_zero_padding_pools_padded_zeros_with_wider_members(
    version: str, make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    # Same key, different dims: an error (reported), but the pooled stats still describe the padded data.
    narrow = make_dataset("narrow", version=version, robot_type="arm", control_mode="ee", action_dim=2)
    wide = make_dataset("wide", version=version, robot_type="arm", control_mode="ee", action_dim=3, seed=5)
    heads = heads_for(write_mixture_file, [{"repo_id": "narrow"}, {"repo_id": "wide"}], 4)

    padded = np.concatenate(
        [
            np.pad(read_actions(narrow.root, 2), ((0, 0), (0, 2))),
            np.pad(read_actions(wide.root, 3), ((0, 0), (0, 1))),
        ]
    )
    np.testing.assert_allclose(heads.min[0], padded.min(axis=0), atol=1e-12)
    np.testing.assert_allclose(heads.max[0], padded.max(axis=0), atol=1e-12)
    np.testing.assert_allclose(heads.mean[0], padded.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(heads.std[0], padded.std(axis=0), rtol=1e-9, atol=1e-12)
    assert heads.native_dims == (3,)
    [record] = heads.incompatible_dims
    assert (record.head, record.key, record.dims) == (0, "arm::ee", ((0, 2), (1, 3)))
    assert any("entry 0 (narrow) d=2" in e and "entry 1 (wide) d=3" in e for e in heads.errors())


@pytest.mark.parametrize("version", VERSIONS)
def test_episode_selection_changes_the_stats(
    version: str, make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    ds = make_dataset("sel", version=version, action_dim=3, episode_lengths=(20, 25, 30), control_mode="ee")
    full = heads_for(write_mixture_file, [{"repo_id": "sel"}], 3)
    picked = heads_for(write_mixture_file, [{"repo_id": "sel", "episodes": [0, 2]}], 3)
    dropped = heads_for(write_mixture_file, [{"repo_id": "sel", "excluded_episodes": [0, 2]}], 3)

    for heads, episodes in [(full, [0, 1, 2]), (picked, [0, 2]), (dropped, [1])]:
        data = read_actions(ds.root, 3, episodes)
        assert int(heads.counts[0]) == data.shape[0]
        np.testing.assert_allclose(heads.min[0], data.min(axis=0), atol=1e-12)
        np.testing.assert_allclose(heads.max[0], data.max(axis=0), atol=1e-12)
        np.testing.assert_allclose(heads.mean[0], data.mean(axis=0), atol=1e-12)
        np.testing.assert_allclose(heads.std[0], data.std(axis=0), rtol=1e-9, atol=1e-12)
    assert len({full.fingerprint, picked.fingerprint, dropped.fingerprint}) == 3


@pytest.mark.parametrize("count", [[0], None])
def test_a_member_whose_stats_lack_a_frame_count_weighs_by_its_total_frames(
    count: object, make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    short = make_dataset("short", action_dim=2, control_mode="ee", episode_lengths=(10,), seed=1)
    long = make_dataset("long", action_dim=2, control_mode="ee", episode_lengths=(70, 50), seed=2)
    path = long.root / "meta/stats.json"
    stats = json.loads(path.read_text())
    if count is None:
        del stats["action"]["count"]
    else:
        stats["action"]["count"] = count
    path.write_text(json.dumps(stats))
    heads = heads_for(write_mixture_file, [{"repo_id": "short"}, {"repo_id": "long"}], 2)

    data = np.concatenate([read_actions(short.root, 2), read_actions(long.root, 2)])
    assert int(heads.counts[0]) == 130
    np.testing.assert_allclose(heads.mean[0], data.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(heads.std[0], data.std(axis=0), rtol=1e-9, atol=1e-12)


# --- non-finite stats ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_infinite_stats_are_masked_before_pooling_and_reported(
    version: str, make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    inf = float("inf")
    good = make_dataset("good", version=version, robot_type="arm", control_mode="ee", action_dim=3)
    bad = make_dataset("bad", version=version, robot_type="arm", control_mode="ee", action_dim=3, seed=9)
    bad_data = read_actions(bad.root, 3)
    hi = bad_data.max(axis=0).tolist()
    lo = bad_data.min(axis=0).tolist()
    mean = bad_data.mean(axis=0).tolist()
    make_dataset(
        "bad",
        version=version,
        robot_type="arm",
        control_mode="ee",
        action_dim=3,
        seed=9,
        stats_override={
            "max": [inf, *hi[1:]],
            "min": [lo[0], -inf, lo[2]],
            "mean": [*mean[:2], float("nan")],
        },
    )
    heads = heads_for(write_mixture_file, [{"repo_id": "good"}, {"repo_id": "bad"}], 3)

    good_data = read_actions(good.root, 3)
    both = np.concatenate([good_data, bad_data])
    assert heads.max[0, 0] == pytest.approx(good_data[:, 0].max())  # bad's +inf masked
    assert heads.min[0, 1] == pytest.approx(good_data[:, 1].min())  # bad's -inf masked
    assert heads.min[0, 0] == pytest.approx(both[:, 0].min())  # finite values still pool
    assert heads.mean[0, 2] == pytest.approx(good_data[:, 2].mean())  # NaN mean: only good's moments
    assert heads.std[0, 2] == pytest.approx(good_data[:, 2].std())
    assert np.isfinite(heads.min).all()
    assert np.isfinite(heads.max).all()
    found = {(r.head, r.dim, r.stat, r.entries) for r in heads.nonfinite}
    assert found == {(0, 0, "max", (1,)), (0, 1, "min", (1,)), (0, 2, "mean", (1,))}
    assert heads.filled_dims == ()
    assert heads.errors() == []  # masked values are warnings
    assert len(heads.warnings()) == 3


@pytest.mark.parametrize("version", VERSIONS)
def test_a_dim_without_any_finite_value_becomes_minus_one_one_and_is_an_error(
    version: str, make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    nan, inf = float("nan"), float("inf")
    make_dataset(
        "broken",
        version=version,
        action_dim=3,
        control_mode="ee",
        stats_override={"min": [0.0, nan, -1.0], "max": [1.0, inf, 1.0]},
    )
    heads = heads_for(write_mixture_file, [{"repo_id": "broken"}], 4)

    assert heads.min[0, 1] == -1.0
    assert heads.max[0, 1] == 1.0
    assert [(f.head, f.key, f.dim, f.stats) for f in heads.filled_dims] == [(0, "arm::ee", 1, ("min", "max"))]
    assert {(r.dim, r.stat) for r in heads.nonfinite} == {(1, "min"), (1, "max")}
    [error] = heads.errors()
    assert "dim 1" in error
    assert "[-1, 1]" in error
    assert "arm::ee" in error
    with pytest.raises(NormHeadsError, match="dim 1"):
        heads.raise_for_errors()


# --- dims and unreadable entries -----------------------------------------------------------------


def test_dim_overflow_is_reported_and_the_entry_gets_no_head(
    make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    make_dataset("small", action_dim=4, control_mode="ee")
    make_dataset("huge", action_dim=9, robot_type="big", control_mode="ee")
    heads = heads_for(write_mixture_file, [{"repo_id": "small"}, {"repo_id": "huge"}], 6)

    assert heads.keys == ("arm::ee",)
    assert heads.dataset_to_head == (0, -1)
    assert heads.dim_overflows == (DimOverflow(1, "huge", 9, 6, "/datasets/1"),)
    [error] = heads.errors()
    assert "entry 1 (huge)" in error
    assert "max_action_dim" in error
    assert "9" in error


def test_unreadable_entries_are_skipped_and_named(
    make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    make_dataset("fine", action_dim=2, control_mode="ee")
    make_dataset("nostats", action_dim=2, version="v2.1", write_stats=False, write_episode_stats=False)
    entries = [{"repo_id": "fine"}, {"repo_id": "gone"}, {"repo_id": "nostats"}]
    heads = heads_for(write_mixture_file, entries, 2)

    assert heads.dataset_to_head == (0, -1, -1)
    assert [(s.entry, s.name) for s in heads.skipped_entries] == [(1, "gone"), (2, "nostats")]
    errors = heads.errors()
    assert len(errors) == 2
    assert "entry 1 (gone)" in errors[0]
    assert "/datasets/1" in errors[0]
    assert "entry 2 (nostats)" in errors[1]
    assert heads.keys == ("arm::ee",)


def test_max_action_dim_must_be_positive(make_dataset: MakeDataset, write_mixture_file: WriteMixture) -> None:
    make_dataset("ds", action_dim=2)
    path = write_mixture_file({"datasets": [{"repo_id": "ds", "root": "datasets/ds"}]})
    with pytest.raises(ValueError, match="max_action_dim"):
        build_norm_heads(resolve_mixture(path), 0)


# --- fingerprint ---------------------------------------------------------------------------------

FINGERPRINT_SCRIPT = """
import sys
from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.resolve import resolve_mixture
print(build_norm_heads(resolve_mixture(sys.argv[1]), int(sys.argv[2])).fingerprint)
"""


def _fingerprint_setup(make_dataset: MakeDataset) -> list[dict[str, Any]]:
    make_dataset("a", version="v2.1", action_dim=3, control_mode="ee")
    make_dataset("b", version="v3.0", action_dim=3, control_mode="ee", seed=1)
    make_dataset("c", version="v3.0", robot_type=None, actions=[C_ACTIONS])
    return [{"repo_id": "a"}, {"repo_id": "c"}, {"repo_id": "b"}]


# A 2-dim fallback member whose second dim is all zeros: its padded stats equal those of the 1-dim
# version of the same data, so only the native dim tells them apart.
C_ACTIONS = np.stack([np.linspace(-1.0, 2.0, 40), np.zeros(40)], axis=1).astype(np.float32)


def test_fingerprint_is_stable_across_runs_and_processes(
    make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    entries = _fingerprint_setup(make_dataset)
    first = heads_for(write_mixture_file, entries, 4)
    again = heads_for(write_mixture_file, entries, 4)
    assert first.fingerprint == again.fingerprint
    assert len(first.fingerprint) == 64
    assert int(first.fingerprint, 16) >= 0

    path = write_mixture_file({"datasets": [{"root": f"datasets/{e['repo_id']}", **e} for e in entries]})
    for seed in ("0", "12345"):  # different str hash seeds must not matter
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", FINGERPRINT_SCRIPT, str(path), "4"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            timeout=120,
        )
        assert out.stdout.strip() == first.fingerprint


def test_fingerprint_changes_with_any_stat_tag_dim_or_max_action_dim(
    tmp_path: Path, make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    entries = _fingerprint_setup(make_dataset)
    base = heads_for(write_mixture_file, entries, 4)
    prints = {"base": base.fingerprint}

    prints["max_action_dim"] = heads_for(write_mixture_file, entries, 5).fingerprint
    tagged = [dict(entries[0], control_mode="joint"), *entries[1:]]
    prints["tag"] = heads_for(write_mixture_file, tagged, 4).fingerprint
    retagged = [entries[0], dict(entries[1], robot_type="arm", control_mode="x"), entries[2]]
    prints["fallback tag"] = heads_for(write_mixture_file, retagged, 4).fingerprint

    # One stat value of one member: bump a single max in a's stats.json.
    a_max = read_actions(tmp_path / "datasets" / "a", 3).max(axis=0)
    a_max[2] += 0.5
    make_dataset("a", version="v2.1", action_dim=3, control_mode="ee", stats_override={"max": a_max.tolist()})
    prints["stat"] = heads_for(write_mixture_file, entries, 4).fingerprint
    make_dataset("a", version="v2.1", action_dim=3, control_mode="ee")  # restore
    assert heads_for(write_mixture_file, entries, 4).fingerprint == base.fingerprint

    # Same padded stats, different native dim.
    # c is a singleton head (row 1): pin its stats.json to the 2-dim values (numpy may differ by an ulp).
    same_stats = {s: getattr(base, s)[1, :1].tolist() for s in ("min", "max", "mean", "std")}
    make_dataset("c", version="v3.0", robot_type=None, actions=[C_ACTIONS[:, :1]], stats_override=same_stats)
    narrowed = heads_for(write_mixture_file, entries, 4)
    for name in ("min", "max", "mean", "std"):
        np.testing.assert_array_equal(getattr(narrowed, name), getattr(base, name))
    assert narrowed.native_dims != base.native_dims
    prints["dim"] = narrowed.fingerprint

    assert len(set(prints.values())) == len(prints), prints


# --- head grouping (issue #11) -------------------------------------------------------------------


GROUPED_FINGERPRINT_SCRIPT = """
import sys
from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.resolve import resolve_mixture
print(build_norm_heads(resolve_mixture(sys.argv[1]), int(sys.argv[2]), grouping=sys.argv[3]).fingerprint)
"""


@pytest.mark.parametrize("grouping", ["global", "dataset"])
def test_a_grouped_fingerprint_is_stable_across_processes(
    grouping: str, make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    entries = _fingerprint_setup(make_dataset)
    path = write_mixture_file({"datasets": [{"root": f"datasets/{e['repo_id']}", **e} for e in entries]})
    here = build_norm_heads(resolve_mixture(path), 4, grouping=grouping).fingerprint
    assert here != build_norm_heads(resolve_mixture(path), 4).fingerprint
    out = subprocess.run(
        [sys.executable, "-c", GROUPED_FINGERPRINT_SCRIPT, str(path), "4", grouping],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "7"},
        timeout=120,
    )
    assert out.stdout.strip() == here


@pytest.mark.parametrize("grouping", ["robot_control", "global", "dataset"])
def test_unreadable_and_overflowing_entries_get_no_head_under_every_grouping(
    grouping: str, tmp_path: Path, make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    make_dataset("ok", action_dim=3, control_mode="ee")
    make_dataset("wide", action_dim=6, control_mode="ee", seed=1)
    entries = [
        {"repo_id": "ok", "root": "datasets/ok"},
        {"repo_id": "gone", "root": "datasets/gone"},
        {"repo_id": "wide", "root": "datasets/wide"},
    ]
    heads = build_norm_heads(resolve_mixture(write_mixture_file({"datasets": entries})), 4, grouping=grouping)
    assert heads.dataset_to_head == (0, -1, -1)
    assert heads.head_members == ((0,),)
    assert [r.entry for r in heads.skipped_entries] == [1]
    assert [(r.entry, r.dim) for r in heads.dim_overflows] == [(2, 6)]
    assert len(heads.errors()) == 2
