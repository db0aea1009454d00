"""Every public error: one root, its documented builtin base, and a faithful pickle (also across a spawn)."""

from __future__ import annotations

import copy
import multiprocessing
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from fasttok_plugin import errors
from fasttok_plugin.mixture import MixtureProblem
from fasttok_plugin.preflight import PreflightResult, run_preflight
from fasttok_plugin.testing import write_lerobot_dataset, write_mixture

# The builtin base each family promised before the error root existed (``except ValueError`` keeps working).
BUILTIN_BASES: dict[str, type[Exception]] = {
    "MixtureError": ValueError,
    "NormHeadsError": ValueError,
    "SamplingError": ValueError,
    "StatsError": ValueError,
    "TransformError": ValueError,
    "ConventionError": ValueError,
    "CodecError": ValueError,
    "TokenizerFormatError": ValueError,
    "FitError": ValueError,
    "OutDirError": ValueError,
    "PreflightUsageError": ValueError,
    "TokenizerMismatchError": RuntimeError,
    "MissingExtraError": ImportError,
}


@pytest.fixture(scope="module")
def preflight_result(tmp_path_factory: pytest.TempPathFactory) -> PreflightResult:
    """A real run: entry 0 is too wide (FT201, an error), entry 1 has no tags (FT104, an info)."""
    root = tmp_path_factory.mktemp("errors")
    write_lerobot_dataset(root / "wide", action_dim=40, robot_type="arm", control_mode="pos")
    write_lerobot_dataset(root / "untagged", action_dim=4, robot_type=None)
    mixture = write_mixture(
        root / "mixture.json",
        {
            "datasets": [
                {"repo_id": "lab/wide", "root": "wide"},
                {"repo_id": "lab/untagged", "root": "untagged"},
            ]
        },
    )
    result = run_preflight(mixture, entry_points=False)
    assert {f.code for f in result.findings} >= {"FT201", "FT104"}
    return result


def _factories(result: PreflightResult) -> dict[str, Callable[[], errors.FasttokError]]:
    """One instance of every public error, with a non-trivial message and every field set."""
    mixture = Path("/configs/mixture.json")
    problems = [
        MixtureProblem("/datasets/0/root", "root must be a string, got 3", "quote the path", 4, mixture),
        MixtureProblem("/weights", "2 weights for 3 datasets", "give one weight per dataset", 9, None),
    ]
    return {
        "FasttokError": lambda: errors.FasttokError("something in fasttok failed", 42),
        "MixtureError": lambda: errors.MixtureError(problems, unreadable=True, path=mixture),
        "DatasetError": lambda: errors.DatasetError(
            "stats_invalid",
            "std has 3 values, expected (7,)",
            path=Path("/data/lab/arm/meta/stats.json"),
            hint="recompute the dataset stats",
            dataset="entry 2 (lab/arm)",
        ),
        "NormHeadsError": lambda: errors.NormHeadsError(
            ["head 'arm::pos' dim 3 has no finite min", "x > 32"]
        ),
        "SamplingError": lambda: errors.SamplingError("weights sum to 0; give at least one positive weight"),
        "StatsError": lambda: errors.StatsError("entry 1 (lab/arm): the stats transform returned (3, 40)"),
        "TransformError": lambda: errors.TransformError(
            "relative_dims: dim 9 is past the 7 action dims of entry 0 (lab/arm)", field="relative_dims"
        ),
        "CodecError": lambda: errors.CodecError("row 7 holds NaN; drop it or fix the data"),
        "ConventionError": lambda: errors.ConventionError("unknown convention 'pi0'; expected 'opentau'"),
        "TokenizerFormatError": lambda: errors.TokenizerFormatError(
            "tokenizer.json and fasttok.json disagree"
        ),
        "FitError": lambda: errors.FitError("nothing to fit: every dataset was skipped"),
        "MissingExtraError": lambda: errors.MissingExtraError(
            "fasttok needs 'torch'; install the 'fit' extra: pip install 'fasttok-plugin[fit]'",
            module="torch",
            extra="fit",
        ),
        "OutDirError": lambda: errors.OutDirError("/out exists and is not a tokenizer directory"),
        "PreflightError": lambda: errors.PreflightError(result),
        "PreflightUsageError": lambda: errors.PreflightUsageError("unknown option 'min_frame'"),
        "TokenizerMismatchError": lambda: errors.TokenizerMismatchError(
            "the tokenizer in /tok was fit for other norm heads; delete it or set refit=True",
            expected="a" * 64,
            found="b" * 64,
            tokenizer_dir=Path("/tok"),
        ),
    }


@pytest.fixture(scope="module")
def instances(preflight_result: PreflightResult) -> dict[str, errors.FasttokError]:
    factories = _factories(preflight_result)
    assert set(factories) == set(errors.__all__), "give every public error a factory in _factories"
    return {name: make() for name, make in factories.items()}


def assert_same(restored: BaseException, original: BaseException) -> None:
    assert type(restored) is type(original)
    assert str(restored) == str(original)
    assert restored.args == original.args
    assert vars(restored) == vars(original)  # every field, by value


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_is_a_fasttok_error_with_its_builtin_base(
    name: str, instances: dict[str, errors.FasttokError]
) -> None:
    cls = getattr(errors, name)
    error = instances[name]
    assert type(error) is cls
    assert isinstance(error, errors.FasttokError)
    if name in BUILTIN_BASES:
        assert isinstance(error, BUILTIN_BASES[name])
    assert str(error)


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_pickles_with_message_and_fields(
    name: str, instances: dict[str, errors.FasttokError]
) -> None:
    original = instances[name]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert_same(pickle.loads(pickle.dumps(original, protocol=protocol)), original)
    assert_same(copy.deepcopy(original), original)


def test_fields_survive_exactly(
    instances: dict[str, errors.FasttokError], preflight_result: PreflightResult
) -> None:
    mixture = pickle.loads(pickle.dumps(instances["MixtureError"]))
    assert len(mixture.problems) == 2
    assert mixture.problems[0].line == 4
    assert mixture.unreadable
    assert mixture.path == Path("/configs/mixture.json")
    dataset = pickle.loads(pickle.dumps(instances["DatasetError"]))
    assert (dataset.reason, dataset.hint, dataset.dataset) == (
        "stats_invalid",
        "recompute the dataset stats",
        "entry 2 (lab/arm)",
    )
    assert dataset.path == Path("/data/lab/arm/meta/stats.json")
    preflight = pickle.loads(pickle.dumps(instances["PreflightError"]))
    assert preflight.result == preflight_result
    assert preflight.result.findings == preflight_result.findings
    assert "FT201" in str(preflight)
    mismatch = pickle.loads(pickle.dumps(instances["TokenizerMismatchError"]))
    assert (mismatch.expected, mismatch.found, mismatch.tokenizer_dir) == ("a" * 64, "b" * 64, Path("/tok"))


def test_errors_cross_a_spawned_process(instances: dict[str, errors.FasttokError]) -> None:
    # A fresh interpreter (the way sampler workers and DDP ranks start) rebuilds each error from the pickle
    # and sends it back: both directions go through pickle, in a process that never saw the originals.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        names = list(instances)
        messages = list(pool.map(str, (instances[name] for name in names)))
        returned = list(pool.map(copy.copy, (instances[name] for name in names)))
    for name, message, error in zip(names, messages, returned, strict=True):
        assert message == str(instances[name])
        assert_same(error, instances[name])
