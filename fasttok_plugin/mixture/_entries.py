"""One ``datasets`` entry: its keys checked, its root resolved, its action column agreed on."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fasttok_plugin.mixture._pointers import pointer_join
from fasttok_plugin.mixture._transform import parse_transform, transform_keys
from fasttok_plugin.mixture._validator import Validator, entry_label
from fasttok_plugin.mixture._values import number_or_nan, type_name, user_path
from fasttok_plugin.mixture.model import ENTRY_KEYS, DatasetEntry

__all__ = ["parse_entry"]


def parse_entry(
    validator: Validator,
    raw: Any,
    index: int,
    pointer: str,
    base_dir: Path,
    transform_base: Mapping[str, Any] | None = None,
) -> DatasetEntry | None:
    """Validate entry ``index`` (at merged ``pointer``); ``None`` when it cannot be used (problems recorded).

    Args:
        validator: Collects the problems.
        raw: The entry as written (after ``$ref`` expansion).
        index: Position in ``datasets``.
        pointer: Merged JSON pointer of the entry.
        base_dir: Folder relative roots resolve against (the top-level mixture file's).
        transform_base: The top level's transform keys, which the entry's override key by key.
    """
    if not isinstance(raw, dict):
        validator.problem(
            pointer,
            f"datasets[{index}] must be an object, got {type_name(raw)}",
            'write {"repo_id": "org/name", ...}',
        )
        return None
    validator.check_keys(raw, pointer, ENTRY_KEYS)
    repo_id = _repo_id(validator, raw, index, pointer)
    label = entry_label(raw, index)
    root, default_root = _root(validator, raw, pointer, label, repo_id, base_dir)
    robot_type = validator.optional_str(raw, "robot_type", pointer, 'e.g. "robot_type": "so100"', label)
    control_mode = validator.optional_str(
        raw, "control_mode", pointer, 'e.g. "control_mode": "joint_pos"', label
    )
    revision = validator.optional_str(raw, "revision", pointer, "give the revision as a string", label)
    episodes = validator.episode_list(raw, "episodes", pointer, label)
    excluded = validator.episode_list(raw, "excluded_episodes", pointer, label)
    action_key = _action_key(validator, raw, pointer, label)
    # Validity is checked with the other weights (non-fatal); keep the value as given.
    weight = number_or_nan(raw["weight"]) if "weight" in raw else None
    transform = parse_transform(validator, transform_keys(raw), pointer, label, transform_base)
    if repo_id is None:
        return None
    file, line = validator.location(pointer)
    return DatasetEntry(
        index=index,
        repo_id=repo_id,
        root=root,
        robot_type=robot_type,
        control_mode=control_mode,
        episodes=episodes,
        excluded_episodes=excluded,
        weight=weight,
        action_key=action_key,
        revision=revision,
        default_root=default_root,
        pointer=pointer,
        line=line,
        file=file,
        transform=transform,
    )


def _repo_id(validator: Validator, raw: dict[str, Any], index: int, pointer: str) -> str | None:
    repo_id = raw.get("repo_id")
    if isinstance(repo_id, str) and repo_id.strip():
        return repo_id
    got = "missing" if "repo_id" not in raw else f"{type_name(repo_id)} {repo_id!r}"
    validator.problem(
        pointer_join(pointer, "repo_id"),
        f"datasets[{index}].repo_id must be a non-empty string, got {got}",
        'add "repo_id": "org/name" (it names the dataset and its default root)',
    )
    return None


def _root(
    validator: Validator, raw: dict[str, Any], pointer: str, label: str, repo_id: str | None, base_dir: Path
) -> tuple[Path, bool]:
    """The absolute dataset folder: ``root`` against ``base_dir``, else ``$HF_LEROBOT_HOME/<repo_id>``.

    The flag says the default was taken: resolution then also looks in LeRobot's hub snapshot cache
    (`fasttok_plugin.lerobot.locations`).
    """
    root = validator.optional_str(raw, "root", pointer, "give the local dataset folder as a string", label)
    if root is not None and not root.strip():
        validator.problem(
            pointer_join(pointer, "root"),
            f"{label}: root is blank",
            "remove root or give the dataset folder",
        )
        root = None
    if root is None:
        # Imported here: the lerobot package pulls in pyarrow, which parsing a mixture with roots never needs.
        from fasttok_plugin.lerobot.locations import lerobot_home

        return Path(os.path.abspath(lerobot_home() / (repo_id or ""))), True
    try:
        candidate = user_path(root)
    except ValueError as exc:
        validator.problem(
            pointer_join(pointer, "root"),
            f"{label}: root {root!r} is not a usable folder path: {exc}",
            "give the dataset folder as an absolute path or relative to the mixture file",
        )
        candidate = Path(root.replace("\0", ""))
    return Path(os.path.abspath(candidate if candidate.is_absolute() else base_dir / candidate)), False


def _action_key(validator: Validator, raw: dict[str, Any], pointer: str, label: str) -> str | None:
    """``action_key``, or ``data_features_name_mapping.actions``; both given must agree."""
    action_key = validator.optional_str(raw, "action_key", pointer, 'e.g. "action_key": "action"', label)
    mapping = raw.get("data_features_name_mapping")
    mapping_ptr = pointer_join(pointer, "data_features_name_mapping")
    if mapping is None:
        return action_key
    if not isinstance(mapping, dict):
        validator.problem(
            mapping_ptr,
            f"{label}: data_features_name_mapping must be an object, got {type_name(mapping)}",
            'write "data_features_name_mapping": {"actions": "<column>"}',
        )
        return action_key
    if "actions" not in mapping:
        return action_key
    mapped = mapping["actions"]
    if not isinstance(mapped, str) or not mapped:
        validator.problem(
            mapping_ptr + "/actions",
            f"{label}: data_features_name_mapping.actions must be a column name, got {mapped!r}",
            "give the dataset's action column name as a string",
        )
        return action_key
    if action_key is not None and action_key != mapped:
        validator.problem(
            mapping_ptr + "/actions",
            f"{label}: action_key {action_key!r} disagrees with "
            f"data_features_name_mapping.actions {mapped!r}",
            "keep only one of them",
        )
        return action_key
    return mapped
