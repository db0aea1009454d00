"""``norm_stats.json``: the normalization a tokenizer was fit with, rebuildable at inference (DESIGN §13).

The tokenizer folder records every head's key, members, native dim and stats (at the padded width, exactly
the buffers `Normalize` holds) plus the convention: `Normalize.from_tokenizer_dir` /
`Unnormalize.from_tokenizer_dir` rebuild modules equal to the training ones with no mixture and no
datasets. Reading is JSON only; nothing in the folder is imported or executed.

`export_stats` writes the frameworks' own stats files from a head, so the policy trains with the very
stats the tokenizer was fit with:

* ``openpi``: ``norm_stats.json`` as ``openpi.shared.normalize.save`` writes it,
  ``{"norm_stats": {"actions": {"mean", "std", "q01", "q99"}}}`` (src/openpi/shared/normalize.py);
* ``lerobot``: a ``stats.json`` action entry ``{"action": {"min", "max", "mean", "std", ...}}``
  (meta/stats.json of a LeRobot dataset);
* ``opentau``: ``opentau_action_norm.json`` ``{"config_version", "zero_range_center"}``, the sidecar
  OpenTau's ``fit_fast_tokenizer.py`` writes and ``PreTrainedPolicy`` checks against the policy.

All at the head's native width. An existing file is replaced only when it carries our marker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from fasttok_plugin.atomic import write_text_atomic
from fasttok_plugin.conventions import Convention, convention_from_dict
from fasttok_plugin.errors import FitError, TokenizerFormatError, TransformError
from fasttok_plugin.transforms import ActionTransform, MemberTransforms, head_transforms

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.heads import NormHeads

__all__ = [
    "EXPORT_FORMATS",
    "NORM_STATS_FORMAT",
    "NORM_STATS_NAME",
    "StoredNormStats",
    "export_stats",
    "norm_stats_document",
    "read_norm_stats",
]

NORM_STATS_NAME = "norm_stats.json"
NORM_STATS_FORMAT = "fasttok_plugin.norm_stats"
_VERSION = 1
_STATS = ("min", "max", "mean", "std", "q01", "q10", "q90", "q99")
#: ``export_stats`` formats and their conventional file names.
EXPORT_FORMATS = {"openpi": "norm_stats.json", "lerobot": "stats.json", "opentau": "opentau_action_norm.json"}
# Our marker in exported files whose readers ignore unknown keys (openpi's pydantic model, OpenTau's dict).
_MARKER_KEY = "written_by"
_MARKER = "fasttok_plugin.export_stats"


@dataclass(frozen=True)
class StoredNormStats:
    """A parsed ``norm_stats.json``.

    Attributes:
        heads: A heads-like object (keys, fingerprint, max_action_dim, native_dims, stats arrays) that
            `Normalize` accepts in place of `NormHeads`.
        members: Entry names of each head.
        normalization: The `NormMode` value.
        zero_range: ``center`` or ``legacy``.
        eps: The epsilon.
        formula: Whose arithmetic (``fasttok``, ``opentau``, ``lerobot``, ``openpi``).
        layout: ``padded`` or ``native``.
        convention: The convention, or None for the package default.
        transforms: Per head, the action transform its members were fit with (None: identity, also for
            folders written before transforms were recorded), or `MemberTransforms` when they differ.
    """

    heads: Any
    members: tuple[tuple[str, ...], ...]
    normalization: str
    zero_range: str
    eps: float
    formula: str
    layout: str
    convention: Convention | None
    transforms: tuple[ActionTransform | MemberTransforms | None, ...] = ()


def norm_stats_document(
    heads: NormHeads,
    *,
    normalization: str,
    zero_range: str,
    eps: float,
    convention: Convention | None = None,
    layout: str = "padded",
    transforms: ActionTransform | Sequence[ActionTransform | None] | None = None,
) -> dict[str, Any]:
    """The JSON document of ``heads`` and the normalization they are used with.

    ``transforms`` (one for every entry or one per entry, as the sampler applied them): a head whose
    members share a non-identity transform records it as ``"transform"``; members with different ones are
    recorded as ``"member_transforms"`` (aligned with ``"members"``). Identity heads record nothing, so a
    default fit's file is unchanged.
    """
    stats = [n for n in _STATS if getattr(heads, n, None) is not None]
    members_of = heads.head_members or ((),) * len(heads.keys)
    per_head = head_transforms(members_of, heads.entry_names, transforms)
    rows = []
    for h, key in enumerate(heads.keys):
        row: dict[str, Any] = {
            "key": key,
            "members": [heads.entry_names[i] for i in members_of[h]],
            "native_dim": int(heads.native_dims[h]),
            "stats": {n: [float(v) for v in np.asarray(getattr(heads, n))[h]] for n in stats},
        }
        transform = per_head[h]
        if isinstance(transform, ActionTransform):
            row["transform"] = transform.to_json()
        elif isinstance(transform, MemberTransforms):
            row["member_transforms"] = [None if t is None else t.to_json() for t in transform.transforms]
        rows.append(row)
    return {
        "format": NORM_STATS_FORMAT,
        "version": _VERSION,
        "fingerprint": heads.fingerprint,
        "max_action_dim": int(heads.max_action_dim),
        "head_grouping": str(getattr(heads, "grouping", "robot_control")),
        "stats_source": str(getattr(heads, "stats_source", "stored")),
        "normalization": str(normalization),
        "zero_range": str(zero_range),
        "eps": float(eps),
        "formula": convention.formula if convention is not None else "fasttok",
        "layout": layout,
        "convention": convention.to_dict() if convention is not None else None,
        "heads": rows,
    }


def write_norm_stats(folder: Path, document: dict[str, Any]) -> None:
    """Write ``document`` as ``folder/norm_stats.json`` (a staging folder: the swap makes it atomic)."""
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    (folder / NORM_STATS_NAME).write_text(text, encoding="utf-8")


def read_norm_stats(folder: str | os.PathLike[str]) -> StoredNormStats:
    """Parse ``folder/norm_stats.json``.

    Raises:
        TokenizerFormatError: Missing, not JSON, not ours, or inconsistent (names the field).
    """
    from fasttok_plugin.mixture._source import read_regular_file

    path = Path(folder) / NORM_STATS_NAME
    try:
        document = json.loads(read_regular_file(path))
    except (OSError, ValueError) as exc:
        raise TokenizerFormatError(
            f"{path}: cannot read the normalization stats ({exc}); refit the tokenizer with this version "
            "of fasttok_plugin to write them"
        ) from None
    try:
        return _parse(document)
    except (KeyError, TypeError, ValueError, TransformError) as exc:
        raise TokenizerFormatError(f"{path}: not a valid {NORM_STATS_NAME} ({exc})") from None


def _parse(document: Any) -> StoredNormStats:
    if not isinstance(document, dict) or document.get("format") != NORM_STATS_FORMAT:
        raise ValueError(f"'format' is not {NORM_STATS_FORMAT!r}")
    width = int(document["max_action_dim"])
    rows = document["heads"]
    if not isinstance(rows, list) or not rows:
        raise ValueError("'heads' must be a non-empty list")
    names = [n for n in _STATS if n in rows[0]["stats"]]
    arrays: dict[str, np.ndarray] = {}
    for name in names:
        array = np.array([row["stats"][name] for row in rows], dtype=np.float64)
        if array.shape != (len(rows), width) or not np.isfinite(array).all():
            raise ValueError(f"stats {name!r} must be {len(rows)} rows of {width} finite numbers")
        arrays[name] = array
    heads = SimpleNamespace(
        keys=tuple(str(row["key"]) for row in rows),
        fingerprint=str(document["fingerprint"]),
        max_action_dim=width,
        native_dims=tuple(int(row["native_dim"]) for row in rows),
        grouping=str(document.get("head_grouping", "robot_control")),
        stats_source=str(document.get("stats_source", "stored")),
        **arrays,
    )
    raw = document.get("convention")
    members = tuple(tuple(str(m) for m in row["members"]) for row in rows)
    return StoredNormStats(
        heads=heads,
        members=members,
        normalization=str(document["normalization"]),
        zero_range=str(document["zero_range"]),
        eps=float(document["eps"]),
        formula=str(document.get("formula", "fasttok")),
        layout=str(document.get("layout", "padded")),
        convention=convention_from_dict(raw) if raw is not None else None,
        transforms=tuple(_row_transform(row, names) for row, names in zip(rows, members, strict=True)),
    )


def _row_transform(
    row: dict[str, Any], members: tuple[str, ...]
) -> ActionTransform | MemberTransforms | None:
    """A head row's transform; rows without one (and files older than the field) are identity."""
    if "member_transforms" in row:
        listed = row["member_transforms"]
        if not isinstance(listed, list) or len(listed) != len(members):
            raise ValueError(f"head {row['key']!r}: 'member_transforms' must list one per member")
        return MemberTransforms(
            members, tuple(None if t is None else ActionTransform.from_json(t) for t in listed)
        )
    if row.get("transform") is None:
        return None
    transform = ActionTransform.from_json(row["transform"])
    if transform.output_dim(int(row["native_dim"])) != int(row["native_dim"]):
        raise ValueError(f"head {row['key']!r}: its transform selects a width other than its native_dim")
    return None if transform.is_identity else transform


