"""Parsing and validating mixture files (DESIGN §3)."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fasttok_plugin.mixture import MixtureConfig, MixtureError, _index_lines, load_mixture, parse_mixture


def _line_containing(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def _only(problems, pointer: str):
    found = [p for p in problems if p.pointer == pointer]
    assert len(found) == 1, (pointer, problems)
    return found[0]


# --- shape of the document -------------------------------------------------------------------------------


def test_bare_and_wrapped_documents_parse_to_the_same_entries(write_mixture_file):
    body = {
        "datasets": [{"repo_id": "org/a", "root": "a"}, {"repo_id": "org/b", "root": "b"}],
        "action_freq": 15,
    }
    bare = load_mixture(write_mixture_file(body, "bare.json"))
    wrapped = load_mixture(write_mixture_file({"dataset_mixture": body}, "wrapped.json"))
    assert [e.repo_id for e in bare.datasets] == [e.repo_id for e in wrapped.datasets] == ["org/a", "org/b"]
    assert [e.root for e in bare.datasets] == [e.root for e in wrapped.datasets]
    assert bare.action_freq == wrapped.action_freq == 15.0
    assert [e.pointer for e in bare.datasets] == ["/datasets/0", "/datasets/1"]
    assert [e.pointer for e in wrapped.datasets] == [
        "/dataset_mixture/datasets/0",
        "/dataset_mixture/datasets/1",
    ]
    assert bare.weights_pointer == "/datasets"
    assert wrapped.weights_pointer == "/dataset_mixture/datasets"


def test_defaults_and_all_fields(write_mixture_file, tmp_path):
    path = write_mixture_file(
        {
            "datasets": [
                {
                    "repo_id": "org/a",
                    "root": "data/a",
                    "robot_type": "so100",
                    "control_mode": "joint_pos",
                    "episodes": [3, 1],
                    "excluded_episodes": [2],
                    "action_key": "actions",
                    "revision": "v2.1",
                }
            ],
            "require_non_empty_robot_type": True,
            "require_non_empty_control_mode": False,
            "max_action_dim": 24,
            "chunk_size": 16,
        }
    )
    config = load_mixture(path)
    assert isinstance(config, MixtureConfig)
    entry = config.datasets[0]
    assert entry.index == 0
    assert entry.root == tmp_path / "data" / "a"
    assert (entry.robot_type, entry.control_mode) == ("so100", "joint_pos")
    assert entry.episodes == (3, 1)
    assert entry.excluded_episodes == (2,)
    assert entry.action_key == "actions"
    assert entry.revision == "v2.1"
    assert entry.weight is None
    assert config.weights == (1.0,)
    assert config.action_freq is None
    assert config.require_non_empty_robot_type is True
    assert config.require_non_empty_control_mode is False
    assert (config.max_action_dim, config.chunk_size) == (24, 16)
    assert config.problems == ()
    assert config.unknown_keys == ()
    assert config.path == path


# --- roots -----------------------------------------------------------------------------------------------


def test_relative_roots_resolve_against_the_mixture_folder_not_the_cwd(tmp_path, monkeypatch):
    folder = tmp_path / "configs" / "nested"
    folder.mkdir(parents=True)
    (folder / "m.json").write_text(json.dumps({"datasets": [{"repo_id": "x", "root": "../data/x"}]}))
    monkeypatch.chdir(tmp_path)
    config = load_mixture("configs/nested/m.json")
    assert config.datasets[0].root == tmp_path / "configs" / "data" / "x"
    assert config.datasets[0].root.is_absolute()


def test_absolute_and_home_roots(write_mixture_file, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load_mixture(
        write_mixture_file(
            {
                "datasets": [
                    {"repo_id": "a", "root": str(tmp_path / "abs")},
                    {"repo_id": "b", "root": "~/ds/b"},
                ]
            }
        )
    )
    assert config.datasets[0].root == tmp_path / "abs"
    assert config.datasets[1].root == tmp_path / "home" / "ds" / "b"


def test_default_root_is_hf_lerobot_home_slash_repo_id(write_mixture_file, lerobot_home):
    config = load_mixture(write_mixture_file({"datasets": [{"repo_id": "org/name"}]}))
    assert config.datasets[0].root == lerobot_home / "org" / "name"


@pytest.mark.parametrize("value", [None, ""])
def test_without_hf_lerobot_home_the_default_root_is_the_hugging_face_cache(
    write_mixture_file, tmp_path, monkeypatch, value
):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if value is None:
        monkeypatch.delenv("HF_LEROBOT_HOME", raising=False)
    else:
        monkeypatch.setenv("HF_LEROBOT_HOME", value)
    config = load_mixture(write_mixture_file({"datasets": [{"repo_id": "org/name"}]}))
    assert config.datasets[0].root == tmp_path / "home/.cache/huggingface/lerobot/org/name"


# --- $ref ------------------------------------------------------------------------------------------------


def test_ref_includes_relative_to_including_file_and_siblings_deep_merge(tmp_path):
    (tmp_path / "parts" / "shared").mkdir(parents=True)
    (tmp_path / "parts" / "shared" / "arm.json").write_text(
        json.dumps(
            {
                "robot_type": "arm",
                "control_mode": "joint_pos",
                "data_features_name_mapping": {"actions": "action", "state": "observation.state"},
            }
        )
    )
    # datasets.json lives in parts/ and refers to shared/arm.json relative to itself.
    (tmp_path / "parts" / "datasets.json").write_text(
        json.dumps(
            [
                {"$ref": "shared/arm.json", "repo_id": "org/a", "root": "a"},
                {
                    "$ref": "shared/arm.json",
                    "repo_id": "org/b",
                    "control_mode": "ee_delta",
                    "data_features_name_mapping": {"actions": "actions"},
                },
            ]
        )
    )
    (tmp_path / "m.json").write_text(json.dumps({"datasets": {"$ref": "parts/datasets.json"}}))
    config = load_mixture(tmp_path / "m.json")
    a, b = config.datasets
    assert (a.robot_type, a.control_mode, a.action_key) == ("arm", "joint_pos", "action")
    assert (b.robot_type, b.control_mode, b.action_key) == ("arm", "ee_delta", "actions")
    # Roots stay relative to the mixture file (DESIGN §3), whichever file wrote them.
    assert a.root == tmp_path / "a"
    # The entries were written in parts/datasets.json: their location says so.
    assert a.file == tmp_path / "parts" / "datasets.json"


def test_ref_siblings_deep_merge_objects_and_replace_everything_else(tmp_path):
    (tmp_path / "base.json").write_text(
        json.dumps(
            {
                "dataset_mixture": {
                    "datasets": [{"repo_id": "a", "robot_type": "arm"}, {"repo_id": "b"}],
                    "weights": [1, 2],
                    "action_freq": 10,
                    "require_non_empty_robot_type": True,
                }
            }
        )
    )
    # Nested objects merge key by key (datasets/weights survive); lists and scalars are replaced whole.
    (tmp_path / "m.json").write_text(
        json.dumps(
            {
                "$ref": "base.json",
                "dataset_mixture": {
                    "datasets": [{"repo_id": "c"}],
                    "weights": [5],
                    "require_non_empty_robot_type": None,
                },
            }
        )
    )
    config = load_mixture(tmp_path / "m.json")
    assert [e.repo_id for e in config.datasets] == ["c"]  # the list is replaced, not concatenated
    assert config.weights == (5.0,)
    assert config.action_freq == 10.0  # kept from base.json: a shallow merge would lose it
    assert config.require_non_empty_robot_type is False  # null overrides like any value
    assert config.problems == ()
    # The entry (and its line) comes from the including file, the kept value from the included one.
    assert config.datasets[0].file == tmp_path / "m.json"
    assert config.location_of("/dataset_mixture/action_freq")[0] == tmp_path / "base.json"


def test_top_level_ref_with_sibling_override(tmp_path):
    (tmp_path / "base.json").write_text(json.dumps({"datasets": [{"repo_id": "a"}], "action_freq": 10}))
    (tmp_path / "m.json").write_text(json.dumps({"$ref": "base.json", "action_freq": 50}))
    config = load_mixture(tmp_path / "m.json")
    assert config.action_freq == 50.0
    assert [e.repo_id for e in config.datasets] == ["a"]


def test_ref_cycle_is_unreadable_and_names_the_chain(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"datasets": {"$ref": "b.json"}}))
    (tmp_path / "b.json").write_text(json.dumps([{"$ref": "c.json"}]))
    (tmp_path / "c.json").write_text(json.dumps({"$ref": "a.json"}))
    with pytest.raises(MixtureError) as info:
        load_mixture(tmp_path / "a.json")
    error = info.value
    assert error.unreadable
    assert "a.json -> b.json -> c.json -> a.json" in str(error)
    assert error.problems[0].file == tmp_path / "c.json"


def test_missing_ref_target_is_unreadable_and_names_the_including_file(tmp_path):
    (tmp_path / "m.json").write_text(
        json.dumps({"datasets": [{"$ref": "nope/missing.json", "repo_id": "a"}]})
    )
    with pytest.raises(MixtureError) as info:
        load_mixture(tmp_path / "m.json")
    error = info.value
    assert error.unreadable
    problem = error.problems[0]
    assert problem.pointer == "/datasets/0/$ref"
    assert problem.file == tmp_path / "m.json"
    assert str(tmp_path / "nope" / "missing.json") in problem.message
    assert "m.json" in problem.message
    assert "relative to the including file" in problem.hint


def test_malformed_included_file_reports_its_own_line(tmp_path):
    (tmp_path / "part.json").write_text('{\n  "repo_id": "a",\n  "root": \n}\n')
    (tmp_path / "m.json").write_text(json.dumps({"datasets": [{"$ref": "part.json"}]}))
    with pytest.raises(MixtureError) as info:
        load_mixture(tmp_path / "m.json")
    problem = info.value.problems[0]
    assert info.value.unreadable
    assert problem.file == tmp_path / "part.json"
    assert problem.line == 4
    assert "m.json -> part.json" in problem.message


def test_ref_must_be_a_string_and_scalars_cannot_take_siblings(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "m.json").write_text(
        json.dumps({"datasets": [{"$ref": 5, "repo_id": "a"}], "weights": {"$ref": "list.json", "x": 1}})
    )
    with pytest.raises(MixtureError) as info:
        load_mixture(tmp_path / "m.json")
    assert not info.value.unreadable
    pointers = {p.pointer for p in info.value.problems}
    assert "/datasets/0/$ref" in pointers
    assert "/weights" in pointers


def test_the_same_file_may_be_included_twice_without_being_a_cycle(tmp_path):
    (tmp_path / "tags.json").write_text(json.dumps({"robot_type": "arm"}))
    (tmp_path / "m.json").write_text(
        json.dumps(
            {"datasets": [{"$ref": "tags.json", "repo_id": "a"}, {"$ref": "tags.json", "repo_id": "b"}]}
        )
    )
    config = load_mixture(tmp_path / "m.json")
    assert [e.robot_type for e in config.datasets] == ["arm", "arm"]


def test_parse_mixture_resolves_refs_and_roots_against_base_dir(tmp_path):
    (tmp_path / "tags.json").write_text(json.dumps({"robot_type": "arm"}))
    config = parse_mixture(
        {"datasets": [{"$ref": "tags.json", "repo_id": "a", "root": "ds/a"}]}, base_dir=tmp_path
    )
    assert config.datasets[0].robot_type == "arm"
    assert config.datasets[0].root == tmp_path / "ds" / "a"
    assert config.path is None


# --- unreadable files ------------------------------------------------------------------------------------


def test_malformed_json_reports_line_and_column(write_mixture_file):
    path = write_mixture_file('{\n  "datasets": [\n    {"repo_id": "a",}\n  ]\n}\n')
    with pytest.raises(MixtureError) as info:
        load_mixture(path)
    error = info.value
    assert error.unreadable
    assert error.path == path
    problem = error.problems[0]
    assert problem.line == 3
    assert "line 3 column 21" in problem.message
    assert "trailing commas" in problem.hint
    assert str(path) in str(error)


def test_missing_mixture_file_is_unreadable(tmp_path):
    with pytest.raises(MixtureError) as info:
        load_mixture(tmp_path / "absent.json")
    assert info.value.unreadable
    assert "not found" in str(info.value)


def test_nan_and_infinity_tokens_are_accepted(write_mixture_file):
    path = write_mixture_file(
        '{"datasets": [{"repo_id": "a"}, {"repo_id": "b"}], "weights": [NaN, Infinity]}'
    )
    config = load_mixture(path)
    assert math.isnan(config.weights[0])
    assert config.weights[1] == math.inf
    assert {p.pointer for p in config.problems} == {"/weights/0", "/weights/1"}


# --- structural problems: raised, all at once -------------------------------------------------------------


def test_structural_problems_are_all_listed_with_pointers_and_lines(write_mixture_file):
    text = """{
  "datasets": [
    {"repo_id": 3},
    5,
    {"repo_id": "x", "root": 4, "episodes": [1, "a", -2, 1], "robot_type": ["arm"]},
    {"repo_id": "y", "action_key": "a", "data_features_name_mapping": {"actions": "b"}}
  ],
  "action_freq": -1,
  "require_non_empty_robot_type": "yes",
  "max_action_dim": 0
}
"""
    path = write_mixture_file(text)
    with pytest.raises(MixtureError) as info:
        load_mixture(path)
    error = info.value
    assert not error.unreadable
    problems = error.problems
    assert _only(problems, "/datasets/0/repo_id").line == 3
    assert "datasets[0].repo_id" in _only(problems, "/datasets/0/repo_id").message
    assert _only(problems, "/datasets/1").line == 4
    assert _only(problems, "/datasets/2/root").line == 5
    assert "datasets[2] (x).root" in _only(problems, "/datasets/2/root").message
    assert "/datasets/2/episodes/1" in {p.pointer for p in problems}
    assert "/datasets/2/episodes/2" in {p.pointer for p in problems}
    assert "twice" in _only(problems, "/datasets/2/episodes/3").message
    assert "/datasets/2/robot_type" in {p.pointer for p in problems}
    assert "disagrees" in _only(problems, "/datasets/3/data_features_name_mapping/actions").message
    assert _only(problems, "/action_freq").line == 8
    assert _only(problems, "/require_non_empty_robot_type").line == 9
    assert _only(problems, "/max_action_dim").line == 10
    assert all(p.file == path for p in problems)
    assert all(p.hint for p in problems)
    # The message lists every problem.
    assert str(error).count("\n  - ") == len(problems)


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        ({}, "/datasets"),
        ({"datasets": {}}, "/datasets"),
        ({"datasets": []}, "/datasets"),
        ({"dataset_mixture": [1]}, "/dataset_mixture"),
        ([], ""),
    ],
)
def test_missing_or_wrongly_typed_datasets_raise(write_mixture_file, document, pointer):
    with pytest.raises(MixtureError) as info:
        load_mixture(write_mixture_file(document))
    assert pointer in {p.pointer for p in info.value.problems}


def test_mixture_error_survives_pickling(write_mixture_file):
    with pytest.raises(MixtureError) as info:
        load_mixture(write_mixture_file({"datasets": [5]}))
    clone = pickle.loads(pickle.dumps(info.value))
    assert clone.problems == info.value.problems
    assert str(clone) == str(info.value)


# --- weights: recorded, not raised ------------------------------------------------------------------------


def test_weights_list_and_per_entry_weights(write_mixture_file):
    listed = load_mixture(
        write_mixture_file({"datasets": [{"repo_id": "a"}, {"repo_id": "b"}], "weights": [1, 3]}, "l.json")
    )
    assert listed.weights == (1.0, 3.0)
    assert listed.weights_pointer == "/weights"
    per_entry = load_mixture(
        write_mixture_file({"datasets": [{"repo_id": "a", "weight": 2.5}, {"repo_id": "b"}]}, "p.json")
    )
    assert per_entry.weights == (2.5, 1.0)
    assert per_entry.datasets[0].weight == 2.5
    assert per_entry.datasets[1].weight is None
    assert per_entry.weights_pointer == "/datasets"
    assert listed.problems == per_entry.problems == ()


def test_weights_given_both_ways_is_a_problem(write_mixture_file):
    config = load_mixture(
        write_mixture_file({"datasets": [{"repo_id": "a", "weight": 2}, {"repo_id": "b"}], "weights": [1, 1]})
    )
    problem = _only(config.problems, "/weights")
    assert "both" in problem.message
    assert "[0]" in problem.message
    assert config.weights == (1.0, 1.0)


@pytest.mark.parametrize(
    ("weights", "pointer", "fragment"),
    [
        ([1, 2, 3], "/weights", "3 values but datasets has 2"),
        ([1], "/weights", "1 values but datasets has 2"),
        ([1, -1], "/weights/1", "negative"),
        ([1, "2"], "/weights/1", "must be a number"),
        ([True, 1], "/weights/0", "must be a number"),
        ([0, 0], "/weights", "all weights are zero"),
        ({"a": 1}, "/weights", "must be a list"),
    ],
)
def test_invalid_weights_are_recorded_with_pointer_and_line(write_mixture_file, weights, pointer, fragment):
    path = write_mixture_file({"datasets": [{"repo_id": "a"}, {"repo_id": "b"}], "weights": weights})
    config = load_mixture(path)
    problem = next(p for p in config.problems if p.pointer == pointer and fragment in p.message)
    assert problem.file == path
    assert problem.line is not None
    assert problem.line == config.line_of(pointer)
    assert problem.hint
    assert len(config.weights) == 2


def test_invalid_per_entry_weight_points_at_the_entry(write_mixture_file):
    path = write_mixture_file({"datasets": [{"repo_id": "a", "weight": -3}, {"repo_id": "b", "weight": "x"}]})
    config = load_mixture(path)
    assert "negative" in _only(config.problems, "/datasets/0/weight").message
    bad = _only(config.problems, "/datasets/1/weight")
    assert "datasets[1]" in bad.message
    assert math.isnan(config.weights[1])
    assert config.datasets[0].weight == -3.0


def test_missing_trailing_weights_are_nan_never_a_silent_default(write_mixture_file):
    config = load_mixture(
        write_mixture_file({"datasets": [{"repo_id": "a"}, {"repo_id": "b"}], "weights": [2]})
    )
    assert config.weights[0] == 2.0
    assert math.isnan(config.weights[1])


# --- action key ------------------------------------------------------------------------------------------


def test_opentau_data_features_name_mapping_sets_the_action_key(write_mixture_file):
    config = load_mixture(
        write_mixture_file(
            {
                "datasets": [
                    {"repo_id": "a", "data_features_name_mapping": {"actions": "act", "camera0": "img"}},
                    {
                        "repo_id": "b",
                        "action_key": "actions",
                        "data_features_name_mapping": {"actions": "actions"},
                    },
                    {"repo_id": "c", "data_features_name_mapping": {"state": "observation.state"}},
                ]
            }
        )
    )
    assert [e.action_key for e in config.datasets] == ["act", "actions", None]


# --- unknown keys ----------------------------------------------------------------------------------------


def test_unknown_keys_are_collected_with_suggestions_and_lines(write_mixture_file):
    text = """{
  "dataset_mixture": {
    "datasets": [
      {"repo_id": "a",
       "robot_typ": "arm"}
    ],
    "require_non_empty_robottype": true,
    "colour": 1
  },
  "policy": {}
}
"""
    path = write_mixture_file(text)
    config = load_mixture(path)
    by_key = {u.key: u for u in config.unknown_keys}
    assert set(by_key) == {"require_non_empty_robottype", "robot_typ", "colour", "policy"}
    typo = by_key["require_non_empty_robottype"]
    assert typo.suggestion == "require_non_empty_robot_type"
    assert typo.pointer == "/dataset_mixture/require_non_empty_robottype"
    assert typo.line == 7
    assert by_key["robot_typ"].suggestion == "robot_type"
    assert by_key["robot_typ"].pointer == "/dataset_mixture/datasets/0/robot_typ"
    assert by_key["robot_typ"].line == 5
    assert by_key["colour"].suggestion is None
    # The typo does not silently set the flag.
    assert config.require_non_empty_robot_type is False


# --- locations and fingerprint ---------------------------------------------------------------------------


def test_entry_lines_point_at_the_opening_brace(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps({"dataset_mixture": {"datasets": [{"repo_id": f"r{i}"} for i in range(5)]}}, indent=2)
    )
    config = load_mixture(path)
    for entry in config.datasets:
        brace_line = _line_containing(path, f'"r{entry.index}"') - 1
        assert entry.line == brace_line
        assert config.line_of(entry.pointer) == brace_line
        assert path.read_text().splitlines()[brace_line - 1].strip() == "{"
    # Pointers below a known value fall back to the closest enclosing one.
    assert config.line_of("/dataset_mixture/datasets/2/not_there") == config.datasets[2].line


def test_keys_with_slashes_are_escaped_in_pointers(write_mixture_file):
    config = load_mixture(write_mixture_file({"datasets": [{"repo_id": "a", "odd/key~": 1}]}))
    assert config.unknown_keys[0].pointer == "/datasets/0/odd~1key~0"
    assert config.unknown_keys[0].line is not None


def test_sha256_is_canonical_and_changes_with_content(tmp_path):
    document = {"datasets": [{"repo_id": "a", "root": "x"}], "action_freq": 10}
    (tmp_path / "a.json").write_text(json.dumps(document, indent=4))
    (tmp_path / "b.json").write_text(json.dumps(dict(reversed(list(document.items())))))
    changed = dict(document, action_freq=11)
    (tmp_path / "c.json").write_text(json.dumps(changed))
    a, b, c = (load_mixture(tmp_path / name).sha256 for name in ("a.json", "b.json", "c.json"))
    assert a == b
    assert a != c
    assert len(a) == 64


# --- messages name the entry -------------------------------------------------------------------------------


def test_weight_problems_name_the_entry(write_mixture_file):
    config = load_mixture(
        write_mixture_file({"datasets": [{"repo_id": "org/a"}, {"repo_id": "org/b"}], "weights": [1, -2]})
    )
    assert "weights[1] (for datasets[1] (org/b))" in _only(config.problems, "/weights/1").message
    config = load_mixture(write_mixture_file({"datasets": [{"repo_id": "org/a", "weight": "x"}]}, "p.json"))
    assert "datasets[0] (org/a).weight" in _only(config.problems, "/datasets/0/weight").message


def test_duplicate_keys_are_errors_not_silently_last_wins(tmp_path):
    (tmp_path / "part.json").write_text('{"robot_type": "a",\n "robot_type": "b"}')
    path = tmp_path / "m.json"
    path.write_text(
        '{\n  "datasets": [{"$ref": "part.json", "repo_id": "x"}],\n  "weights": [1],\n  "weights": [2]\n}'
    )
    with pytest.raises(MixtureError) as info:
        load_mixture(path)
    problems = info.value.problems
    top = _only(problems, "/weights")
    assert (top.file, top.line) == (path, 4)
    assert "more than once" in top.message
    included = _only(problems, "/datasets/0/robot_type")
    assert (included.file, included.line) == (tmp_path / "part.json", 2)


def test_missing_datasets_mentions_a_misspelt_wrapper(write_mixture_file):
    with pytest.raises(MixtureError) as info:
        load_mixture(write_mixture_file({"dataset_mixtures": {"datasets": [{"repo_id": "a"}]}}))
    problem = _only(info.value.problems, "/datasets")
    assert "did you mean 'dataset_mixture'?" in problem.message


# --- the line index ----------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


def _pointers(value, pointer=""):
    yield pointer, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _pointers(child, pointer + "/" + key.replace("~", "~0").replace("/", "~1"))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _pointers(child, f"{pointer}/{i}")


@settings(max_examples=60, deadline=None)
@given(document=json_values, indent=st.sampled_from([None, 1, 2]))
def test_line_index_covers_every_value_and_points_at_its_first_character(document, indent):
    text = json.dumps(document, indent=indent)
    lines: dict[str, int] = {}
    duplicates: list[tuple[str, int]] = []
    _index_lines(text, lines, duplicates)
    expected = dict(_pointers(document))
    assert set(lines) == set(expected)
    assert duplicates == []
    text_lines = text.splitlines()
    for pointer, value in expected.items():
        first_char = json.dumps(value)[0]
        assert first_char in text_lines[lines[pointer] - 1]


def test_problems_and_unknown_keys_inside_an_included_file_point_into_that_file(tmp_path):
    (tmp_path / "parts").mkdir()
    part = tmp_path / "parts" / "entry.json"
    part.write_text('{\n  "repo_id": "a",\n  "weight": -1,\n  "robot_tpye": "arm"\n}\n')
    path = tmp_path / "m.json"
    path.write_text('{\n  "datasets": [\n    {"$ref": "parts/entry.json"}\n  ]\n}\n')
    config = load_mixture(path)
    problem = _only(config.problems, "/datasets/0/weight")
    assert (problem.file, problem.line) == (part, 3)
    unknown = config.unknown_keys[0]
    assert (unknown.pointer, unknown.file, unknown.line, unknown.suggestion) == (
        "/datasets/0/robot_tpye",
        part,
        4,
        "robot_type",
    )
    assert config.location_of("/datasets/0/weight") == (part, 3)
    # The entry itself is located where it is written: the $ref object in the mixture.
    assert (config.datasets[0].file, config.datasets[0].line) == (path, 3)


# ------------------------------------------------------------- #10: limits of what a mixture may be
def test_an_in_memory_document_nested_too_deep_is_unreadable(tmp_path: Path) -> None:
    value: object = 1
    for _ in range(700):
        value = {"a": value}
    document = {"datasets": [{"repo_id": "org/a", "extra": value}]}
    with pytest.raises(MixtureError, match="nests more than 100 levels deep") as info:
        parse_mixture(document, base_dir=tmp_path)
    assert info.value.unreadable


def test_nesting_up_to_the_limit_is_accepted(tmp_path: Path) -> None:
    value: object = 1
    for _ in range(90):
        value = [value]
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"datasets": [{"repo_id": "org/a", "extra": value}]}))
    config = load_mixture(path)
    assert [u.key for u in config.unknown_keys] == ["extra"]


def test_32_nested_includes_are_accepted_and_33_are_not(tmp_path: Path) -> None:
    # r0.json ... r<n>.json: n + 1 files included inside each other.
    for n, ok in ((31, True), (32, False)):
        folder = tmp_path / str(n)
        folder.mkdir()
        (folder / "m.json").write_text(json.dumps({"datasets": [{"$ref": "r0.json"}]}))
        for i in range(n):
            (folder / f"r{i}.json").write_text(json.dumps({"$ref": f"r{i + 1}.json"}))
        (folder / f"r{n}.json").write_text(json.dumps({"repo_id": "org/a"}))
        if ok:
            assert load_mixture(folder / "m.json").datasets[0].repo_id == "org/a"
        else:
            with pytest.raises(MixtureError, match="nest more than 32 files deep"):
                load_mixture(folder / "m.json")


def test_a_huge_integer_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{\n  "datasets": [\n    {"repo_id": "org/a", "weight": ' + "3" * 4301 + "}\n  ]\n}\n")
    with pytest.raises(MixtureError, match="a number with 4301 digits at line 3") as info:
        load_mixture(path)
    assert info.value.problems[0].line == 3


@pytest.mark.parametrize(
    ("root", "words"),
    [("~nosuchuser_fasttok/data", "names no known user"), ("data\u0000x", "NUL character")],
)
def test_an_unusable_root_is_a_problem_at_its_pointer(tmp_path: Path, root: str, words: str) -> None:
    with pytest.raises(MixtureError, match=words) as info:
        parse_mixture({"datasets": [{"repo_id": "org/a", "root": root}]}, base_dir=tmp_path)
    assert [p.pointer for p in info.value.problems] == ["/datasets/0/root"]
    assert not info.value.unreadable
