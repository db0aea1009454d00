"""The transform keys of a mixture (top level, and per entry overriding the top level key by key)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fasttok_plugin.errors import TransformError
from fasttok_plugin.mixture._pointers import pointer_join
from fasttok_plugin.mixture._validator import Validator
from fasttok_plugin.transforms import TRANSFORM_KEYS, ActionTransform

__all__ = ["parse_transform", "transform_keys"]

_HINTS = {
    "action_index": 'list the kept columns, e.g. "action_index": [0, 1, 2] or "encoded_dims": "0:6,7:23"',
    "relative_dims": 'list the native action dims made relative, e.g. "relative_dims": "0:6"',
    "relative_exclude": 'list dims of relative_dims to keep absolute, e.g. "relative_exclude": [6]',
    "state_key": 'name the state column, e.g. "state_key": "observation.state"',
}


def transform_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The transform keys written in ``raw`` (`TRANSFORM_KEYS`), as written."""
    return {k: raw[k] for k in TRANSFORM_KEYS if k in raw}


def parse_transform(
    validator: Validator,
    written: Mapping[str, Any],
    pointer: str,
    label: str,
    base: Mapping[str, Any] | None = None,
) -> ActionTransform | None:
    """The transform of ``written`` keys over ``base`` (the top level's), or None when none is written.

    An entry's ``action_index`` replaces a top-level ``encoded_dims`` and vice versa (one selection).
    Invalid values are recorded as problems at the key's pointer (None is returned).
    """
    if not written:
        return None
    settings = dict(base or {})
    if {"action_index", "encoded_dims"} & set(written):
        settings.pop("action_index", None)
        settings.pop("encoded_dims", None)
    settings.update(written)
    try:
        transform = ActionTransform.from_settings(settings, f"{label}: ")
    except TransformError as exc:
        key = exc.field if exc.field in written else next(iter(written))
        if exc.field == "action_index" and "encoded_dims" in written and "action_index" not in written:
            key = "encoded_dims"
        validator.problem(pointer_join(pointer, key), f"{label}: {exc}", _HINTS.get(exc.field, ""))
        return None
    return transform