def export_stats(
    tokenizer_dir: str | os.PathLike[str],
    fmt: str,
    out: str | os.PathLike[str],
    *,
    head: str | None = None,
) -> Path:
    """Write a framework's own stats file for one head of a tokenizer folder (see the module docstring).

    Args:
        tokenizer_dir: A folder written by ``fasttok fit`` (holds ``norm_stats.json``).
        fmt: ``"openpi"``, ``"lerobot"`` or ``"opentau"``.
        out: The file to write (a folder: the format's conventional file name inside it).
        head: The head's key; None when the folder has exactly one head.

    Returns:
        The path written.

    Raises:
        FitError: Unknown format or head, a quantile stat the heads lack, or ``out`` exists and is not
            a file we wrote.
        TokenizerFormatError: The folder has no readable ``norm_stats.json``.
    """
    if fmt not in EXPORT_FORMATS:
        raise FitError(
            f"unknown stats format {fmt!r}; expected one of {', '.join(map(repr, EXPORT_FORMATS))}"
        )
    stored = read_norm_stats(tokenizer_dir)
    keys = stored.heads.keys
    if head is None and len(keys) != 1:
        raise FitError(
            f"{tokenizer_dir} has {len(keys)} heads ({', '.join(map(repr, keys))}); pick one with head=KEY "
            "(--head), or fit with head_grouping 'global' for one set of stats"
        )
    index = keys.index(head) if head in keys else (0 if head is None else -1)
    if index < 0:
        raise FitError(f"no head {head!r} in {tokenizer_dir}; the heads are {', '.join(map(repr, keys))}")
    target = Path(out)
    if target.is_dir():
        target = target / EXPORT_FORMATS[fmt]
    document = _export_document(stored, fmt, index)
    _refuse_foreign(target)
    write_text_atomic(target, json.dumps(document, indent=2, allow_nan=False) + "\n")
    return target


