"""Reading LeRobot datasets (v2.1 and v3.0) written to disk with pyarrow."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from fasttok_plugin.lerobot import (
    ActionStats,
    DatasetError,
    action_array,
    aggregate_stats,
    load_json,
    read_dataset_meta,
    read_episode_frames,
)
from fasttok_plugin.testing import write_lerobot_dataset

VERSIONS = ["v2.1", "v3.0"]
LIST_TYPES = ["fixed", "variable"]


def _numpy_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    block = values.astype(np.float64)
    return {"min": block.min(0), "max": block.max(0), "mean": block.mean(0), "std": block.std(0)}


def _assert_stats_equal(stats: ActionStats, values: np.ndarray) -> None:
    expected = _numpy_stats(values)
    np.testing.assert_array_equal(stats.min, expected["min"])
    np.testing.assert_array_equal(stats.max, expected["max"])
    np.testing.assert_allclose(stats.mean, expected["mean"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.std, expected["std"], rtol=1e-9, atol=1e-12)
    assert stats.count == values.shape[0]


def _edit_json(path: Path, edit) -> None:
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))


# --- metadata --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_metadata_equals_what_was_written(make_dataset, version):
    ds = make_dataset(
        "m",
        version=version,
        robot_type="so100",
        control_mode="joint_pos",
        action_dim=6,
        episode_lengths=(5, 7, 9),
        fps=15.0,
        files_per_chunk=2,
    )
    meta = read_dataset_meta(ds.root, name="entry 0 (m)")
    assert meta.version == version
    assert meta.fps == 15.0
    assert (meta.robot_type, meta.control_mode) == ("so100", "joint_pos")
    assert (meta.total_frames, meta.total_episodes) == (21, 3)
    assert meta.action_key == "action"
    assert meta.action_dim == 6
    assert meta.features["action"]["shape"] == [6]
    assert [(e.index, e.length) for e in meta.episodes] == [(0, 5), (1, 7), (2, 9)]
    assert all(e.data_file.is_file() for e in meta.episodes)
    assert meta.selected_frames == 21
    assert meta.selection_active is False
    assert meta.stats_error is None
    assert meta.name == "entry 0 (m)"
    if version == "v3.0":
        assert [(e.from_index, e.to_index) for e in meta.episodes] == [(0, 5), (5, 12), (12, 21)]
        # Two episodes per data file: episode 1 starts at row 5 of the first file, episode 2 a new file.
        assert [e.file_row_start for e in meta.episodes] == [0, 5, 0]
        assert meta.episodes[0].data_file == meta.episodes[1].data_file != meta.episodes[2].data_file
    else:
        assert all(e.from_index is None and e.to_index is None for e in meta.episodes)
        assert meta.episodes[2].data_file == ds.root / "data/chunk-001/episode_000002.parquet"


def test_control_mode_absent_and_robot_type_null_read_as_none(make_dataset):
    ds = make_dataset("t", robot_type=None)
    meta = read_dataset_meta(ds.root)
    assert meta.robot_type is None
    assert meta.control_mode is None


@pytest.mark.parametrize("version", VERSIONS)
def test_metadata_reading_never_touches_action_data(make_dataset, version):
    ds = make_dataset("no_data", version=version, write_stats=False, episode_lengths=(4, 6, 8))
    shutil.rmtree(ds.root / "data")
    meta = read_dataset_meta(ds.root, episodes=[0, 2])
    assert [e.index for e in meta.episodes] == [0, 2]
    _assert_stats_equal(meta.stats, ds.concatenated([0, 2]))


def test_actions_column_is_the_fallback_action_key(make_dataset):
    ds = make_dataset("acts", action_key="actions", action_dim=3)
    meta = read_dataset_meta(ds.root)
    assert meta.action_key == "actions"
    assert meta.action_dim == 3
    _assert_stats_equal(meta.stats, ds.concatenated())


def test_explicit_action_key_selects_another_feature(make_dataset):
    ds = make_dataset("state", action_dim=4)
    meta = read_dataset_meta(ds.root, action_key="observation.state")
    assert meta.action_key == "observation.state"
    states = ds.concatenated() * np.float32(0.5) + np.float32(0.1)
    np.testing.assert_allclose(meta.stats.mean, states.astype(np.float64).mean(0), rtol=1e-6)


@pytest.mark.parametrize("version", VERSIONS)
def test_metadata_files_with_a_byte_order_mark_are_read(make_dataset, version):
    ds = make_dataset("bom", version=version, write_stats=False)
    files = ["info.json"] + (["episodes.jsonl", "episodes_stats.jsonl"] if version == "v2.1" else [])
    for name in files:
        path = ds.root / "meta" / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    meta = read_dataset_meta(ds.root)
    assert meta.stats_error is None
    _assert_stats_equal(meta.stats, ds.concatenated())


def test_load_json_accepts_nan_and_infinity(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": [NaN, Infinity, -Infinity, 1.5]}')
    values = load_json(path)["a"]
    assert np.isnan(values[0])
    assert values[1:] == [np.inf, -np.inf, 1.5]


# --- stats -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("list_type", LIST_TYPES)
def test_stats_json_equals_numpy_over_the_written_actions(make_dataset, version, list_type):
    ds = make_dataset("s", version=version, list_type=list_type, episode_lengths=(11, 13, 17), action_dim=5)
    meta = read_dataset_meta(ds.root)
    assert meta.stats.source == "meta/stats.json"
    _assert_stats_equal(meta.stats, ds.concatenated())


@pytest.mark.parametrize(
    ("version", "source"),
    [("v2.1", "meta/episodes_stats.jsonl"), ("v3.0", "meta/episodes (stats columns)")],
)
def test_without_stats_json_stats_are_aggregated_from_episode_stats(make_dataset, version, source):
    kwargs = {"version": version, "episode_lengths": (9, 30, 4, 21), "action_dim": 4, "seed": 11}
    with_json = read_dataset_meta(make_dataset("with", **kwargs).root)
    ds = make_dataset("without", write_stats=False, **kwargs)
    meta = read_dataset_meta(ds.root)
    assert meta.stats_error is None
    assert meta.stats.source == source
    _assert_stats_equal(meta.stats, ds.concatenated())
    # Aggregated stats equal the stats.json computed from the same data.
    for field in ("min", "max", "mean", "std"):
        np.testing.assert_allclose(getattr(meta.stats, field), getattr(with_json.stats, field), rtol=1e-9)
    assert meta.stats.count == with_json.stats.count == 64


@pytest.mark.parametrize("version", VERSIONS)
def test_episode_selection_reaggregates_stats_over_the_selection(make_dataset, version):
    ds = make_dataset("sel", version=version, episode_lengths=(10, 20, 30, 40), action_dim=3, seed=5)
    everything = read_dataset_meta(ds.root)
    selected = read_dataset_meta(ds.root, episodes=[3, 1])
    assert [e.index for e in selected.episodes] == [1, 3]
    assert selected.selection_active
    assert selected.selected_frames == 60
    assert selected.total_frames == 100  # info.json's total is kept
    _assert_stats_equal(selected.stats, ds.concatenated([1, 3]))
    assert not np.allclose(selected.stats.mean, everything.stats.mean)
    excluded = read_dataset_meta(ds.root, excluded_episodes=[0, 3])
    _assert_stats_equal(excluded.stats, ds.concatenated([1, 2]))
    both = read_dataset_meta(ds.root, episodes=[0, 1, 2], excluded_episodes=[1])
    assert [e.index for e in both.episodes] == [0, 2]
    _assert_stats_equal(both.stats, ds.concatenated([0, 2]))


def test_nan_and_inf_in_the_data_propagate_like_numpy(make_dataset):
    actions = [
        np.array([[1.0, 2.0, 0.0], [np.inf, 3.0, 1.0]], dtype=np.float32),
        np.array([[0.5, np.nan, -np.inf]], dtype=np.float32),
    ]
    ds = make_dataset("nan", version="v2.1", actions=actions, write_stats=False)
    aggregated = read_dataset_meta(ds.root).stats
    direct = read_dataset_meta(make_dataset("nan_json", version="v2.1", actions=actions).root).stats
    for stats in (aggregated, direct):
        assert stats.max[0] == np.inf
        assert stats.min[2] == -np.inf
        assert np.isnan(stats.min[1])
        np.testing.assert_array_equal(stats.min[0], 0.5)


def test_aggregate_stats_is_min_of_mins_and_pooled_variance():
    rng = np.random.default_rng(0)
    blocks = [rng.normal(size=(n, 2)) * (i + 1) + i for i, n in enumerate((5, 50, 500))]
    parts = [ActionStats(b.min(0), b.max(0), b.mean(0), b.std(0), b.shape[0], "test") for b in blocks]
    pooled = aggregate_stats(parts, "pooled")
    _assert_stats_equal(pooled, np.concatenate(blocks))
    assert pooled.source == "pooled"
    # Not the naive average of the stds.
    assert not np.allclose(pooled.std, np.mean([p.std for p in parts], axis=0))


@pytest.mark.parametrize("version", VERSIONS)
def test_selection_without_episode_stats_is_a_stats_error_not_an_exception(make_dataset, version):
    ds = make_dataset("noeps", version=version, write_episode_stats=False)
    assert read_dataset_meta(ds.root).stats is not None  # stats.json is enough without a selection
    meta = read_dataset_meta(ds.root, episodes=[0], name="entry 4 (noeps)")
    assert meta.stats is None
    error = meta.stats_error
    assert error.reason == "stats_missing"
    assert "episode selection" in str(error)
    assert "entry 4 (noeps)" in str(error)
    assert error.hint


def test_no_stats_at_all_is_stats_missing(make_dataset):
    ds = make_dataset("none", version="v2.1", write_stats=False, write_episode_stats=False)
    meta = read_dataset_meta(ds.root, name="entry 1 (none)")
    assert meta.stats is None
    assert meta.stats_error.reason == "stats_missing"
    assert meta.stats_error.path == ds.root / "meta/episodes_stats.jsonl"
    assert "meta/stats.json is absent" in str(meta.stats_error)


def test_stats_of_the_wrong_length_are_reported_with_dataset_path_and_fix(make_dataset):
    ds = make_dataset("short", action_dim=4, stats_override={"min": [0.0, 0.0, 0.0]})
    meta = read_dataset_meta(ds.root, name="entry 2 (short)")
    assert meta.stats is None
    error = meta.stats_error
    assert error.reason == "stats_invalid"
    assert error.path == ds.root / "meta/stats.json"
    message = str(error)
    assert "entry 2 (short)" in message
    assert "min" in message
    assert "(4,)" in message
    assert "Fix:" in message


def test_stats_json_without_the_action_key(make_dataset):
    ds = make_dataset("nokey")
    _edit_json(ds.root / "meta/stats.json", lambda d: d.pop("action"))
    error = read_dataset_meta(ds.root).stats_error
    assert error.reason == "stats_invalid"
    assert "'action'" in str(error)


def test_episode_stats_with_wrong_length_name_the_episode(make_dataset):
    ds = make_dataset("badep", version="v2.1", write_stats=False, action_dim=3, episode_lengths=(4, 4))
    path = ds.root / "meta/episodes_stats.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["stats"]["action"]["std"] = [1.0]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    error = read_dataset_meta(ds.root).stats_error
    assert error.reason == "stats_invalid"
    assert "episode 1" in str(error)


def test_stats_json_not_json_is_stats_invalid(make_dataset):
    ds = make_dataset("garbled")
    (ds.root / "meta/stats.json").write_text("{not json")
    error = read_dataset_meta(ds.root).stats_error
    assert error.reason == "stats_invalid"
    assert "line 1" in str(error)


# --- bad input raises, naming dataset, path and fix -------------------------------------------------------


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError) as info:
        read_dataset_meta(tmp_path / "nowhere", name="entry 0 (org/x)")
    error = info.value
    assert error.reason == "root_missing"
    assert error.path == tmp_path / "nowhere"
    assert "entry 0 (org/x)" in str(error)
    assert str(tmp_path / "nowhere") in str(error)
    assert "root" in error.hint


def test_missing_info(make_dataset):
    ds = make_dataset("noinfo")
    (ds.root / "meta/info.json").unlink()
    with pytest.raises(DatasetError) as info:
        read_dataset_meta(ds.root, name="entry 1 (noinfo)")
    assert info.value.reason == "info_missing"
    assert info.value.path == ds.root / "meta/info.json"
    assert "meta/info.json" in info.value.hint


@pytest.mark.parametrize(
    ("overrides", "reason", "fragment"),
    [
        ({"fps": None}, "info_invalid", "fps"),
        ({"fps": 0}, "info_invalid", "fps"),
        ({"fps": "30"}, "info_invalid", "fps"),
        ({"features": None}, "info_invalid", "features"),
        ({"features": {}}, "info_invalid", "features"),
        ({"codebase_version": "v1.6"}, "unsupported_version", "v1.6"),
        ({"codebase_version": None}, "unsupported_version", "None"),
        (
            {"features": {"observation.state": {"dtype": "float32", "shape": [3]}}},
            "action_key_missing",
            "action",
        ),
        ({"features": {"action": {"dtype": "float32", "shape": [2, 3]}}}, "info_invalid", "shape"),
    ],
)
def test_invalid_info_raises_with_reason_and_fix(make_dataset, overrides, reason, fragment):
    ds = make_dataset("bad", info_overrides=overrides)
    with pytest.raises(DatasetError) as info:
        read_dataset_meta(ds.root, name="entry 7 (bad)")
    error = info.value
    assert error.reason == reason
    assert fragment in str(error)
    assert "entry 7 (bad)" in str(error)
    assert error.path == ds.root / "meta/info.json"
    assert error.hint


def test_info_that_is_not_json_reports_line(make_dataset):
    ds = make_dataset("garbled_info")
    (ds.root / "meta/info.json").write_text('{\n  "fps": 30,\n}')
    with pytest.raises(DatasetError) as info:
        read_dataset_meta(ds.root)
    assert info.value.reason == "info_invalid"
    assert "line 3" in str(info.value)


def test_explicit_action_key_missing_lists_the_features(make_dataset):
    ds = make_dataset("k")
    with pytest.raises(DatasetError) as info:
        read_dataset_meta(ds.root, action_key="act", name="entry 3 (k)")
    error = info.value
    assert error.reason == "action_key_missing"
    assert "'act'" in str(error)
    assert "observation.state" in error.hint


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_episode_indices_raise(make_dataset, version):
    ds = make_dataset("few", version=version, episode_lengths=(3, 3))
    with pytest.raises(DatasetError) as info:
        read_dataset_meta(ds.root, episodes=[0, 5, 9], name="entry 0 (few)")
    error = info.value
    assert error.reason == "episodes_invalid"
    assert "[5, 9]" in str(error)
    assert "0..1" in str(error)
    assert "episodes" in error.hint
    with pytest.raises(DatasetError, match="excluded_episodes"):
        read_dataset_meta(ds.root, excluded_episodes=[2])
    with pytest.raises(DatasetError, match="leaves no episodes"):
        read_dataset_meta(ds.root, excluded_episodes=[0, 1])


def test_missing_episode_tables_raise(make_dataset):
    v21 = make_dataset("v21", version="v2.1")
    (v21.root / "meta/episodes.jsonl").unlink()
    with pytest.raises(DatasetError) as info:
        read_dataset_meta(v21.root)
    assert info.value.reason == "episodes_invalid"
    v30 = make_dataset("v30", version="v3.0")
    shutil.rmtree(v30.root / "meta/episodes")
    with pytest.raises(DatasetError) as info:
        read_dataset_meta(v30.root)
    assert info.value.reason == "episodes_invalid"


def test_dataset_error_survives_pickling(tmp_path):
    with pytest.raises(DatasetError) as info:
        read_dataset_meta(tmp_path / "x", name="n")
    clone = pickle.loads(pickle.dumps(info.value))
    assert (clone.reason, clone.path, clone.hint, clone.dataset) == (
        info.value.reason,
        info.value.path,
        info.value.hint,
        info.value.dataset,
    )
    assert str(clone) == str(info.value)
    renamed = info.value.with_dataset("entry 9 (org/x)")
    assert (renamed.reason, renamed.detail, renamed.path) == (clone.reason, clone.detail, clone.path)
    assert str(renamed).startswith("dataset entry 9 (org/x): dataset folder does not exist")


# --- action data -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("list_type", LIST_TYPES)
def test_read_episode_frames_returns_the_written_frames(make_dataset, version, list_type):
    ds = make_dataset(
        "frames",
        version=version,
        list_type=list_type,
        episode_lengths=(6, 8, 10),
        fps=20.0,
        episodes_per_file=2,
    )
    meta = read_dataset_meta(ds.root)
    for episode in meta.episodes:
        timestamps, actions = read_episode_frames(meta, episode)
        assert timestamps.dtype == np.float64
        assert actions.dtype == np.float32
        np.testing.assert_array_equal(actions, ds.actions[episode.index])
        np.testing.assert_array_equal(
            timestamps, (np.arange(episode.length) / 20.0).astype(np.float32).astype(np.float64)
        )


def test_v30_episode_rows_out_of_order_are_found_by_episode_index(make_dataset):
    ds = make_dataset("shuffled", version="v3.0", episode_lengths=(4, 5), episodes_per_file=2)
    path = ds.root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    # Episode 1's rows first: the contiguous-order assumption fails, the episode_index filter must not.
    pq.write_table(pa.concat_tables([table.slice(4, 5), table.slice(0, 4)]), path)
    meta = read_dataset_meta(ds.root)
    for episode in meta.episodes:
        np.testing.assert_array_equal(read_episode_frames(meta, episode)[1], ds.actions[episode.index])


def test_action_column_of_the_wrong_dim_is_data_invalid(make_dataset):
    ds = make_dataset("dim", action_dim=6)

    def claim_seven(info):
        info["features"]["action"]["shape"] = [7]

    _edit_json(ds.root / "meta/info.json", claim_seven)
    meta = read_dataset_meta(ds.root, name="entry 5 (dim)")
    with pytest.raises(DatasetError) as info:
        read_episode_frames(meta, meta.episodes[0])
    error = info.value
    assert error.reason == "data_invalid"
    assert "6 values" in str(error)
    assert "expected 7" in str(error)
    assert "entry 5 (dim)" in str(error)
    assert error.path == meta.episodes[0].data_file


def test_missing_data_file_is_data_missing(make_dataset):
    ds = make_dataset("gone", version="v2.1")
    meta = read_dataset_meta(ds.root)
    meta.episodes[1].data_file.unlink()
    with pytest.raises(DatasetError) as info:
        read_episode_frames(meta, meta.episodes[1])
    assert info.value.reason == "data_missing"


def test_metadata_length_disagreeing_with_data_is_data_invalid(make_dataset):
    ds = make_dataset("len", version="v2.1", episode_lengths=(5, 6))
    (ds.root / "meta/episodes.jsonl").write_text(
        json.dumps({"episode_index": 0, "length": 9})
        + "\n"
        + json.dumps({"episode_index": 1, "length": 6})
        + "\n"
    )
    meta = read_dataset_meta(ds.root)
    with pytest.raises(DatasetError, match="5 frames in the data but 9"):
        read_episode_frames(meta, meta.episodes[0])


def _fixed(values: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _variable(values: np.ndarray) -> pa.ListArray:
    n, d = values.shape
    return pa.ListArray.from_arrays(
        pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32)), pa.array(values.reshape(-1))
    )


@pytest.mark.parametrize("build", [_fixed, _variable])
def test_action_array_handles_chunks_slices_and_dtypes(build):
    values = np.arange(30, dtype=np.float64).reshape(10, 3)
    array = build(values)
    np.testing.assert_array_equal(action_array(array, 3), values.astype(np.float32))
    assert action_array(array, 3).dtype == np.float32
    # Sliced arrays carry an offset into the shared buffers.
    np.testing.assert_array_equal(action_array(array.slice(3, 4), 3), values[3:7].astype(np.float32))
    chunked = pa.chunked_array([array.slice(0, 2), array.slice(2, 8)])
    np.testing.assert_array_equal(action_array(chunked, 3), values.astype(np.float32))
    assert action_array(pa.chunked_array([], type=array.type), 3).shape == (0, 3)


def test_action_array_accepts_large_lists():
    values = np.arange(8, dtype=np.float32).reshape(4, 2)
    array = pa.LargeListArray.from_arrays(
        pa.array(np.arange(0, 10, 2, dtype=np.int64)), pa.array(values.reshape(-1))
    )
    np.testing.assert_array_equal(action_array(array, 2), values)


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (pa.array([[1.0, 2.0], [3.0]], type=pa.list_(pa.float32())), "1 of 2 rows do not have 2 values"),
        (pa.array([[1.0, 2.0], None], type=pa.list_(pa.float32())), "null"),
        (pa.array([[1.0, 2.0, 3.0]], type=pa.list_(pa.float32(), 3)), "3 values, expected 2"),
        (pa.array([["a", "b"]], type=pa.list_(pa.string())), "not numbers"),
        (pa.array([1.0, 2.0]), "not a list"),
    ],
)
def test_action_array_rejects_malformed_rows(array, fragment):
    with pytest.raises(DatasetError) as info:
        action_array(array, 2, path=Path("x.parquet"), dataset="entry 0 (d)")
    assert info.value.reason == "data_invalid"
    assert fragment in str(info.value)
    assert "entry 0 (d)" in str(info.value)


def test_v20_layout_is_read_like_v21(make_dataset):
    ds = make_dataset(
        "v20", version="v2.1", write_episode_stats=False, info_overrides={"codebase_version": "v2.0"}
    )
    meta = read_dataset_meta(ds.root)
    assert meta.version == "v2.0"
    _assert_stats_equal(meta.stats, ds.concatenated())


def test_repeated_episode_indices_in_metadata_raise(make_dataset):
    ds = make_dataset("rep", version="v2.1", episode_lengths=(3, 3))
    path = ds.root / "meta/episodes.jsonl"
    path.write_text(path.read_text() + json.dumps({"episode_index": 1, "length": 3}) + "\n")
    with pytest.raises(DatasetError, match=r"episodes \[1\] are listed more than once"):
        read_dataset_meta(ds.root)


# --- edge cases --------------------------------------------------------------------------------------------


def _shift_episode_indices(root: Path, version: str, offset: int) -> None:
    """Renumber the episodes in the metadata only (data files untouched): indices need not start at 0."""
    if version == "v2.1":
        for name in ("episodes.jsonl", "episodes_stats.jsonl"):
            path = root / "meta" / name
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            for row in rows:
                row["episode_index"] += offset
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return
    for path in sorted((root / "meta/episodes").rglob("*.parquet")):
        table = pq.read_table(path)
        shifted = pc.add(table["episode_index"], offset)
        table = table.set_column(table.schema.get_field_index("episode_index"), "episode_index", shifted)
        pq.write_table(table, path)


@pytest.mark.parametrize("version", VERSIONS)
def test_episode_indices_need_not_start_at_zero(make_dataset, version):
    ds = make_dataset("late", version=version, write_stats=False, episode_lengths=(6, 9, 12), seed=3)
    _shift_episode_indices(ds.root, version, 40)
    meta = read_dataset_meta(ds.root)
    assert [(e.index, e.length) for e in meta.episodes] == [(40, 6), (41, 9), (42, 12)]
    _assert_stats_equal(meta.stats, ds.concatenated())
    picked = read_dataset_meta(ds.root, episodes=[42, 40])
    _assert_stats_equal(picked.stats, ds.concatenated([0, 2]))
    with pytest.raises(DatasetError, match=r"\[0\] that the dataset does not have .*indices 40..42"):
        read_dataset_meta(ds.root, episodes=[0])


@pytest.mark.parametrize("version", VERSIONS)
def test_single_frame_episodes_and_one_dim_actions_aggregate_like_numpy(make_dataset, version):
    actions = [np.array([[0.5]], np.float32), np.array([[-2.0], [1.0], [4.0]], np.float32), np.array([[3.0]])]
    ds = make_dataset("tiny", version=version, actions=actions, write_stats=False, episodes_per_file=2)
    meta = read_dataset_meta(ds.root)
    assert meta.action_dim == 1
    assert [e.length for e in meta.episodes] == [1, 3, 1]
    _assert_stats_equal(meta.stats, ds.concatenated())
    _assert_stats_equal(read_dataset_meta(ds.root, episodes=[2]).stats, ds.concatenated([2]))


@pytest.mark.parametrize(
    ("count", "expected"),
    [([64], 64), (64, 64), ([64.0], 64), (None, 64)],  # None: absent -> info.json's total_frames
)
def test_stats_json_count_as_list_or_int(make_dataset, count, expected):
    ds = make_dataset("counted", episode_lengths=(30, 34))
    _edit_json(
        ds.root / "meta/stats.json",
        lambda d: d["action"].update(count=count) if count is not None else d["action"].pop("count"),
    )
    assert read_dataset_meta(ds.root).stats.count == expected


@pytest.mark.parametrize("count", [[float("nan")], -5, "many", []])
def test_unusable_stats_count_is_stats_invalid_not_a_guess(make_dataset, count):
    ds = make_dataset("badcount")
    _edit_json(ds.root / "meta/stats.json", lambda d: d["action"].update(count=count))
    meta = read_dataset_meta(ds.root, name="entry 3 (badcount)")
    assert meta.stats is None
    assert meta.stats_error.reason == "stats_invalid"
    assert "count" in str(meta.stats_error)
    assert "entry 3 (badcount)" in str(meta.stats_error)


@pytest.mark.parametrize("chunks_size", [0, -1, "1000", 2.5])
def test_invalid_v21_chunks_size_is_info_invalid(make_dataset, chunks_size):
    ds = make_dataset("chunky", version="v2.1", info_overrides={"chunks_size": chunks_size})
    with pytest.raises(DatasetError) as info:
        read_dataset_meta(ds.root, name="entry 0 (chunky)")
    assert info.value.reason == "info_invalid"
    assert "chunks_size" in str(info.value)
    assert info.value.path == ds.root / "meta/info.json"


def test_v21_chunks_size_places_episodes_in_chunk_folders(make_dataset):
    ds = make_dataset("chunks", version="v2.1", episode_lengths=(3, 3, 3, 3, 3), files_per_chunk=2)
    meta = read_dataset_meta(ds.root)
    chunks = [e.data_file.parent.name for e in meta.episodes]
    assert chunks == ["chunk-000", "chunk-000", "chunk-001", "chunk-001", "chunk-002"]
    for episode in meta.episodes:
        np.testing.assert_array_equal(read_episode_frames(meta, episode)[1], ds.actions[episode.index])


@pytest.mark.parametrize("version", VERSIONS)
def test_a_dataset_without_episodes_is_episodes_invalid(make_dataset, version):
    ds = make_dataset("empty", version=version)
    if version == "v2.1":
        (ds.root / "meta/episodes.jsonl").write_text("")
    else:
        for path in (ds.root / "meta/episodes").rglob("*.parquet"):
            pq.write_table(pq.read_table(path).slice(0, 0), path)
    with pytest.raises(DatasetError, match="lists no episodes") as info:
        read_dataset_meta(ds.root, name="entry 2 (empty)")
    assert info.value.reason == "episodes_invalid"


def test_v30_episode_range_disagreeing_with_length_is_episodes_invalid(make_dataset):
    ds = make_dataset("range", version="v3.0", episode_lengths=(4, 5))
    path = next((ds.root / "meta/episodes").rglob("*.parquet"))
    table = pq.read_table(path)
    column = table.schema.get_field_index("dataset_to_index")
    table = table.set_column(column, "dataset_to_index", pa.array([4, 10], type=pa.int64()))
    pq.write_table(table, path)
    with pytest.raises(DatasetError, match="episode 1: dataset_to_index - dataset_from_index = 6"):
        read_dataset_meta(ds.root)


@pytest.mark.parametrize("version", VERSIONS)
def test_v30_and_v21_episodes_spread_over_several_files_and_chunks(make_dataset, version):
    ds = make_dataset(
        "spread", version=version, episode_lengths=(3, 4, 5, 6, 7), episodes_per_file=2, files_per_chunk=2
    )
    meta = read_dataset_meta(ds.root, excluded_episodes=[1])
    assert [e.index for e in meta.episodes] == [0, 2, 3, 4]
    assert len({e.data_file for e in meta.episodes}) == (3 if version == "v3.0" else 4)
    _assert_stats_equal(meta.stats, ds.concatenated([0, 2, 3, 4]))
    for episode in meta.episodes:
        np.testing.assert_array_equal(read_episode_frames(meta, episode)[1], ds.actions[episode.index])


# ------------------------------------------------------------------ #10: bad data files are DatasetErrors
@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
@pytest.mark.parametrize("column", ["action", "timestamp", "episode_index"])
def test_a_data_file_without_a_column_is_data_invalid(tmp_path: Path, version: str, column: str) -> None:
    from fasttok_plugin.lerobot import read_frames

    write_lerobot_dataset(tmp_path / "ds", version=version, episode_lengths=(20, 30), action_dim=2)
    for path in (tmp_path / "ds" / "data").rglob("*.parquet"):
        pq.write_table(pq.read_table(path).drop_columns([column]), path)
    meta = read_dataset_meta(tmp_path / "ds", name="entry 0 (org/a)")
    with pytest.raises(DatasetError, match=f"no '{column}' column") as info:
        read_frames(meta, cache=False)
    assert info.value.reason == "data_invalid"
    assert "entry 0 (org/a)" in str(info.value)


def test_a_v3_episode_table_with_float_indices_is_episodes_invalid(tmp_path: Path) -> None:
    write_lerobot_dataset(tmp_path / "ds", version="v3.0", episode_lengths=(20, 30), action_dim=2)
    for path in (tmp_path / "ds" / "meta" / "episodes").rglob("*.parquet"):
        table = pq.read_table(path)
        index = table.schema.get_field_index("length")
        table = table.set_column(index, "length", table["length"].cast(pa.float64()))
        pq.write_table(table, path)
    with pytest.raises(DatasetError, match=r"columns \['length'\] do not hold integers") as info:
        read_dataset_meta(tmp_path / "ds", name="org/a")
    assert info.value.reason == "episodes_invalid"


def test_a_root_longer_than_the_system_allows_is_root_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot be accessed") as info:
        read_dataset_meta(tmp_path / ("r" * 300), name="org/a")
    assert info.value.reason == "root_missing"


@pytest.mark.parametrize(
    ("version", "default"),
    [
        ("v2.1", "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"),
        ("v3.0", "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"),
    ],
)
def test_a_data_path_that_cannot_be_formatted_names_its_layouts_template(
    tmp_path: Path, version: str, default: str
) -> None:
    root = write_lerobot_dataset(
        tmp_path / "d", version=version, info_overrides={"data_path": "{oops.x}"}
    ).root
    with pytest.raises(DatasetError) as info:
        read_dataset_meta(root)
    assert info.value.reason == "info_invalid"
    assert info.value.hint == f"use the {version} template {default!r}"
