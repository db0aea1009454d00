"""Action transforms (DESIGN §11): column selection and relative actions, in the stats, sampler and fit.

Datasets are real LeRobot folders written by pyarrow; expected values are computed with numpy from the
parquet columns themselves (read here with pyarrow, not through the package's frame reader). Relative
actions follow openpi's ``DeltaActions`` (src/openpi/transforms.py)::

    mask = np.asarray(self.mask); dims = mask.shape[-1]
    actions[..., :dims] -= np.expand_dims(np.where(mask, state[..., :dims], 0), axis=-2)

with ``state`` the observation at the chunk's first frame. Quantiles: ``np.quantile(..., method="linear")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fasttok_plugin.errors import DatasetError, FitError, MixtureError, TransformError
from fasttok_plugin.fit import FitSettings, fit_tokenizer
from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.mixture import load_mixture
from fasttok_plugin.resolve import ResolvedMixture, resolve_mixture
from fasttok_plugin.sampling import ChunkSampler
from fasttok_plugin.stats import compute_head_stats
from fasttok_plugin.testing import write_lerobot_dataset, write_mixture
from fasttok_plugin.transforms import ActionTransform, parse_dims

WIDTH = 8
CHUNK = 6
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


def _columns(root: Path, column: str) -> dict[int, np.ndarray]:
    """Per-episode float32 values of ``column``, read straight from the data parquet files."""
    table = pa.concat_tables(pq.read_table(p) for p in sorted((root / "data").rglob("*.parquet")))
    episodes = table.column("episode_index").to_numpy()
    frames = table.column("frame_index").to_numpy()
    values = np.array(table.column(column).to_pylist(), dtype=np.float32)
    out = {}
    for ep in np.unique(episodes):
        rows = np.flatnonzero(episodes == ep)
        out[int(ep)] = values[rows[np.argsort(frames[rows])]]
    return out


def _delta(chunk: np.ndarray, state0: np.ndarray, relative: Sequence[int]) -> np.ndarray:
    """openpi DeltaActions with the mask of ``relative`` (see the module docstring)."""
    mask = np.zeros(chunk.shape[-1], dtype=bool)
    mask[list(relative)] = True
    dims = mask.shape[-1]
    out = chunk.copy()
    out[..., :dims] -= np.expand_dims(np.where(mask, state0[..., :dims], 0), axis=-2)
    return out


def _expected_values(
    root: Path, episodes: Sequence[int], transform: ActionTransform, *, step: int = 1
) -> np.ndarray:
    """What the head pools for one dataset: frames (selection only) or every valid chunk (relative)."""
    actions, states = _columns(root, "action"), _columns(root, "observation.state")
    select = list(transform.action_index) if transform.action_index is not None else slice(None)
    rows = []
    for ep in episodes:
        a, s = actions[ep], states[ep]
        if not transform.relative:
            rows.append(a[:, select])
            continue
        span = (CHUNK - 1) * step  # valid start: the chunk's last step is inside the episode
        for start in range(0, a.shape[0] - span):
            chunk = a[start : start + span + 1 : step][None]
            rows.append(_delta(chunk, s[start][None], transform.relative)[0][:, select])
    return np.concatenate(rows)


def _check_head(stats, head: int, values: np.ndarray) -> None:
    d = values.shape[1]
    x = values.astype(np.float64)
    assert stats.counts[head] == x.shape[0]
    np.testing.assert_array_equal(stats.min[head, :d], x.min(axis=0))
    np.testing.assert_array_equal(stats.max[head, :d], x.max(axis=0))
    np.testing.assert_allclose(stats.mean[head, :d], x.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.std[head, :d], x.std(axis=0), rtol=1e-9, atol=1e-12)
    for name, q in QUANTILES.items():
        np.testing.assert_array_equal(
            getattr(stats, name)[head, :d], np.quantile(x, q, axis=0, method="linear")
        )
    assert not stats.min[head, d:].any()
    assert not stats.max[head, d:].any()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("transforms")
    tags = {"control_mode": "pos", "action_dim": 7}
    write_lerobot_dataset(root / "a", version="v2.1", robot_type="arm", episode_lengths=(20, 33, 18), **tags)
    write_lerobot_dataset(root / "b", robot_type="arm", episode_lengths=(25, 40), seed=2, **tags)
    write_lerobot_dataset(root / "c", robot_type="base", episode_lengths=(30, 12), seed=3, **tags)
    return root


def _resolved(corpus: Path, **top: object) -> ResolvedMixture:
    document = {
        "datasets": [
            {"repo_id": "lab/a", "root": "a", "excluded_episodes": [1]},
            {"repo_id": "lab/b", "root": "b"},
            {"repo_id": "lab/c", "root": "c", "episodes": [0]},
        ],
        **top,
    }
    return resolve_mixture(load_mixture(write_mixture(corpus / "mixture.json", document)))


SELECTED = {"a": (0, 2), "b": (0, 1), "c": (0,)}
TRANSFORMS = {
    "select": ActionTransform(action_index="0:3,5"),
    "relative": ActionTransform(relative_dims="0:7", relative_exclude=[6]),
    "both": ActionTransform(action_index=[6, 0, 1, 2], relative_dims=[0, 1, 2, 3]),
}
GROUPS = {
    "robot_control": [("a", "b"), ("c",)],
    "global": [("a", "b", "c")],
    "dataset": [("a",), ("b",), ("c",)],
}


@pytest.mark.parametrize("grouping", sorted(GROUPS))
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_pooled_stats_equal_numpy_over_the_transformed_values(
    corpus: Path, tmp_path: Path, grouping: str, name: str
) -> None:
    transform = TRANSFORMS[name]
    resolved = _resolved(corpus)
    heads = build_norm_heads(resolved, WIDTH, grouping=grouping)
    stats = compute_head_stats(resolved, heads, transforms=transform, chunk_size=CHUNK, cache_dir=tmp_path)
    assert stats.num_heads == len(GROUPS[grouping])
    for head, members in enumerate(GROUPS[grouping]):
        values = np.concatenate([_expected_values(corpus / m, SELECTED[m], transform) for m in members])
        _check_head(stats, head, values)


def test_relative_stats_cover_the_resampled_chunks(corpus: Path, tmp_path: Path) -> None:
    """With action_freq at half the fps, step k is frame start + 2k: the stats pool those chunks."""
    transform = TRANSFORMS["both"]
    resolved = _resolved(corpus)
    heads = build_norm_heads(resolved, WIDTH, grouping="global")
    stats = compute_head_stats(
        resolved, heads, transforms=transform, chunk_size=CHUNK, action_freq=15.0, cache_dir=tmp_path
    )
    values = np.concatenate([_expected_values(corpus / m, SELECTED[m], transform, step=2) for m in "abc"])
    _check_head(stats, 0, values)
    native = compute_head_stats(resolved, heads, transforms=transform, chunk_size=CHUNK, cache_dir=tmp_path)
    assert native.key != stats.key  # the rate is part of the content key of relative stats


def test_sampler_chunks_are_the_transformed_raw_actions(corpus: Path) -> None:
    transform = TRANSFORMS["both"]
    resolved = _resolved(corpus)
    heads = build_norm_heads(resolved, WIDTH)
    sampler = ChunkSampler(resolved, heads, chunk_size=CHUNK, transforms=transform)
    names = {0: "a", 1: "b", 2: "c"}
    seen = 0
    for batch in sampler.sample(300, batch_size=64):
        for i in range(batch.actions.shape[0]):
            root = corpus / names[int(batch.dataset_index[i])]
            ep, start = int(batch.episode_index[i]), int(batch.start_frame[i])
            a, s = _columns(root, "action")[ep], _columns(root, "observation.state")[ep]
            expected = _delta(a[start : start + CHUNK][None], s[start][None], transform.relative)[0]
            expected = expected[:, list(transform.action_index)]
            np.testing.assert_array_equal(batch.actions[i, :, :4], expected)
            assert not batch.actions[i, :, 4:].any()
            seen += 1
    assert seen == 300
    assert sampler.settings()["entries"][0]["transform"] == transform.key


def test_default_sampler_settings_carry_no_transform(corpus: Path) -> None:
    resolved = _resolved(corpus)
    heads = build_norm_heads(resolved, WIDTH)
    plain = ChunkSampler(resolved, heads, chunk_size=CHUNK).settings()
    identity = ChunkSampler(resolved, heads, chunk_size=CHUNK, transforms=ActionTransform()).settings()
    assert plain == identity
    assert all("transform" not in e for e in plain["entries"])


def test_mixture_keys_top_level_and_per_entry_override(corpus: Path) -> None:
    document = {
        "encoded_dims": "0:3",
        "relative_dims": [0, 1],
        "datasets": [
            {"repo_id": "lab/a", "root": "a"},
            {"repo_id": "lab/b", "root": "b", "action_index": [4, 5], "relative_dims": [4]},
        ],
    }
    config = load_mixture(write_mixture(corpus / "override.json", document))
    top, entry = config.entry_transforms()
    assert top == ActionTransform(action_index=(0, 1, 2), relative_dims=(0, 1))
    assert entry == ActionTransform(action_index=(4, 5), relative_dims=(4,))
    argument = ActionTransform(action_index=[1])
    assert config.entry_transforms(argument) == (argument, argument)


@pytest.mark.parametrize(
    ("key", "value", "pointer"),
    [
        ("encoded_dims", "0:x", "/encoded_dims"),
        ("relative_dims", [1, 1], "/relative_dims"),
        ("relative_exclude", [0], "/relative_exclude"),
        ("state_key", 3, "/state_key"),
        ("action_index", "0:2", "/action_index"),  # with encoded_dims below: one selection only
    ],
)
def test_bad_mixture_transform_keys_are_problems_at_their_pointer(
    corpus: Path, key: str, value: object, pointer: str
) -> None:
    document = {key: value, "datasets": [{"repo_id": "lab/a", "root": "a"}]}
    if key == "state_key":
        document["relative_dims"] = [0]
    if key == "action_index":
        document["encoded_dims"] = "0:3"
    with pytest.raises(MixtureError) as info:
        load_mixture(write_mixture(corpus / "bad.json", document))
    assert [p.pointer for p in info.value.problems] == [pointer]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"action_index": "3:1"}, "action_index"),
        ({"action_index": [0, True]}, "action_index"),
        ({"action_index": []}, "action_index"),
        ({"relative_dims": [-1]}, "relative_dims"),
        ({"relative_exclude": [2]}, "relative_exclude"),
        ({"relative_dims": [2], "relative_exclude": [2]}, "relative_exclude"),
        ({"relative_dims": [0], "state_key": " "}, "state_key"),
    ],
)
def test_invalid_transforms_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(TransformError) as info:
        ActionTransform(**kwargs)
    assert info.value.field == field
    assert field in str(info.value)


def test_one_parser_for_lists_and_range_strings() -> None:
    assert parse_dims("0:6,7:9", "x") == (0, 1, 2, 3, 4, 5, 7, 8)
    assert parse_dims(" 3, 1 ", "x") == (3, 1)
    assert parse_dims([5, 2], "x") == (5, 2)
    assert ActionTransform(action_index="0:3").key == ActionTransform(action_index=[0, 1, 2]).key
    assert ActionTransform().key == "identity"
    assert ActionTransform().is_identity
    # Excluding a dim is the same transform as not listing it.
    assert (
        ActionTransform(relative_dims="0:3", relative_exclude=[2]).key
        == ActionTransform(relative_dims=[0, 1]).key
    )


def test_problems_against_a_dataset() -> None:
    transform = ActionTransform(action_index=[0, 9], relative_dims=[0, 8])
    fields = [f for f, _ in transform.problems(native_dim=7, state_dim=4)]
    assert fields == ["action_index", "relative_dims", "state_dims"]
    assert [f for f, _ in transform.problems(native_dim=10, state_dim=None)] == ["state_key"]


def test_missing_state_column_is_a_dataset_error_naming_the_key(corpus: Path) -> None:
    resolved = _resolved(corpus)
    heads = build_norm_heads(resolved, WIDTH)
    transform = ActionTransform(relative_dims=[0], state_key="observation.joints")
    with pytest.raises(DatasetError, match=r"observation\.joints"):
        compute_head_stats(resolved, heads, transforms=transform, chunk_size=CHUNK, cache=False)


def test_fit_with_a_transform_normalizes_with_the_transformed_stats(corpus: Path, tmp_path: Path) -> None:
    mixture = write_mixture(
        corpus / "fit.json",
        {"datasets": [{"repo_id": "lab/b", "root": "b"}], "encoded_dims": "0:4", "relative_dims": "0:4"},
    )
    settings = FitSettings(total_chunks=60, chunk_size=CHUNK, max_action_dim=WIDTH, vocab_size=260)
    tokenizer, report = fit_tokenizer(mixture, settings, preflight=False)
    del tokenizer
    assert report.stats_source == "data"
    config = load_mixture(mixture)
    resolved = resolve_mixture(config)
    heads = build_norm_heads(resolved, WIDTH)
    stats = compute_head_stats(
        resolved, heads, transforms=config.entry_transforms(), chunk_size=CHUNK, cache=False
    )
    plain = fit_tokenizer(
        write_mixture(corpus / "plain.json", {"datasets": [{"repo_id": "lab/b", "root": "b"}]}),
        settings,
        preflight=False,
    )[1]
    assert report.fit_fingerprint != plain.fit_fingerprint
    assert report.norm_heads_fingerprint != plain.norm_heads_fingerprint
    assert stats.counts[0] == (25 - CHUNK + 1 + 40 - CHUNK + 1) * CHUNK


def test_stored_stats_with_a_transform_are_refused(corpus: Path) -> None:
    with pytest.raises(FitError, match="stats_source 'data'"):
        FitSettings(stats_source="stored", transform=ActionTransform(action_index=[0]))
    mixture = write_mixture(
        corpus / "stored.json", {"datasets": [{"repo_id": "lab/b", "root": "b"}], "relative_dims": [0]}
    )
    with pytest.raises(FitError, match=r"no stats\.json holds"):
        fit_tokenizer(mixture, FitSettings(stats_source="stored", total_chunks=50), preflight=False)


def test_the_fit_fingerprint_covers_the_transform_and_defaults_keep_theirs(corpus: Path) -> None:
    from fasttok_plugin.fit import fit_fingerprint

    resolved = _resolved(corpus)
    heads = build_norm_heads(resolved, WIDTH)
    transform = TRANSFORMS["select"]
    plain = ChunkSampler(resolved, heads, chunk_size=CHUNK).settings()
    selected = ChunkSampler(resolved, heads, chunk_size=CHUNK, transforms=transform).settings()
    base = fit_fingerprint(heads, FitSettings(), plain)
    assert fit_fingerprint(heads, FitSettings(transform=ActionTransform()), plain) == base
    assert fit_fingerprint(heads, FitSettings(transform=transform), selected) != base
    with pytest.raises(FitError, match="differs from the sampler's transforms"):
        fit_fingerprint(heads, FitSettings(transform=transform), plain)


def test_the_cache_is_hit_for_the_same_transform_and_missed_for_another(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fasttok_plugin.stats.compute as compute_module
    from fasttok_plugin.lerobot import read_frames

    reads: list[str] = []

    def counting(meta, name=None, **kwargs):
        reads.append(str(name))
        return read_frames(meta, name, **kwargs)

    monkeypatch.setattr(compute_module, "read_frames", counting)
    resolved = _resolved(corpus)
    heads = build_norm_heads(resolved, WIDTH)
    first = compute_head_stats(
        resolved, heads, transforms=TRANSFORMS["both"], chunk_size=CHUNK, cache_dir=tmp_path
    )
    assert reads
    reads.clear()
    again = compute_head_stats(
        resolved, heads, transforms=TRANSFORMS["both"], chunk_size=CHUNK, cache_dir=tmp_path
    )
    assert reads == []  # served from the cache: no frame read
    assert again.same_values(first)
    other = ActionTransform(action_index=[6, 0, 1, 2], relative_dims=[0, 1, 2])
    compute_head_stats(resolved, heads, transforms=other, chunk_size=CHUNK, cache_dir=tmp_path)
    assert reads  # another transform is another content key
    reads.clear()
    compute_head_stats(
        resolved, heads, transforms=TRANSFORMS["both"], chunk_size=CHUNK + 1, cache_dir=tmp_path
    )
    assert reads  # relative stats depend on the chunk size


def test_with_data_stats_refuses_stats_of_another_content_key(corpus: Path, tmp_path: Path) -> None:
    from fasttok_plugin.stats import stats_key

    resolved = _resolved(corpus)
    heads = build_norm_heads(resolved, WIDTH)
    stats = compute_head_stats(resolved, heads, cache_dir=tmp_path)
    assert heads.with_data_stats(stats, key=stats_key(resolved, heads, None)).stats_source == "data"
    with pytest.raises(ValueError, match="content key"):
        heads.with_data_stats(stats, key=stats_key(resolved, heads, "another transform"))


def test_entries_without_stored_stats_get_a_head_under_stats_from_the_data(tmp_path: Path) -> None:
    from fasttok_plugin.preflight import run_preflight

    monkey_cache = tmp_path / "cache"
    bare = write_lerobot_dataset(
        tmp_path / "bare", control_mode="pos", write_stats=False, write_episode_stats=False
    )
    wide = write_lerobot_dataset(tmp_path / "wide", robot_type="big", control_mode="pos", action_dim=12)
    document = {
        "datasets": [{"repo_id": "lab/bare", "root": "bare"}, {"repo_id": "lab/wide", "root": "wide"}]
    }
    mixture = write_mixture(tmp_path / "mixture.json", document)
    resolved = resolve_mixture(load_mixture(mixture))
    stored = build_norm_heads(resolved, WIDTH)
    assert stored.dataset_to_head == (-1, -1)  # no stats; 12 dims > 8
    select = (None, ActionTransform(action_index="0:4,8:12"))
    heads = build_norm_heads(resolved, WIDTH, stats_source="data", transforms=select)
    assert heads.dataset_to_head == (0, 1)
    assert heads.errors() == []
    assert heads.native_dims == (7, 8)
    stats = compute_head_stats(resolved, heads, transforms=select, chunk_size=CHUNK, cache_dir=monkey_cache)
    _check_head(stats, 0, np.concatenate(bare.actions))
    _check_head(stats, 1, np.concatenate(wide.actions)[:, [0, 1, 2, 3, 8, 9, 10, 11]])
    codes = {
        f.code
        for f in run_preflight(mixture, entry_points=False, stats_source="data", norm_heads=heads).findings
    }
    assert "FT202" not in codes
    assert "FT201" not in codes
    assert "FT202" in {f.code for f in run_preflight(mixture, entry_points=False).findings}


def test_a_selection_past_the_native_dim_is_an_error_naming_the_entry_not_an_index_error(
    corpus: Path,
) -> None:
    from fasttok_plugin.errors import StatsError

    resolved = _resolved(corpus)
    heads = build_norm_heads(resolved, 16)
    past = ActionTransform(action_index="0:9")
    with pytest.raises(StatsError, match=r"entry 0 \(lab/a\).*selects dim 7 but the action has 7 dims"):
        compute_head_stats(resolved, heads, transforms=past, chunk_size=CHUNK, cache=False)
    sampler = ChunkSampler(resolved, heads, chunk_size=CHUNK, transforms=past)
    assert list(sampler.sample(30)) == []
    assert all("selects dim 7" in (r.error or "") for r in sampler.report)


def test_a_misspelt_transform_key_is_flagged_with_the_known_key(corpus: Path) -> None:
    document = {"relative_dim": [0], "datasets": [{"repo_id": "lab/a", "root": "a", "encoded_dim": "0:3"}]}
    config = load_mixture(write_mixture(corpus / "typo.json", document))
    assert {(u.key, u.suggestion) for u in config.unknown_keys} == {
        ("relative_dim", "relative_dims"),
        ("encoded_dim", "encoded_dims"),
    }
    assert config.entry_transforms() == (None,)  # nothing silently applied
