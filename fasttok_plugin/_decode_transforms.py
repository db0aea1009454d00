"""`ActionDecoder` helpers for action transforms: the per-head transforms, the state and their JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from fasttok_plugin.transforms import ActionTransform, MemberTransforms

__all__ = ["checked_transforms", "state_rows", "transform_from_json", "transform_json"]


def checked_transforms(
    transforms: Sequence[ActionTransform | MemberTransforms | None] | None,
    keys: tuple[str, ...],
    dims: tuple[int, ...],
) -> tuple[ActionTransform | MemberTransforms | None, ...]:
    """One transform per head (identity ones as None), each selecting its head's native width."""
    if transforms is None:
        return (None,) * len(keys)
    out = tuple(None if isinstance(t, ActionTransform) and t.is_identity else t for t in transforms)
    if len(out) != len(keys) or not all(
        t is None or isinstance(t, (ActionTransform, MemberTransforms)) for t in out
    ):
        raise ValueError(
            f"ActionDecoder: transforms must give one ActionTransform (or None) per head ({len(keys)}), "
            f"got {transforms!r}"
        )
    for key, dim, t in zip(keys, dims, out, strict=True):
        if isinstance(t, ActionTransform) and t.output_dim(dim) != dim:
            raise ValueError(
                f"ActionDecoder: head {key!r} has {dim} native dims but its transform selects "
                f"{len(t.action_index or ())} columns; pass the transforms the heads were fit with"
            )
    return out


def state_rows(
    state: Any,
    index: np.ndarray,
    needed: Sequence[tuple[int, ActionTransform]],
    keys: tuple[str, ...],
    dims: tuple[int, ...],
) -> np.ndarray:
    """``state`` as an ``(N, s)`` float32 array, checked against the relative heads that read it."""
    n = len(index)
    first, transform = needed[0]
    hint = (
        f"head {keys[first]!r} was fit with relative actions ({transform.describe()}): pass state=, the "
        f"(N, state_dim) {transform.state_key!r} vector at each chunk's first frame"
    )
    if state is None:
        raise ValueError(f"ActionDecoder: {hint}")
    if isinstance(state, torch.Tensor):
        state = state.detach().cpu().numpy()
    values = np.asarray(state, dtype=np.float32)
    if values.ndim != 2 or values.shape[0] != n:
        raise ValueError(f"ActionDecoder: state has shape {values.shape}, expected ({n}, state_dim); {hint}")
    for h, t in needed:
        top = max(c for _, c in t.state_columns(dims[h]))
        if top >= values.shape[1]:
            raise ValueError(
                f"ActionDecoder: head {keys[h]!r} adds {t.state_key!r} dim {top} back but state has "
                f"{values.shape[1]} dims; pass the full state vector"
            )
        used = values[index == h][:, [c for _, c in t.state_columns(dims[h])]]
        if not np.isfinite(used).all():
            raise ValueError(
                f"ActionDecoder: state of a row of head {keys[h]!r} is not finite on the dims added back "
                f"({t.state_key!r}); pass the state read at the chunk's first frame"
            )
    return values


def transform_json(transform: ActionTransform | MemberTransforms | None) -> Any:
    """A head's transform in `ActionDecoder.state` (None, `ActionTransform.to_json`, or per member)."""
    if isinstance(transform, MemberTransforms):
        return {
            "members": list(transform.members),
            "member_transforms": [None if t is None else t.to_json() for t in transform.transforms],
        }
    return None if transform is None else transform.to_json()


def transform_from_json(document: Any) -> ActionTransform | MemberTransforms | None:
    """The inverse of `transform_json`."""
    if document is None:
        return None
    if isinstance(document, Mapping) and "member_transforms" in document:
        return MemberTransforms(
            tuple(document["members"]),
            tuple(None if t is None else ActionTransform.from_json(t) for t in document["member_transforms"]),
        )
    return ActionTransform.from_json(document)
