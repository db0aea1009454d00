"""Heads are grouped by typed HeadKey, never by their "rt::cm" display string (issue #9)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from fasttok_plugin.heads import HeadKey, NormHeads, build_norm_heads, compute_norm_key, grouped_key, head_key
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.testing import SyntheticDataset

MakeDataset = Callable[..., SyntheticDataset]
WriteMixture = Callable[..., Path]


def heads_of(write_mixture_file: WriteMixture, entries: Sequence[Mapping[str, Any]]) -> NormHeads:
    path = write_mixture_file({"datasets": list(entries)})
    return build_norm_heads(resolve_mixture(path), 4)


def test_tags_that_share_a_display_string_make_two_heads(
    make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    make_dataset("one", action_dim=2, robot_type="x::y", control_mode="z")
    make_dataset("two", action_dim=3, robot_type="x", control_mode="y::z", seed=1)
    heads = heads_of(
        write_mixture_file,
        [{"repo_id": "one", "root": "datasets/one"}, {"repo_id": "two", "root": "datasets/two"}],
    )

    assert heads.keys == ("x::y::z", "x::y::z")  # same display name ...
    assert heads.head_keys == (HeadKey.tagged("x::y", "z"), HeadKey.tagged("x", "y::z"))  # ... two heads
    assert heads.dataset_to_head == (0, 1)
    assert heads.head_members == ((0,), (1,))
    assert heads.native_dims == (2, 3)
    assert heads.incompatible_dims == ()  # different heads: their dims need not agree
    assert heads.errors() == []


def test_tag_pairs_sharing_a_display_string_have_different_fingerprints(
    make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    # Same dataset, same entry name, same stats: only the split of the tags differs.
    make_dataset("ds", action_dim=2)
    entry = {"repo_id": "ds", "root": "datasets/ds"}
    left = heads_of(write_mixture_file, [{**entry, "robot_type": "x::y", "control_mode": "z"}])
    right = heads_of(write_mixture_file, [{**entry, "robot_type": "x", "control_mode": "y::z"}])

    assert left.keys == right.keys == ("x::y::z",)
    assert left.head_keys != right.head_keys
    assert left.fingerprint != right.fingerprint


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_whitespace_around_tags_does_not_split_a_head(
    version: str, make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    make_dataset("padded", version=version, action_dim=2, robot_type=" arm ", control_mode="ee\t")
    make_dataset("plain", version=version, action_dim=2, robot_type="arm", control_mode="ee", seed=1)
    make_dataset("override", version=version, action_dim=2, robot_type="other", seed=2)
    heads = heads_of(
        write_mixture_file,
        [
            {"repo_id": "padded", "root": "datasets/padded"},
            {"repo_id": "plain", "root": "datasets/plain"},
            {
                "repo_id": "override",
                "root": "datasets/override",
                "robot_type": "  arm",
                "control_mode": " ee",
            },
        ],
    )

    assert heads.keys == ("arm::ee",)
    assert heads.head_keys == (HeadKey.tagged("arm", "ee"),)
    assert heads.head_members == ((0, 1, 2),)
    assert heads.entry_keys == ("arm::ee", "arm::ee", "arm::ee")
    assert heads.fallback_entries == ()


def test_a_fallback_named_like_a_tag_pair_does_not_join_that_head(
    make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    make_dataset("tagged", action_dim=2, robot_type="a", control_mode="b")
    make_dataset("untagged", action_dim=2, robot_type=None, seed=1)
    heads = heads_of(
        write_mixture_file,
        [
            {"repo_id": "tagged", "root": "datasets/tagged"},
            {"repo_id": "a::b", "root": "datasets/untagged"},
        ],
    )

    assert heads.keys == ("a::b", "a::b")
    assert heads.head_keys == (HeadKey.tagged("a", "b"), HeadKey.fallback(1, "a::b"))
    assert heads.dataset_to_head == (0, 1)
    assert heads.head_members == ((0,), (1,))
    assert heads.fallback_entries == (1,)
    assert heads.counts.tolist() == [140, 140]  # each head pools only its own entry


def test_head_keys_render_their_display_names(
    make_dataset: MakeDataset, write_mixture_file: WriteMixture
) -> None:
    make_dataset("A", action_dim=2, robot_type=None)
    make_dataset("B", action_dim=2, robot_type="arm", control_mode="ee")
    heads = heads_of(
        write_mixture_file,
        [{"repo_id": r, "root": f"datasets/{r}"} for r in ("A", "B", "A")],
    )

    assert heads.keys == tuple(key.display for key in heads.head_keys) == ("A#0", "arm::ee", "A#1")
    assert [str(key) for key in heads.head_keys] == list(heads.keys)
    assert [key.fallback_entry for key in heads.head_keys] == [0, None, 2]


def test_head_key_is_the_typed_form_of_compute_norm_key() -> None:
    for tags in [("arm", "ee"), (" arm ", "ee"), (None, "ee"), ("arm", "unknown"), ("x::y", "z")]:
        key = head_key(*tags, 3, "org/ds")
        assert compute_norm_key(*tags, "org/ds") == (key.display, key.is_fallback)
    assert head_key(None, "ee", 3, "org/ds") == HeadKey.fallback(3, "org/ds")
    assert HeadKey.tagged(" arm ", "ee ").to_json() == ["tagged", "arm", "ee"]
    assert HeadKey.fallback(3, "a::b").to_json() == ["fallback", 3, "a::b"]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"robot_type": "arm"},
        {"control_mode": "ee"},
        {"robot_type": "arm", "control_mode": "ee", "fallback_entry": 0},
    ],
)
def test_a_head_key_is_either_tagged_or_a_fallback(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="either"):
        HeadKey(**fields)


# -- the grouping kinds (issue #11) --------------------------------------------------------------------------


def test_grouping_keys_have_their_own_unambiguous_json() -> None:
    assert HeadKey.global_().to_json() == ["global"]
    assert HeadKey.entry(2, "org/ds").to_json() == ["entry", 2, "org/ds"]
    # An entry head, a fallback head and a tagged head on the same text never compare or serialize equal.
    keys = [
        HeadKey.entry(0, "a::b"),
        HeadKey.fallback(0, "a::b"),
        HeadKey.tagged("a", "b"),
        HeadKey.global_(),
    ]
    assert len(set(keys)) == 4
    assert len({json.dumps(k.to_json()) for k in keys}) == 4
    assert {k.display for k in keys[:3]} == {"a::b"}
    assert HeadKey.global_().display == "global"
    assert [k.is_tagged for k in keys] == [False, False, True, False]
    assert [k.is_fallback for k in keys] == [False, True, False, False]


@pytest.mark.parametrize(
    "fields",
    [
        {"dataset_entry": 0, "fallback_entry": 0},
        {"dataset_entry": 0, "whole_mixture": True},
        {"robot_type": "arm", "control_mode": "ee", "whole_mixture": True},
        {"dataset_entry": 1, "robot_type": "arm", "control_mode": "ee"},
    ],
)
def test_a_head_key_has_exactly_one_kind(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="either"):
        HeadKey(**fields)


def test_grouped_key_applies_each_grouping() -> None:
    assert grouped_key("robot_control", "arm", "ee", 3, "org/ds") == HeadKey.tagged("arm", "ee")
    assert grouped_key("robot_control", None, "ee", 3, "org/ds") == HeadKey.fallback(3, "org/ds")
    assert grouped_key("global", "arm", "ee", 3, "org/ds") == HeadKey.global_()
    assert grouped_key("dataset", None, None, 3, "org/ds") == HeadKey.entry(3, "org/ds")
    with pytest.raises(ValueError, match="one of 'robot_control', 'global', 'dataset', got 'tags'"):
        grouped_key("tags", "arm", "ee", 3, "org/ds")