def _export_document(stored: StoredNormStats, fmt: str, index: int) -> dict[str, Any]:
    heads, dim = stored.heads, int(stored.heads.native_dims[index])

    def stat(name: str) -> list[float]:
        array = getattr(heads, name, None)
        if array is None:
            raise FitError(
                f"the {fmt} stats need {name!r}, which these heads lack: refit with stats_source='data'"
            )
        return [float(v) for v in array[index, :dim]]

    if fmt == "openpi":
        names = ("mean", "std", "q01", "q99")
        return {"norm_stats": {"actions": {n: stat(n) for n in names}}, _MARKER_KEY: _MARKER}
    if fmt == "lerobot":
        names = [n for n in _STATS if getattr(heads, n, None) is not None]
        return {"action": {n: stat(n) for n in names}}
    center = stored.zero_range == "center"
    version = stored.convention.config_version if stored.convention is not None else None
    return {
        "config_version": int(version) if version is not None else (1 if center else 0),
        "zero_range_center": center,
        _MARKER_KEY: _MARKER,
    }


def _refuse_foreign(target: Path) -> None:
    if not os.path.lexists(target):
        return
    try:
        document = json.loads(target.read_text(encoding="utf-8")) if target.is_file() else None
    except (OSError, ValueError):
        document = None
    if not (isinstance(document, dict) and document.get(_MARKER_KEY) == _MARKER):
        raise FitError(f"{target} exists and was not written by fasttok export-stats; choose another --out")
