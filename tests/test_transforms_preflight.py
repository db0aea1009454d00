"""Preflight checks of the transforms (FT601-FT605), from metadata alone, on generated LeRobot datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fasttok_plugin.errors import PreflightError
from fasttok_plugin.fit import FitSettings, fit_tokenizer
from fasttok_plugin.preflight import run_preflight
from fasttok_plugin.testing import write_lerobot_dataset, write_mixture
from fasttok_plugin.transforms import ActionTransform

TRANSFORM_CODES = ("FT601", "FT602", "FT603", "FT604", "FT605")


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("transform_preflight")
    write_lerobot_dataset(root / "arm", robot_type="arm", control_mode="pos", action_dim=7)
    narrow = write_lerobot_dataset(root / "narrow", robot_type="arm", control_mode="vel", action_dim=7)
    # The state feature is 3 wide in info.json (the preflight reads metadata only, never the frames).
    info_path = narrow.root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["features"]["observation.state"]["shape"] = [3]
    info_path.write_text(json.dumps(info))
    return root


def _findings(roots: Path, document: dict[str, Any], **kwargs: Any) -> list[tuple[str, str | None, str]]:
    path = write_mixture(roots / "mixture.json", document)
    result = run_preflight(path, entry_points=False, **kwargs)
    return [(f.code, f.pointer, f.message) for f in result.findings if f.code in TRANSFORM_CODES]


def _arm(**keys: Any) -> dict[str, Any]:
    return {"repo_id": "lab/arm", "root": "arm", **keys}


def test_a_valid_transform_has_no_finding(roots: Path) -> None:
    document = {"datasets": [_arm()], "encoded_dims": "0:6", "relative_dims": "0:7", "relative_exclude": [6]}
    assert _findings(roots, document) == []


def test_missing_state_column_ft601_points_at_state_key(roots: Path) -> None:
    document = {"datasets": [_arm()], "relative_dims": [0, 1], "state_key": "observation.joints"}
    [(code, pointer, message)] = _findings(roots, document)
    assert (code, pointer) == ("FT601", "/state_key")
    assert "observation.joints" in message


def test_too_few_state_dims_ft602(roots: Path) -> None:
    document = {"datasets": [{"repo_id": "lab/narrow", "root": "narrow"}], "relative_dims": "0:6"}
    [(code, pointer, message)] = _findings(roots, document)
    assert (code, pointer) == ("FT602", "/relative_dims")
    assert "has 3 dims" in message


def test_relative_dim_past_the_action_ft603_at_the_entry_override(roots: Path) -> None:
    document = {"datasets": [_arm(), _arm(relative_dims=[2, 9])], "relative_dims": [0]}
    found = _findings(roots, document)
    assert ("FT603", "/datasets/1/relative_dims") in [(c, p) for c, p, _ in found]
    assert all(p.startswith("/datasets/1") for _, p, _ in found)  # entry 0 uses the valid top-level dims


def test_selection_past_the_native_dim_ft604(roots: Path) -> None:
    [(code, pointer, message)] = _findings(roots, {"datasets": [_arm()], "encoded_dims": "0:9"})
    assert (code, pointer) == ("FT604", "/encoded_dims")
    assert "selects dim 7" in message


def test_the_transform_argument_replaces_the_mixture_keys(roots: Path) -> None:
    document = {"datasets": [_arm()], "encoded_dims": "0:9"}
    assert _findings(roots, document, transform=ActionTransform(action_index=[0, 1])) == []


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"normalization": "quantile", "stats_source": "stored"}, "hold no pooled quantiles"),
        ({"transform": ActionTransform(relative_dims=[0]), "stats_source": "stored"}, "transformed"),
    ],
)
def test_stored_stats_for_data_normalization_ft605(roots: Path, kwargs: dict[str, Any], words: str) -> None:
    [(code, _, message)] = _findings(roots, {"datasets": [_arm()]}, **kwargs)
    assert code == "FT605"
    assert words in message


def test_the_fit_refuses_a_bad_selection_through_the_preflight(roots: Path) -> None:
    path = write_mixture(roots / "fit.json", {"datasets": [_arm()], "encoded_dims": "0:9"})
    with pytest.raises(PreflightError, match="FT604"):
        fit_tokenizer(path, FitSettings(total_chunks=50, chunk_size=5))


def test_the_preflight_builds_the_heads_as_the_fit_does_under_stats_from_the_data(tmp_path: Path) -> None:
    """fasttok-preflight on a transformed mixture: a 12-dim entry selecting 8 columns fits width 8, and an
    entry without stored stats is fine (its stats come from the frames); stored stats flag both."""
    write_lerobot_dataset(tmp_path / "wide", robot_type="big", control_mode="pos", action_dim=12)
    write_lerobot_dataset(tmp_path / "bare", control_mode="pos", write_stats=False, write_episode_stats=False)
    document = {
        "max_action_dim": 8,
        "datasets": [
            {"repo_id": "lab/wide", "root": "wide", "encoded_dims": "0:4,8:12"},
            {"repo_id": "lab/bare", "root": "bare", "relative_dims": [0]},
        ],
    }
    path = write_mixture(tmp_path / "mixture.json", document)
    result = run_preflight(path, entry_points=False)
    assert result.ok, [str(f) for f in result.errors]
    stored = run_preflight(path, entry_points=False, stats_source="stored")
    assert {"FT201", "FT202", "FT605"} <= {f.code for f in stored.errors}
