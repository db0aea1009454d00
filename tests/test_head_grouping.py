"""Head grouping (issue #11 item 3): ``robot_control`` (default, unchanged), ``global`` and ``dataset``.

Every test builds heads from real LeRobot datasets written with pyarrow and checks the pooled stats
against numpy over the datasets' own ``meta/stats.json`` (and over the zero-padded frames themselves).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fasttok_plugin.errors import MixtureError
from fasttok_plugin.heads import HeadKey, NormHeads, build_norm_heads
from fasttok_plugin.mixture import load_mixture
from fasttok_plugin.preflight import run_preflight
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.testing import SyntheticDataset, write_lerobot_dataset, write_mixture

MakeDataset = Callable[..., SyntheticDataset]
WriteMixture = Callable[..., Path]
WIDTH = 8

# Fingerprint of `_pinned_mixture` built with max_action_dim=8, computed with the code before #11
# (commit 264f076, /work/main then): the default grouping must keep every fingerprint bit for bit.
PRE_CHANGE_FINGERPRINT = "744c0b4b7023c9bd395552c6af301b336c6851a6a49e682e8f092f1f1f2d67f6"


def _pinned_mixture(tmp: Path, **top: Any) -> Path:
    write_lerobot_dataset(tmp / "a", action_dim=3, robot_type="arm", control_mode="joint", seed=0)
    write_lerobot_dataset(
        tmp / "b", action_dim=3, robot_type="arm", control_mode="joint", seed=1, version="v2.1"
    )
    write_lerobot_dataset(tmp / "c", action_dim=5, robot_type=None, control_mode=None, seed=2)
    entries = [{"repo_id": f"org/{n}", "root": n} for n in "abc"]
    return write_mixture(tmp / "m.json", {"datasets": entries, **top})


@pytest.fixture
def mixed(make_dataset: MakeDataset, write_mixture_file: WriteMixture) -> tuple[Path, list[SyntheticDataset]]:
    """Four entries: two sharing ``arm::joint`` (dims 3), a 5-dim base, a fallback (no tags), 2 dims."""
    datasets = [
        make_dataset("a", action_dim=3, robot_type="arm", control_mode="joint", seed=0),
        make_dataset("b", action_dim=3, robot_type="arm", control_mode="joint", seed=1, version="v2.1"),
        make_dataset("base", action_dim=5, robot_type="base", control_mode="vel", seed=2),
        make_dataset("untagged", action_dim=2, robot_type=None, seed=3, episode_lengths=(30, 45, 50)),
    ]
    entries = [{"repo_id": f"org/{n}", "root": f"datasets/{n}"} for n in ("a", "b", "base", "untagged")]
    return write_mixture_file({"datasets": entries}), datasets


def _heads(path: Path, grouping: str | None = None) -> NormHeads:
    resolved = resolve_mixture(path)
    if grouping is None:
        return build_norm_heads(resolved, WIDTH)
    return build_norm_heads(resolved, WIDTH, grouping=grouping)


def _stored(ds: SyntheticDataset) -> dict[str, np.ndarray]:
    """The dataset's own meta/stats.json action stats, zero-padded to WIDTH, with its frame count."""
    stats = json.loads((ds.root / "meta" / "stats.json").read_text())[ds.action_key]
    out = {k: np.pad(np.asarray(stats[k], dtype=np.float64), (0, WIDTH - ds.action_dim)) for k in stats}
    out["count"] = np.asarray(stats["count"], dtype=np.float64)
    return out


def _expected(members: Sequence[SyntheticDataset]) -> dict[str, np.ndarray]:
    """Stored-stats pooling written out with numpy: min of mins, max of maxes, count-weighted moments."""
    stored = [_stored(ds) for ds in members]
    n = np.array([s["count"][0] for s in stored])
    means = np.stack([s["mean"] for s in stored])
    mean = (n[:, None] * means).sum(0) / n.sum()
    second = (n[:, None] * (np.stack([s["std"] for s in stored]) ** 2 + means**2)).sum(0) / n.sum()
    return {
        "min": np.min([s["min"] for s in stored], axis=0),
        "max": np.max([s["max"] for s in stored], axis=0),
        "mean": mean,
        "std": np.sqrt(np.maximum(second - mean**2, 0.0)),
    }


