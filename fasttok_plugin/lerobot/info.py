"""``meta/info.json``: codebase version, fps, features, the action column and its dimension."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fasttok_plugin.errors import DatasetError
from fasttok_plugin.lerobot._json import load_json_or_error

__all__ = ["SUPPORTED_VERSIONS", "Info", "info_error", "read_info", "tag"]

SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")


@dataclass(frozen=True, slots=True)
class Info:
    """The validated fields of ``meta/info.json`` (``raw`` keeps the whole document).

    Attributes:
        path: The ``info.json`` file.
        raw: The parsed document.
        version: ``codebase_version`` (one of `SUPPORTED_VERSIONS`).
        fps: Frames per second (finite, > 0).
        features: ``features`` (non-empty).
        action_key: The action column.
        action_dim: Values per action frame.
    """

    path: Path
    raw: Mapping[str, Any]
    version: str
    fps: float
    features: Mapping[str, Any]
    action_key: str
    action_dim: int

    @property
    def is_v3(self) -> bool:
        """``True`` for the v3.0 layout (episode tables in parquet, many episodes per data file)."""
        return self.version.startswith("v3")


def info_error(detail: str, path: Path, hint: str, name: str | None) -> DatasetError:
    """An ``info_invalid`` error (a field of ``meta/info.json`` that cannot be used)."""
    return DatasetError("info_invalid", detail, path=path, hint=hint, dataset=name)


def read_info(root: Path, action_key: str | None, name: str | None) -> Info:
    """Read and validate ``root/meta/info.json``.

    Args:
        root: Dataset folder.
        action_key: Requested action column (``None``: ``action``, else ``actions``).
        name: Dataset name for messages.

    Raises:
        DatasetError: ``info_missing``, ``info_invalid``, ``unsupported_version`` or ``action_key_missing``.
    """
    path = root / "meta" / "info.json"
    info = load_json_or_error(
        path,
        "info_missing",
        "info_invalid",
        "point `root` at a LeRobot dataset folder (it holds meta/info.json)",
        name,
    )
    if not isinstance(info, Mapping):
        raise info_error("meta/info.json is not a JSON object", path, "repair meta/info.json", name)
    version = _version(info, path, name)
    fps = _fps(info, path, name)
    _check_data_path(info, path, name)
    features = info.get("features")
    if not isinstance(features, Mapping) or not features:
        raise info_error(
            "meta/info.json has no features",
            path,
            'add "features" with the action feature, e.g. {"action": {"dtype": "float32", "shape": [7]}}',
            name,
        )
    key = _choose_action_key(features, action_key, path, name)
    dim = _action_dim(features[key], key, path, name)
    return Info(path, info, version, fps, features, key, dim)


def tag(value: Any) -> str | None:
    """A ``robot_type`` / ``control_mode`` value as a string tag (``None`` stays ``None``)."""
    # Tags are compared as strings; a non-string value (rare) keeps its text rather than vanishing.
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _version(info: Mapping[str, Any], path: Path, name: str | None) -> str:
    version = info.get("codebase_version")
    if version not in SUPPORTED_VERSIONS:
        raise DatasetError(
            "unsupported_version",
            f"codebase_version {version!r} is not supported (supported: {', '.join(SUPPORTED_VERSIONS)})",
            path=path,
            hint="convert the dataset with LeRobot's conversion scripts "
            "(e.g. lerobot.datasets.v30.convert_dataset_v21_to_v30)",
            dataset=name,
        )
    return str(version)


def _fps(info: Mapping[str, Any], path: Path, name: str | None) -> float:
    fps = info.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0:
        raise info_error(
            f"meta/info.json has no valid fps (got {fps!r})",
            path,
            'add the recording rate, e.g. "fps": 30',
            name,
        )
    return float(fps)


def _check_data_path(info: Mapping[str, Any], path: Path, name: str | None) -> None:
    """``data_path`` places every data file: absent/null (the version's default) or a template string."""
    template = info.get("data_path")
    if template is not None and (not isinstance(template, str) or not template.strip()):
        raise info_error(
            f"meta/info.json data_path is {template!r}, expected a path template string",
            path,
            'write the data file template, e.g. "data_path": '
            '"data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet" (v3.0), or remove it',
            name,
        )


def _choose_action_key(
    features: Mapping[str, Any], action_key: str | None, info_path: Path, name: str | None
) -> str:
    if action_key is not None:
        if action_key in features:
            return action_key
        candidates = [k for k in features if k in ("action", "actions") or "action" in k]
        raise DatasetError(
            "action_key_missing",
            f"action_key '{action_key}' is not a feature of the dataset"
            + (f" (action-like features: {candidates})" if candidates else ""),
            path=info_path,
            hint=f"set action_key in the mixture entry to one of {sorted(features)}",
            dataset=name,
        )
    for key in ("action", "actions"):
        if key in features:
            return key
    raise DatasetError(
        "action_key_missing",
        "the dataset has neither an 'action' nor an 'actions' feature",
        path=info_path,
        hint=f"set action_key in the mixture entry to the action column, one of {sorted(features)}",
        dataset=name,
    )


def _action_dim(feature: Any, key: str, info_path: Path, name: str | None) -> int:
    shape = feature.get("shape") if isinstance(feature, Mapping) else None
    if (
        not isinstance(shape, list)
        or len(shape) != 1
        or not isinstance(shape[0], int)
        or isinstance(shape[0], bool)
        or shape[0] < 1
    ):
        raise info_error(
            f"features['{key}'].shape is {shape!r}, expected [d] with d >= 1",
            info_path,
            f"write the action dimension as \"shape\": [d] in features['{key}']",
            name,
        )
    return int(shape[0])
