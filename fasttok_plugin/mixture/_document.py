"""The mixture document as a whole: ``$ref`` expansion, the wrapper, ``datasets``, ``weights`` and the
top-level settings, validated into a :class:`MixtureConfig` (every structural problem raised at once).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fasttok_plugin._validate import MAX_ACTION_DIM
from fasttok_plugin.conventions import CONVENTIONS, Convention, convention_from_dict
from fasttok_plugin.defaults import HEAD_GROUPINGS
from fasttok_plugin.errors import ConventionError, MixtureError
from fasttok_plugin.mixture._entries import parse_entry
from fasttok_plugin.mixture._pointers import pointer_join
from fasttok_plugin.mixture._refs import Expander
from fasttok_plugin.mixture._source import Source
from fasttok_plugin.mixture._transform import parse_transform, transform_keys
from fasttok_plugin.mixture._validator import Validator, entry_label
from fasttok_plugin.mixture._values import is_number, number_or_nan, type_name
from fasttok_plugin.mixture.model import TOP_LEVEL_KEYS, WRAPPER_KEY, DatasetEntry, MixtureConfig
from fasttok_plugin.mixture.weights import WeightProblem, check_weights

__all__ = ["parse_document"]


def parse_document(document: Any, *, base_dir: Path, path: Path | None, source: Source) -> MixtureConfig:
    """Expand and validate ``document`` (read from ``source``) into a :class:`MixtureConfig`.

    Args:
        document: The JSON document as read.
        base_dir: Folder relative entry roots resolve against.
        path: The top-level mixture file, for messages (``None`` for an in-memory document).
        source: Where ``document`` came from (its lines, and the folder its ``$ref`` paths resolve against).

    Raises:
        MixtureError: Listing every structural problem, or ``unreadable`` for a bad ``$ref`` target.
    """
    expander = Expander()
    expander.report_duplicates(source, "")
    merged = expander.expand(document, source, "", "", [path] if path is not None else [])
    validator = Validator(expander, path)
    validator.fatal.extend(expander.problems)

    prefix, body = _unwrap(validator, merged, path)
    raw_datasets = _raw_datasets(validator, body, prefix)
    top_transform = transform_keys(body)
    transform = parse_transform(validator, top_transform, prefix, "the mixture")
    entries: list[DatasetEntry] = []
    for index, raw in enumerate(raw_datasets):
        entry = parse_entry(validator, raw, index, f"{prefix}/datasets/{index}", base_dir, top_transform)
        if entry is not None:
            entries.append(entry)
    weights, weights_pointer = _parse_weights(validator, body, raw_datasets, prefix)
    action_freq = _action_freq(validator, body, prefix)
    require_rt = validator.flag(body, "require_non_empty_robot_type", prefix)
    require_cm = validator.flag(body, "require_non_empty_control_mode", prefix)
    max_action_dim = validator.positive_int(body, "max_action_dim", prefix, maximum=MAX_ACTION_DIM)
    chunk_size = validator.positive_int(body, "chunk_size", prefix)
    head_grouping = validator.choice(body, "head_grouping", prefix, HEAD_GROUPINGS)
    layout = validator.choice(body, "layout", prefix, ("padded", "native"))
    convention = _convention(validator, body, prefix)
    if validator.fatal:
        raise MixtureError(validator.fatal, path=path)

    canonical = json.dumps(merged, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return MixtureConfig(
        path=path,
        datasets=tuple(entries),
        weights=weights,
        weights_pointer=weights_pointer,
        action_freq=action_freq,
        require_non_empty_robot_type=require_rt,
        require_non_empty_control_mode=require_cm,
        max_action_dim=max_action_dim,
        chunk_size=chunk_size,
        unknown_keys=tuple(validator.unknown),
        problems=tuple(validator.soft),
        sha256=hashlib.sha256(canonical.encode()).hexdigest(),
        prefix=prefix,
        head_grouping=head_grouping,
        transform=transform,
        layout=layout,
        convention=convention,
        locations={ptr: (src.path, src.line(fptr)) for ptr, (src, fptr) in expander.origins.items()},
    )


def _convention(validator: Validator, body: Mapping[str, Any], prefix: str) -> Convention | None:
    """``body["convention"]``: a name or ``{"name": ..., <field>: <override>}``; None when absent."""
    value = body.get("convention") if isinstance(body, Mapping) else None
    if value is None:
        return None
    try:
        return convention_from_dict(value)
    except ConventionError as exc:
        names = ", ".join(f'"{n}"' for n in CONVENTIONS)
        validator.problem(
            pointer_join(prefix, "convention"),
            str(exc).replace("\n", " "),
            f'write "convention": one of {names}, or {{"name": ..., "<field>": <value>}}, or remove it',
        )
        return None


def _unwrap(validator: Validator, merged: Any, path: Path | None) -> tuple[str, dict[str, Any]]:
    """``(prefix, body)``: the mixture object, out of its optional ``dataset_mixture`` wrapper.

    Raises:
        MixtureError: The mixture is not an object (nothing else can be checked then).
    """
    prefix = ""
    body: Any = merged
    if isinstance(merged, dict) and WRAPPER_KEY in merged:
        prefix = "/" + WRAPPER_KEY
        body = merged[WRAPPER_KEY]
        validator.check_keys(merged, "", (WRAPPER_KEY,))
    if not isinstance(body, dict):
        validator.problem(
            prefix,
            f"the mixture must be a JSON object, got {type_name(body)}",
            'write {"datasets": [...]} or {"dataset_mixture": {"datasets": [...]}}',
        )
        raise MixtureError(validator.fatal, path=path)
    # A bare document may also carry a misspelt wrapper ("dataset_mixtures"): suggest it too.
    wrapper = (WRAPPER_KEY,) if not prefix else ()
    validator.check_keys(body, prefix, TOP_LEVEL_KEYS, suggest=TOP_LEVEL_KEYS + wrapper)
    return prefix, body


def _raw_datasets(validator: Validator, body: Mapping[str, Any], prefix: str) -> list[Any]:
    """The ``datasets`` list as written (empty after recording that it is missing or not a list)."""
    datasets_ptr = prefix + "/datasets"
    raw_datasets = body.get("datasets")
    if raw_datasets is None:
        # Often a typo of "datasets": name the unknown keys at the same level, with their suggestions.
        near = [u for u in validator.unknown if u.pointer.count("/") == datasets_ptr.count("/")]
        found = "; unknown keys here: " + ", ".join(
            f"'{u.key}'" + (f" (did you mean '{u.suggestion}'?)" if u.suggestion else "") for u in near
        )
        validator.problem(
            datasets_ptr,
            "datasets is missing" + (found if near else ""),
            'add "datasets": [{"repo_id": "..."}]',
        )
        return []
    if not isinstance(raw_datasets, list):
        validator.problem(
            datasets_ptr,
            f"datasets must be a list, got {type_name(raw_datasets)}",
            'write "datasets": [ ... ]',
        )
        return []
    if not raw_datasets:
        validator.problem(datasets_ptr, "datasets is empty", "list at least one dataset entry")
    return raw_datasets


def _action_freq(validator: Validator, body: Mapping[str, Any], prefix: str) -> float | None:
    action_freq = body.get("action_freq")
    if action_freq is None:
        return None
    if not is_number(action_freq) or not math.isfinite(action_freq) or action_freq <= 0:
        validator.problem(
            prefix + "/action_freq",
            f"action_freq must be a positive number of Hz or null, got {action_freq!r}",
            "set action_freq to e.g. 30.0, or null to keep each dataset's native fps",
        )
        return None
    return float(action_freq)


def _parse_weights(
    validator: Validator, body: Mapping[str, Any], raw_datasets: list[Any], prefix: str
) -> tuple[tuple[float, ...], str]:
    """``(weights, pointer)``: one weight per dataset from ``weights`` or the entries' ``weight``.

    Every weight problem is non-fatal: the values are kept (non-numbers as NaN) for the preflight.
    """
    entry_has_weight = [isinstance(raw, dict) and "weight" in raw for raw in raw_datasets]
    if body.get("weights") is None:
        return _entry_weights(validator, raw_datasets, entry_has_weight, prefix + "/datasets")
    weights_ptr = prefix + "/weights"
    if any(entry_has_weight):
        which = [i for i, has in enumerate(entry_has_weight) if has]
        validator.problem(
            weights_ptr,
            f"weights are given both as a list and per entry (datasets {which} have 'weight')",
            "keep either the weights list or the per-entry weight fields, not both",
            fatal=False,
        )
    return _listed_weights(validator, body["weights"], raw_datasets, weights_ptr)


def _listed_weights(
    validator: Validator, raw_weights: Any, raw_datasets: list[Any], weights_ptr: str
) -> tuple[tuple[float, ...], str]:
    n = len(raw_datasets)
    if not isinstance(raw_weights, list):
        validator.problem(
            weights_ptr,
            f"weights must be a list parallel to datasets, got {type_name(raw_weights)}",
            "write one number per dataset entry",
            fatal=False,
        )
        return tuple(math.nan for _ in range(n)), weights_ptr
    if len(raw_weights) != n:
        validator.problem(
            weights_ptr,
            f"weights has {len(raw_weights)} values but datasets has {n} entries",
            "give exactly one weight per dataset entry",
            fatal=False,
        )
    given = raw_weights[:n]
    labels = [f"weights[{i}] (for {entry_label(raw_datasets[i], i)})" for i in range(len(given))]
    problems = check_weights(given, labels)
    if len(given) < n:
        # The missing weights are not zero (they are NaN, reported with the length): not "all zero".
        problems = [p for p in problems if p.index is not None]
    _record(validator, problems, lambda i: f"{weights_ptr}/{i}", weights_ptr)
    # Missing trailing weights are NaN (invalid, reported above), never a silent default.
    values = [number_or_nan(w) for w in given] + [math.nan] * (n - len(given))
    return tuple(values), weights_ptr


def _entry_weights(
    validator: Validator, raw_datasets: list[Any], entry_has_weight: list[bool], datasets_ptr: str
) -> tuple[tuple[float, ...], str]:
    # An entry without "weight" weighs 1.0.
    given: list[object] = [
        raw["weight"] if has else 1.0 for raw, has in zip(raw_datasets, entry_has_weight, strict=True)
    ]
    labels = [f"{entry_label(raw, i)}.weight" for i, raw in enumerate(raw_datasets)]
    _record(validator, check_weights(given, labels), lambda i: f"{datasets_ptr}/{i}/weight", datasets_ptr)
    return tuple(number_or_nan(w) for w in given), datasets_ptr


def _record(
    validator: Validator,
    problems: Sequence[WeightProblem],
    pointer_of: Callable[[int], str],
    whole: str,
) -> None:
    """Record weight problems as non-fatal, at their weight's pointer or at ``whole`` for the whole set."""
    for problem in problems:
        pointer = whole if problem.index is None else pointer_of(problem.index)
        validator.problem(pointer, problem.message, problem.hint, fatal=False)
