"""The one weight rule (fasttok_plugin.mixture.weights), and the parser applying it to both weight forms."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fasttok_plugin.mixture import WeightProblem, check_weights, parse_mixture

_BASE = Path("/data")  # parse_mixture only joins roots onto it, it never reads it


def test_usable_weights_have_no_problem():
    assert check_weights([1, 0.5, 0, 3.0]) == []
    assert check_weights([]) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x", "weights[0] must be a number, got string 'x'"),
        (None, "weights[0] must be a number, got null None"),
        (True, "weights[0] must be a number, got boolean True"),
        ([1], "weights[0] must be a number, got list [1]"),
        (math.nan, "weights[0] is nan, not finite"),
        (math.inf, "weights[0] is inf, not finite"),
        (-math.inf, "weights[0] is -inf, not finite"),
        (-2, "weights[0] is negative (-2.0)"),
    ],
)
def test_each_invalid_weight_is_one_problem_at_its_index(value, message):
    (problem,) = check_weights([value])
    assert problem.index == 0
    assert problem.message == message
    assert problem.hint


def test_all_zero_is_a_problem_of_the_whole_set():
    (problem,) = check_weights([0, 0.0, -0.0])
    assert problem.index is None
    assert problem.message == "all weights are zero: nothing would be sampled"


def test_all_zero_is_not_reported_when_a_weight_is_invalid():
    assert [p.index for p in check_weights([0, -1, 0])] == [1]


def test_labels_name_the_weights_and_must_match_them():
    (problem,) = check_weights([1, "x"], ["first", "second"])
    assert (problem.index, problem.message) == (1, "second must be a number, got string 'x'")
    assert str(problem) == "second must be a number, got string 'x' (fix: use a non-negative finite number)"
    with pytest.raises(ValueError, match="1 labels for 2 weights"):
        check_weights([1, 2], ["only one"])


def test_weight_problem_is_a_frozen_value():
    problem = WeightProblem(0, "m", "h")
    with pytest.raises(AttributeError):
        problem.index = 1  # type: ignore[misc]


_WEIGHT = st.one_of(
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 0.0, "1", None, True, [1]]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_WEIGHT, min_size=1, max_size=5))
def test_the_parser_reports_exactly_the_rule_for_a_weights_list(weights):
    datasets = [{"repo_id": f"org/{i}"} for i in range(len(weights))]
    config = parse_mixture({"datasets": datasets, "weights": weights}, base_dir=_BASE)
    labels = [f"weights[{i}] (for datasets[{i}] (org/{i}))" for i in range(len(weights))]
    expected = check_weights(weights, labels)
    assert [(p.pointer, p.message, p.hint) for p in config.problems] == [
        ("/weights" if p.index is None else f"/weights/{p.index}", p.message, p.hint) for p in expected
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(_WEIGHT, min_size=1, max_size=5))
def test_the_parser_reports_exactly_the_rule_for_per_entry_weights(weights):
    datasets = [{"repo_id": f"org/{i}", "weight": w} for i, w in enumerate(weights)]
    config = parse_mixture({"datasets": datasets}, base_dir=_BASE)
    labels = [f"datasets[{i}] (org/{i}).weight" for i in range(len(weights))]
    expected = check_weights(weights, labels)
    assert [(p.pointer, p.message) for p in config.problems] == [
        ("/datasets" if p.index is None else f"/datasets/{p.index}/weight", p.message) for p in expected
    ]
    assert [e.weight for e in config.datasets] == pytest.approx(
        [float(w) if isinstance(w, (int, float)) and not isinstance(w, bool) else math.nan for w in weights],
        nan_ok=True,
    )


def test_a_short_list_of_zeros_is_a_length_problem_not_all_zero():
    datasets = [{"repo_id": "org/a"}, {"repo_id": "org/b"}]
    config = parse_mixture({"datasets": datasets, "weights": [0]}, base_dir=_BASE)
    assert [p.message for p in config.problems] == ["weights has 1 values but datasets has 2 entries"]
    assert config.weights[0] == 0.0
    assert math.isnan(config.weights[1])


def test_an_entry_without_weight_counts_as_one_so_the_rest_may_be_zero():
    datasets = [{"repo_id": "org/a", "weight": 0}, {"repo_id": "org/b"}]
    config = parse_mixture({"datasets": datasets}, base_dir=_BASE)
    assert config.problems == ()
    assert config.weights == (0.0, 1.0)
