"""The synthetic writer produces real LeRobot layouts with exactly the data it reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fasttok_plugin.testing import make_example_mixture, write_lerobot_dataset


def _stats(values: np.ndarray) -> dict[str, np.ndarray]:
    block = values.astype(np.float64)
    return {
        "min": block.min(0),
        "max": block.max(0),
        "mean": block.mean(0),
        "std": block.std(0),
    }


def test_v21_layout_matches_lerobot(make_dataset):
    ds = make_dataset(
        "v21", version="v2.1", episode_lengths=(4, 5, 6), action_dim=3, fps=10.0, files_per_chunk=2
    )
    info = json.loads((ds.root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1"
    assert info["data_path"] == "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    assert info["fps"] == 10
    assert info["total_frames"] == 15
    assert info["total_episodes"] == 3
    assert info["chunks_size"] == 2
    assert info["features"]["action"]["shape"] == [3]
    assert "control_mode" not in info
    episodes = [json.loads(line) for line in (ds.root / "meta/episodes.jsonl").read_text().splitlines()]
    assert [(e["episode_index"], e["length"]) for e in episodes] == [(0, 4), (1, 5), (2, 6)]
    # chunks_size=2: the third episode lands in chunk-001.
    third = ds.root / "data/chunk-001/episode_000002.parquet"
    assert third.is_file()
    table = pq.read_table(third)
    assert table.schema.field("action").type == pa.list_(pa.float32(), 3)
    assert table.schema.field("timestamp").type == pa.float32()
    for column in ("frame_index", "episode_index", "index", "task_index"):
        assert table.schema.field(column).type == pa.int64()
    assert table.column("index").to_pylist() == list(range(9, 15))
    assert table.column("episode_index").to_pylist() == [2] * 6
    np.testing.assert_array_equal(
        table.column("timestamp").to_numpy(), (np.arange(6) / 10.0).astype(np.float32)
    )
    written = np.asarray(table.column("action").combine_chunks().flatten()).reshape(-1, 3)
    np.testing.assert_array_equal(written, ds.actions[2])


def test_v30_packs_several_episodes_per_file(make_dataset):
    ds = make_dataset(
        "v30", version="v3.0", episode_lengths=(3, 4, 5, 6, 7), episodes_per_file=2, files_per_chunk=2
    )
    info = json.loads((ds.root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    first = pq.read_table(ds.root / "data/chunk-000/file-000.parquet")
    assert first.column("episode_index").to_pylist() == [0] * 3 + [1] * 4
    # Third data file rolls over to chunk-001 (two files per chunk).
    last = pq.read_table(ds.root / "data/chunk-001/file-000.parquet")
    assert last.column("episode_index").to_pylist() == [4] * 7
    tables = [pq.read_table(p) for p in sorted((ds.root / "meta/episodes").glob("chunk-*/file-*.parquet"))]
    episodes = pa.concat_tables(tables).sort_by("episode_index").to_pylist()
    assert [e["length"] for e in episodes] == [3, 4, 5, 6, 7]
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in episodes] == [
        (0, 3),
        (3, 7),
        (7, 12),
        (12, 18),
        (18, 25),
    ]
    assert [(e["data/chunk_index"], e["data/file_index"]) for e in episodes] == [
        (0, 0),
        (0, 0),
        (0, 1),
        (0, 1),
        (1, 0),
    ]
    for episode, actions in zip(episodes, ds.actions, strict=True):
        expected = _stats(actions)
        for stat, values in expected.items():
            np.testing.assert_allclose(episode[f"stats/action/{stat}"], values)
        assert episode["stats/action/count"] == [actions.shape[0]]


def test_variable_list_type_writes_list_of_float(make_dataset):
    ds = make_dataset("var", version="v3.0", list_type="variable", action_dim=4)
    schema = pq.read_schema(ds.root / "data/chunk-000/file-000.parquet")
    assert schema.field("action").type == pa.list_(pa.float32())


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_stats_json_equals_numpy_over_written_actions(make_dataset, version):
    ds = make_dataset("s", version=version, episode_lengths=(10, 20, 30), action_dim=5)
    stats = json.loads((ds.root / "meta/stats.json").read_text())["action"]
    expected = _stats(ds.concatenated())
    for stat, values in expected.items():
        np.testing.assert_allclose(stats[stat], values, rtol=1e-12)
    assert stats["count"] == [60]


def test_v21_episode_stats_equal_numpy_per_episode(make_dataset):
    ds = make_dataset("e", version="v2.1", episode_lengths=(7, 9))
    rows = [json.loads(line) for line in (ds.root / "meta/episodes_stats.jsonl").read_text().splitlines()]
    assert [r["episode_index"] for r in rows] == [0, 1]
    for row, actions in zip(rows, ds.actions, strict=True):
        for stat, values in _stats(actions).items():
            np.testing.assert_allclose(row["stats"]["action"][stat], values)
        assert row["stats"]["action"]["count"] == [actions.shape[0]]


def test_explicit_actions_are_written_exactly_including_nan_and_inf(make_dataset):
    actions = [
        np.array([[1.0, np.nan], [np.inf, 2.0]], dtype=np.float32),
        np.array([[-np.inf, 3.0]], dtype=np.float32),
    ]
    ds = make_dataset("nan", version="v2.1", actions=actions)
    assert ds.action_dim == 2
    assert ds.episode_lengths == (2, 1)
    table = pq.read_table(ds.root / "data/chunk-000/episode_000000.parquet")
    written = np.asarray(table.column("action").combine_chunks().flatten()).reshape(-1, 2)
    np.testing.assert_array_equal(written, actions[0])
    text = (ds.root / "meta/stats.json").read_text()
    assert "NaN" in text
    assert "Infinity" in text
    stats = json.loads(text)["action"]
    assert stats["max"][0] == np.inf
    assert stats["min"][0] == -np.inf


def test_stats_override_replaces_fields_of_the_action_entry(make_dataset):
    ds = make_dataset("o", action_dim=2, stats_override={"max": [np.inf, 5.0]})
    stats = json.loads((ds.root / "meta/stats.json").read_text())["action"]
    assert stats["max"] == [np.inf, 5.0]
    np.testing.assert_allclose(stats["min"], ds.concatenated().min(0))


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_stats_files_can_be_omitted(make_dataset, version):
    ds = make_dataset("n", version=version, write_stats=False, write_episode_stats=False)
    assert not (ds.root / "meta/stats.json").exists()
    assert not (ds.root / "meta/episodes_stats.jsonl").exists()
    if version == "v3.0":
        names = pq.read_schema(ds.root / "meta/episodes/chunk-000/file-000.parquet").names
        assert not [n for n in names if n.startswith("stats/")]


def test_tags_and_action_key_are_written_to_info(make_dataset):
    ds = make_dataset("t", robot_type=None, control_mode="ee_delta", action_key="actions")
    info = json.loads((ds.root / "meta/info.json").read_text())
    assert info["robot_type"] is None
    assert info["control_mode"] == "ee_delta"
    assert "actions" in info["features"]
    assert "action" not in info["features"]
    assert "actions" in pq.read_schema(ds.root / "data/chunk-000/file-000.parquet").names


def test_info_overrides_remove_or_replace_keys(make_dataset):
    ds = make_dataset("broken", info_overrides={"fps": None, "codebase_version": "v1.6"})
    info = json.loads((ds.root / "meta/info.json").read_text())
    assert "fps" not in info
    assert info["codebase_version"] == "v1.6"


def test_same_seed_same_data_and_no_temp_files_left(tmp_path: Path):
    a = write_lerobot_dataset(tmp_path / "a", seed=3)
    b = write_lerobot_dataset(tmp_path / "b", seed=3)
    c = write_lerobot_dataset(tmp_path / "c", seed=4)
    for x, y in zip(a.actions, b.actions, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.actions[0], c.actions[0])
    assert not list(tmp_path.rglob("*.tmp"))


def test_smooth_trajectories_have_small_steps(make_dataset):
    ds = make_dataset("smooth", episode_lengths=(200,), fps=30.0)
    steps = np.abs(np.diff(ds.actions[0], axis=0)).max()
    spread = np.ptp(ds.actions[0], axis=0).max()
    assert steps < 0.2 * spread


def test_rejects_bad_arguments(tmp_path: Path):
    with pytest.raises(ValueError, match="version"):
        write_lerobot_dataset(tmp_path / "x", version="v2.0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same d"):
        write_lerobot_dataset(tmp_path / "y", actions=[np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match="same d"):
        write_lerobot_dataset(tmp_path / "z", actions=[np.zeros(3)])
    with pytest.raises(ValueError, match="at least one frame"):
        write_lerobot_dataset(tmp_path / "w", episode_lengths=(3, 0))


def test_example_mixture_covers_robots_dims_versions_and_fallback(tmp_path: Path):
    path = make_example_mixture(tmp_path, n_datasets=6)
    document = json.loads(path.read_text())["dataset_mixture"]
    entries = document["datasets"]
    assert len(entries) == 6
    assert len(document["weights"]) == 6
    infos = [json.loads((path.parent / e["root"] / "meta/info.json").read_text()) for e in entries]
    assert {i["codebase_version"] for i in infos} == {"v2.1", "v3.0"}
    dims = [i["features"]["action"]["shape"][0] for i in infos]
    assert {7, 14, 2} <= set(dims)
    # The 7-dim arm pair shares its tags (one head); the second has no stats.json.
    assert (infos[0]["robot_type"], infos[0]["control_mode"]) == (
        infos[1]["robot_type"],
        infos[1]["control_mode"],
    )
    assert infos[0]["codebase_version"] == infos[1]["codebase_version"] == "v2.1"
    assert (path.parent / entries[0]["root"] / "meta/stats.json").is_file()
    assert not (path.parent / entries[1]["root"] / "meta/stats.json").exists()
    assert any(i["robot_type"] is None for i in infos)
    assert any("control_mode" in i for i in infos)
    assert any("control_mode" not in i for i in infos)
    assert any("robot_type" in e for e in entries)


def test_example_mixture_scales_to_many_heads(tmp_path: Path):
    path = make_example_mixture(tmp_path, n_datasets=60, episode_lengths=(8,))
    entries = json.loads(path.read_text())["dataset_mixture"]["datasets"]
    assert len({e["repo_id"] for e in entries}) == 60
    tags = set()
    for e in entries:
        info = json.loads((path.parent / e["root"] / "meta/info.json").read_text())
        tags.add((e.get("robot_type", info["robot_type"]), e.get("control_mode", info.get("control_mode"))))
    assert len(tags) > 15
