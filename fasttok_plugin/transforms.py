"""The action transforms applied before normalization (DESIGN §11): column selection and relative actions.

`ActionTransform` is one frozen value holding both, applied in this order:

1. **Relative actions** (openpi ``DeltaActions``, LeRobot ``relative_dims``, OpenTau delta actions): on the
   dims ``relative_dims`` minus ``relative_exclude`` (e.g. a gripper), every step of a chunk becomes
   ``action[t, i] - state[chunk_start, i]``: action dim ``i`` minus dim ``i`` of ``state_key`` at the
   chunk's first frame, as openpi's ``actions[..., :dims] -= state[..., :dims]`` (masked). The dims index
   the dataset's **native** action columns, *before* any selection, so they pair with the state's dims.
2. **Column selection** (OpenTau ``action_index``, LeRobot ``encoded_dims``): the kept native columns, in
   the order given; the head's native width becomes ``len(action_index)``.

Both settings accept a list of ints or a ranges string ``"0:6,7:23"`` (half-open ``start:stop`` ranges and
single ints, LeRobot's ``encoded_dims`` syntax), parsed by `parse_dims`, the one parser.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fasttok_plugin._validate import MAX_ACTION_DIM
from fasttok_plugin.errors import TransformError

__all__ = [
    "DEFAULT_STATE_KEY",
    "TRANSFORM_KEYS",
    "ActionTransform",
    "MemberTransforms",
    "head_transforms",
    "parse_dims",
]

#: The state column relative actions subtract (LeRobot's and OpenTau's default).
DEFAULT_STATE_KEY = "observation.state"
#: The mixture keys of a transform (top level and per entry). ``encoded_dims`` is an alias of
#: ``action_index``.
TRANSFORM_KEYS = ("action_index", "encoded_dims", "relative_dims", "relative_exclude", "state_key")


def parse_dims(value: object, field: str) -> tuple[int, ...]:
    """Dims from a list of ints or a ranges string such as ``"0:6,7:23"`` (half-open ranges, single ints).

    Args:
        value: The setting as written.
        field: Its name, for errors.

    Returns:
        The dims in the order given (not sorted: a selection may reorder columns).

    Raises:
        TransformError: Not a list of ints >= 0 or a valid ranges string; a dim repeated or too large.
    """
    if isinstance(value, str):
        dims = _parse_ranges(value, field)
    elif isinstance(value, (list, tuple)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            raise TransformError(
                f"{field} must list integers >= 0 (or be a ranges string like '0:6,7:23'), got {value!r}",
                field=field,
            )
        dims = [int(v) for v in value]
    else:
        raise TransformError(
            f"{field} must be a list of integers or a ranges string like '0:6,7:23', got {value!r}",
            field=field,
        )
    if not dims:
        raise TransformError(f"{field} selects no dim; give at least one, or leave it out", field=field)
    bad = [d for d in dims if d < 0 or d >= MAX_ACTION_DIM]
    if bad:
        raise TransformError(f"{field}: dims must be in 0..{MAX_ACTION_DIM - 1}, got {bad[0]}", field=field)
    repeated = sorted({d for d in dims if dims.count(d) > 1})
    if repeated:
        raise TransformError(f"{field}: dim {repeated[0]} is given twice; list each dim once", field=field)
    return tuple(dims)


def _parse_ranges(text: str, field: str) -> list[int]:
    dims: list[int] = []
    for part in text.split(","):
        piece = part.strip()
        try:
            if ":" in piece:
                start_text, stop_text = piece.split(":")
                start, stop = int(start_text), int(stop_text)
                if start >= stop:
                    raise ValueError(piece)
                dims.extend(range(start, stop))
            else:
                dims.append(int(piece))
        except ValueError:
            raise TransformError(
                f"{field}: cannot read {piece!r} in {text!r}; write half-open ranges and dims separated "
                "by commas, like '0:6,7:23' or '0,2,5'",
                field=field,
            ) from None
    return dims


@dataclass(frozen=True, slots=True)
class ActionTransform:
    """Column selection and relative actions, applied to raw actions before normalization.

    Attributes:
        action_index: Native action columns kept, in order (None: all); list of ints or ``"0:6,7:23"``.
        relative_dims: Native action dims made relative to the state at the chunk's first frame (None:
            none); list of ints or a ranges string.
        relative_exclude: Dims of ``relative_dims`` left absolute (e.g. a gripper).
        state_key: The state column subtracted (dim ``i`` from action dim ``i``).

    Raises:
        TransformError: Naming the field: bad dims, ``relative_exclude`` without ``relative_dims`` or
            excluding every relative dim, an empty ``state_key``.
    """

    action_index: tuple[int, ...] | None = None
    relative_dims: tuple[int, ...] | None = None
    relative_exclude: tuple[int, ...] = ()
    state_key: str = DEFAULT_STATE_KEY

    def __post_init__(self) -> None:
        for field in ("action_index", "relative_dims"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, parse_dims(value, field))
        exclude = self.relative_exclude
        exclude = parse_dims(exclude, "relative_exclude") if exclude not in ((), []) else ()
        object.__setattr__(self, "relative_exclude", exclude)
        if exclude and self.relative_dims is None:
            raise TransformError(
                "relative_exclude is set but relative_dims is not; give the relative dims, or drop "
                "relative_exclude",
                field="relative_exclude",
            )
        if self.relative_dims is not None and not self.relative:
            raise TransformError(
                f"relative_exclude {list(exclude)} excludes every relative dim {list(self.relative_dims)}; "
                "drop relative_dims instead",
                field="relative_exclude",
            )
        if not isinstance(self.state_key, str) or not self.state_key.strip():
            raise TransformError(
                f"state_key must name the state column (e.g. {DEFAULT_STATE_KEY!r}), got {self.state_key!r}",
                field="state_key",
            )

    @classmethod
    def from_settings(cls, settings: dict[str, Any], where: str = "") -> ActionTransform:
        """Build from mixture-style keys (`TRANSFORM_KEYS`; ``encoded_dims`` is ``action_index``).

        Raises:
            TransformError: Both ``action_index`` and ``encoded_dims``, or any invalid field.
        """
        if settings.get("action_index") is not None and settings.get("encoded_dims") is not None:
            raise TransformError(
                f"{where}give either action_index (OpenTau) or encoded_dims (LeRobot), not both",
                field="action_index",
            )
        index = settings.get("action_index", settings.get("encoded_dims"))
        state_key = settings.get("state_key")
        return cls(
            action_index=index,
            relative_dims=settings.get("relative_dims"),
            relative_exclude=settings.get("relative_exclude") or (),
            state_key=DEFAULT_STATE_KEY if state_key is None else state_key,
        )

    @classmethod
    def from_json(cls, document: object) -> ActionTransform:
        """The transform `to_json` wrote (its ``relative_dims`` already exclude ``relative_exclude``).

        Raises:
            TransformError: Not such a document, or an invalid field.
        """
        known = {"action_index", "relative_dims", "state_key"}
        if not isinstance(document, Mapping) or not set(document) <= known:
            raise TransformError(
                f"a transform must be an object with keys {sorted(known)}, got {document!r}",
                field="transform",
            )
        state_key = document.get("state_key")
        return cls(
            action_index=document.get("action_index"),
            relative_dims=document.get("relative_dims"),
            state_key=DEFAULT_STATE_KEY if state_key is None else state_key,
        )

    @property
    def relative(self) -> tuple[int, ...]:
        """The native dims made relative (``relative_dims`` minus ``relative_exclude``), ascending."""
        if self.relative_dims is None:
            return ()
        return tuple(sorted(set(self.relative_dims) - set(self.relative_exclude)))

    @property
    def is_identity(self) -> bool:
        """Neither selects columns nor makes any dim relative (the default: today's behaviour)."""
        return self.action_index is None and not self.relative

    @property
    def needs_state(self) -> bool:
        """Relative actions read the ``state_key`` column."""
        return bool(self.relative)

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON (lists; ``state_key`` only when relative actions use it)."""
        document: dict[str, Any] = {
            "action_index": None if self.action_index is None else list(self.action_index),
            "relative_dims": list(self.relative) or None,
        }
        if self.relative:
            document["state_key"] = self.state_key
        return document

    @property
    def key(self) -> str:
        """Stable text naming the transform (stats cache and fingerprint): ``"identity"`` or its JSON."""
        if self.is_identity:
            return "identity"
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        """One line for reports: ``"identity"`` or e.g. ``"columns 0:6 | relative 0:6 - <state>"``."""
        if self.is_identity:
            return "identity"
        parts = []
        if self.action_index is not None:
            parts.append(f"columns {_ranges(self.action_index)}")
        if self.relative:
            parts.append(f"relative {_ranges(self.relative)} - {self.state_key}[chunk start]")
        return " | ".join(parts)

    def output_dim(self, native_dim: int) -> int:
        """Width of the transformed actions of a dataset with ``native_dim`` action dims."""
        return native_dim if self.action_index is None else len(self.action_index)

    def columns(self, native_dim: int) -> tuple[int, ...]:
        """The native action columns the transformed actions hold, in order."""
        return tuple(range(native_dim)) if self.action_index is None else self.action_index

    def state_columns(self, native_dim: int) -> tuple[tuple[int, int], ...]:
        """``(column, state dim)`` of every transformed column `apply` subtracted the state from."""
        relative = set(self.relative)
        return tuple((j, c) for j, c in enumerate(self.columns(native_dim)) if c in relative)

    def unapply(self, actions: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        """Absolute actions from transformed ones (openpi ``AbsoluteActions``): the inverse of `apply` on
        the kept columns, adding the chunk-start state back on the relative ones.

        Args:
            actions: ``(..., T, d')`` transformed actions (``d' = output_dim``).
            state: ``(..., s)`` the state at each chunk's first frame (needed when a kept column is
                relative).

        Returns:
            ``(..., T, d')`` float32: the selected native columns, absolute.
        """
        out = np.array(actions, dtype=np.float32)
        pairs = self.state_columns(out.shape[-1])  # a selection's columns do not depend on the width
        if not pairs:
            return out
        if state is None:
            raise TransformError("absolute actions need the state at the chunk start", field="state_key")
        columns, dims = (np.asarray(v) for v in zip(*pairs, strict=True))
        out[..., columns] += np.asarray(state, dtype=np.float32)[..., None, dims]
        return out

    def problems(self, native_dim: int, state_dim: int | None) -> list[tuple[str, str]]:
        """``(kind, message)`` for every way this transform does not fit a dataset.

        Kinds: ``"action_index"`` (a selected column past the native dims), ``"relative_dims"`` (a
        relative dim past them), ``"state_key"`` (no state column), ``"state_dims"`` (a relative dim past
        the state's width).

        Args:
            native_dim: The dataset's action dims.
            state_dim: Dims of its ``state_key`` column (None: the column is missing).
        """
        out = []
        if self.action_index is not None and max(self.action_index) >= native_dim:
            past = next(d for d in self.action_index if d >= native_dim)
            out.append(("action_index", f"selects dim {past} but the action has {native_dim} dims"))
        if not self.relative:
            return out
        top = max(self.relative)
        if top >= native_dim:
            out.append(("relative_dims", f"makes dim {top} relative but the action has {native_dim} dims"))
        if state_dim is None:
            out.append(("state_key", f"{self.state_key!r} is not a state vector of the dataset"))
        elif top >= state_dim:
            out.append(
                ("state_dims", f"makes dim {top} relative but {self.state_key!r} has {state_dim} dims")
            )
        return out

    def apply(self, actions: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        """Transformed float32 actions.

        Args:
            actions: ``(..., T, d)`` chunks (or ``(n, d)`` frames with ``T`` = n) at the native width.
            state: ``(..., s)`` the state at each chunk's first frame (needed when `relative`).

        Returns:
            ``(..., T, d')``: relative dims minus the state, then the selected columns.
        """
        out = np.asarray(actions, dtype=np.float32)
        if self.relative:
            if state is None:
                raise TransformError("relative actions need the state at the chunk start", field="state_key")
            dims = np.asarray(self.relative)
            out = out.copy()
            out[..., dims] -= np.asarray(state, dtype=np.float32)[..., None, dims]
        if self.action_index is not None:
            out = np.take(out, np.asarray(self.action_index), axis=-1)
        return np.ascontiguousarray(out, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class MemberTransforms:
    """The transforms of a head whose members were fit with different ones (recorded per member).

    Attributes:
        members: Entry names of the head's members.
        transforms: Each member's transform (None: identity).
    """

    members: tuple[str, ...]
    transforms: tuple[ActionTransform | None, ...]

    def describe(self) -> str:
        """``"name: transform; ..."`` for errors and reports."""
        return "; ".join(
            f"{m}: {'identity' if t is None else t.describe()}"
            for m, t in zip(self.members, self.transforms, strict=True)
        )


def head_transforms(
    head_members: Sequence[Sequence[int]],
    entry_names: Sequence[str],
    transforms: ActionTransform | Sequence[ActionTransform | None] | None,
) -> tuple[ActionTransform | MemberTransforms | None, ...]:
    """The transform of every head from its members' (``NormHeads.head_members``, by entry position).

    Args:
        head_members: Entry positions of each head's members.
        entry_names: Name of every entry.
        transforms: One transform for every entry, one per entry, or None.

    Returns:
        Per head: the members' common transform (None: identity), or a `MemberTransforms` when the
        members' transforms differ.
    """
    if transforms is None or isinstance(transforms, ActionTransform):
        transforms = (transforms,) * len(entry_names)
    per_entry = [None if t is None or t.is_identity else t for t in transforms]
    out: list[ActionTransform | MemberTransforms | None] = []
    for members in head_members:
        chosen = [per_entry[i] for i in members]
        if len({"identity" if t is None else t.key for t in chosen}) <= 1:
            out.append(chosen[0] if chosen else None)
        else:
            out.append(MemberTransforms(tuple(entry_names[i] for i in members), tuple(chosen)))
    return tuple(out)


def _ranges(dims: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0:3,5"`` (runs of consecutive dims as half-open ranges)."""
    parts, start = [], 0
    for i in range(1, len(dims) + 1):
        if i == len(dims) or dims[i] != dims[i - 1] + 1:
            run = dims[start:i]
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}:{run[-1] + 1}")
            start = i
    return ",".join(parts)