def _frames(members: Sequence[SyntheticDataset]) -> np.ndarray:
    """Every frame of the members, zero-padded to WIDTH exactly like the training batches."""
    return np.concatenate(
        [np.pad(ds.concatenated().astype(np.float64), ((0, 0), (0, WIDTH - ds.action_dim))) for ds in members]
    )


def _assert_head_stats(heads: NormHeads, h: int, members: Sequence[SyntheticDataset]) -> None:
    expected = _expected(members)
    for stat in ("min", "max", "mean", "std"):
        np.testing.assert_allclose(
            getattr(heads, stat)[h], expected[stat], rtol=1e-12, atol=1e-12, err_msg=stat
        )
    frames = _frames(members)
    np.testing.assert_allclose(heads.min[h], frames.min(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(heads.max[h], frames.max(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(heads.mean[h], frames.mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(heads.std[h], frames.std(0), rtol=1e-6, atol=1e-7)
    assert heads.counts[h] == frames.shape[0]


def test_robot_control_groups_by_tags_with_a_fallback_per_untagged_entry(
    mixed: tuple[Path, list[SyntheticDataset]],
) -> None:
    path, (a, b, base, untagged) = mixed
    heads = _heads(path, "robot_control")

    assert heads.grouping == "robot_control"
    assert heads.head_keys == (
        HeadKey.tagged("arm", "joint"),
        HeadKey.tagged("base", "vel"),
        HeadKey.fallback(3, "org/untagged"),
    )
    assert heads.head_members == ((0, 1), (2,), (3,))
    assert heads.native_dims == (3, 5, 2)
    assert heads.fallback_entries == (3,)
    for h, members in enumerate(([a, b], [base], [untagged])):
        _assert_head_stats(heads, h, members)


def test_global_is_one_head_over_every_entry_padded_to_the_widest(
    mixed: tuple[Path, list[SyntheticDataset]],
) -> None:
    path, datasets = mixed
    heads = _heads(path, "global")

    assert heads.grouping == "global"
    assert heads.num_heads == 1
    assert heads.head_keys == (HeadKey.global_(),)
    assert heads.keys == ("global",)
    assert heads.head_members == ((0, 1, 2, 3),)
    assert heads.dataset_to_head == (0, 0, 0, 0)
    assert heads.entry_keys == ("global",) * 4
    assert heads.native_dims == (5,)  # the widest member
    # Dims 3, 5 and 2 in one head: frameworks pad, so it is not an incompatible-dims error (FT105).
    assert heads.incompatible_dims == ()
    # Tags are not needed, so the untagged entry is no fallback (no FT104).
    assert heads.fallback_entries == ()
    assert heads.errors() == []
    _assert_head_stats(heads, 0, datasets)


def test_dataset_is_one_head_per_entry_named_after_it(mixed: tuple[Path, list[SyntheticDataset]]) -> None:
    path, datasets = mixed
    heads = _heads(path, "dataset")

    assert heads.grouping == "dataset"
    assert heads.num_heads == 4
    assert heads.keys == ("org/a", "org/b", "org/base", "org/untagged")
    assert heads.head_keys == tuple(HeadKey.entry(i, k) for i, k in enumerate(heads.keys))
    assert heads.head_members == ((0,), (1,), (2,), (3,))
    assert heads.native_dims == (3, 3, 5, 2)
    assert heads.fallback_entries == ()
    assert heads.duplicate_fallbacks == ()
    assert heads.errors() == []
    for h, ds in enumerate(datasets):
        _assert_head_stats(heads, h, [ds])


def test_default_grouping_keeps_the_pre_change_fingerprint(tmp_path: Path) -> None:
    path = _pinned_mixture(tmp_path)
    resolved = resolve_mixture(path)
    default = build_norm_heads(resolved, WIDTH)
    explicit = build_norm_heads(resolved, WIDTH, grouping="robot_control")

    assert default.fingerprint == explicit.fingerprint == PRE_CHANGE_FINGERPRINT
    assert default.grouping == "robot_control"


def test_every_grouping_has_its_own_fingerprint(tmp_path: Path) -> None:
    path = _pinned_mixture(tmp_path)
    resolved = resolve_mixture(path)
    prints = {
        g: build_norm_heads(resolved, WIDTH, grouping=g).fingerprint
        for g in ("robot_control", "global", "dataset")
    }

    assert len(set(prints.values())) == 3
    # Rebuilding is deterministic: the fingerprint is the grouping's, not the process's.
    assert build_norm_heads(resolve_mixture(path), WIDTH, grouping="global").fingerprint == prints["global"]


def test_a_single_tagged_entry_differs_only_by_grouping_in_the_fingerprint(
    make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    # One entry: robot_control and dataset give the same members and stats; only key and grouping differ.
    make_dataset("one", action_dim=3, robot_type="arm", control_mode="joint")
    path = write_mixture_file({"datasets": [{"repo_id": "org/one", "root": "datasets/one"}]})
    by_tags, by_entry = _heads(path, "robot_control"), _heads(path, "dataset")

    assert by_tags.head_members == by_entry.head_members == ((0,),)
    np.testing.assert_array_equal(by_tags.mean, by_entry.mean)
    assert by_tags.fingerprint != by_entry.fingerprint


def test_require_non_empty_still_reports_missing_tags_under_every_grouping(
    make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    make_dataset("tagged", action_dim=3, robot_type="arm", control_mode="joint")
    make_dataset("untagged", action_dim=3, robot_type=None, seed=1)
    entries = [{"repo_id": f"org/{n}", "root": f"datasets/{n}"} for n in ("tagged", "untagged")]
    path = write_mixture_file({"datasets": entries, "require_non_empty_robot_type": True})
    for grouping in ("robot_control", "global", "dataset"):
        heads = _heads(path, grouping)
        assert [(m.entry, m.field) for m in heads.missing_tags] == [(1, "robot_type")], grouping
        assert any("robot_type" in e and "org/untagged" in e for e in heads.errors()), grouping


def test_the_preflight_reports_no_fallback_head_under_global_or_dataset(
    mixed: tuple[Path, list[SyntheticDataset]],
) -> None:
    path, _ = mixed
    codes = {
        g: {f.code for f in run_preflight(path, head_grouping=g, entry_points=False).findings}
        for g in ("robot_control", "global", "dataset")
    }
    assert "FT104" in codes["robot_control"]
    assert "FT104" not in codes["global"]
    assert "FT104" not in codes["dataset"]
    assert "FT105" not in codes["global"]


def test_the_mixture_key_sets_the_grouping_and_the_argument_overrides_it(tmp_path: Path) -> None:
    path = _pinned_mixture(tmp_path, head_grouping="dataset")
    config = load_mixture(path)
    assert config.head_grouping == "dataset"
    assert load_mixture(_pinned_mixture(tmp_path / "plain")).head_grouping is None
    result = run_preflight(path, head_grouping="global", entry_points=False)
    assert result.ok, [str(f) for f in result.findings]


@pytest.mark.parametrize("value", ["per_head", "", 3, True, ["global"]])
def test_a_bad_mixture_grouping_names_the_allowed_values_and_its_line(tmp_path: Path, value: Any) -> None:
    path = _pinned_mixture(tmp_path, head_grouping=value)
    with pytest.raises(MixtureError) as info:
        load_mixture(path)
    (problem,) = info.value.problems
    assert problem.pointer == "/head_grouping"
    assert problem.line == next(
        i for i, line in enumerate(path.read_text().splitlines(), 1) if "head_grouping" in line
    )
    for allowed in ("robot_control", "global", "dataset"):
        assert allowed in problem.message
    assert repr(value) in problem.message


def test_a_wrapped_mixture_reports_the_wrapped_pointer(tmp_path: Path) -> None:
    write_lerobot_dataset(tmp_path / "a", action_dim=3)
    path = write_mixture(
        tmp_path / "m.json",
        {"dataset_mixture": {"datasets": [{"repo_id": "a", "root": "a"}], "head_grouping": "robot"}},
    )
    with pytest.raises(MixtureError, match="head_grouping must be one of") as info:
        load_mixture(path)
    assert [p.pointer for p in info.value.problems] == ["/dataset_mixture/head_grouping"]


def test_a_misspelt_key_suggests_head_grouping(tmp_path: Path) -> None:
    config = load_mixture(_pinned_mixture(tmp_path, head_groupping="global"))
    assert [(u.key, u.suggestion) for u in config.unknown_keys] == [("head_groupping", "head_grouping")]


@pytest.mark.parametrize("value", ["robot", None, 1])
def test_build_norm_heads_refuses_an_unknown_grouping(tmp_path: Path, value: Any) -> None:
    resolved = resolve_mixture(_pinned_mixture(tmp_path))
    with pytest.raises(ValueError, match="grouping must be one of 'robot_control', 'global', 'dataset'"):
        build_norm_heads(resolved, WIDTH, grouping=value)


class _Source:
    """A minimal `FitSource`: heads and a sampler built outside the fit."""

    def __init__(self, path: Path, grouping: str) -> None:
        from fasttok_plugin.sampling import ChunkSampler

        self.resolved_mixture = resolve_mixture(path)
        self.norm_heads = build_norm_heads(self.resolved_mixture, WIDTH, grouping=grouping)
        self.chunk_sampler = ChunkSampler(self.resolved_mixture, self.norm_heads, chunk_size=8)


_SMALL = {"vocab_size": 256, "total_chunks": 120, "max_fit_chunks": 80}


def test_fit_tokenizer_groups_by_the_setting_and_reports_it(
    mixed: tuple[Path, list[SyntheticDataset]],
) -> None:
    from fasttok_plugin.fit import FitSettings, fit_tokenizer

    path, _ = mixed
    _, report = fit_tokenizer(
        path, FitSettings(chunk_size=8, max_action_dim=WIDTH, head_grouping="dataset", **_SMALL)
    )
    assert report.head_grouping == "dataset"
    assert report.settings["head_grouping"] == "dataset"
    assert [h.key for h in report.heads] == ["org/a", "org/b", "org/base", "org/untagged"]
    assert report.norm_heads_fingerprint == _heads(path, "dataset").fingerprint


def test_a_fit_source_keeps_its_grouping_and_refuses_another(
    mixed: tuple[Path, list[SyntheticDataset]],
) -> None:
    from fasttok_plugin.errors import FitError
    from fasttok_plugin.fit import FitSettings, fit_tokenizer

    path, _ = mixed
    source = _Source(path, "global")
    _, report = fit_tokenizer(source, FitSettings(**_SMALL))
    assert report.head_grouping == "global"
    assert report.settings["head_grouping"] == "global"
    with pytest.raises(
        FitError, match="head_grouping='dataset' but the source's norm heads are grouped by 'global'"
    ):
        fit_tokenizer(source, FitSettings(head_grouping="dataset", **_SMALL))


def test_fit_settings_refuse_an_unknown_grouping() -> None:
    from fasttok_plugin.errors import FitError
    from fasttok_plugin.fit import FitSettings

    with pytest.raises(FitError, match="head_grouping must be one of 'robot_control', 'global', 'dataset'"):
        FitSettings(head_grouping="robot")
