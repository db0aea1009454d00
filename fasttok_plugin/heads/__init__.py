"""Norm heads: the single source of truth for how a mixture's actions are normalized (DESIGN §5).

`build_norm_heads` groups the entries of a resolved mixture into heads by typed `HeadKey`
(``"<robot_type>::<control_mode>"`` for display, or the entry name when a tag is missing; or, with
``grouping="global"`` / ``"dataset"``, one head over the mixture / one per entry), pools each
head's statistics over its members (zero-padded to ``max_action_dim``, ``±Inf`` masked, count-weighted
mean and pooled variance) and returns every problem it met as structured records. It never raises on
bad data: whether a problem is fatal is the caller's policy (`NormHeads.raise_for_errors`).

Modules: `keys` (typed head keys), `pooling` (pure numpy pooling), `issues` (problem records),
`fingerprint`, `model` (`NormHeads`) and `build` (`build_norm_heads`).
"""

from __future__ import annotations

from fasttok_plugin.errors import NormHeadsError
from fasttok_plugin.heads.build import build_norm_heads
from fasttok_plugin.heads.issues import (
    DimOverflow,
    DuplicateFallback,
    FilledDim,
    IncompatibleDims,
    MissingTag,
    NonFiniteStat,
    SkippedEntry,
)
from fasttok_plugin.heads.keys import (
    HeadKey,
    check_head_grouping,
    compute_norm_key,
    grouped_key,
    head_key,
    is_missing_tag,
)
from fasttok_plugin.heads.model import NormHeads

__all__ = [
    "DimOverflow",
    "DuplicateFallback",
    "FilledDim",
    "HeadKey",
    "IncompatibleDims",
    "MissingTag",
    "NonFiniteStat",
    "NormHeads",
    "NormHeadsError",
    "SkippedEntry",
    "build_norm_heads",
    "check_head_grouping",
    "compute_norm_key",
    "grouped_key",
    "head_key",
    "is_missing_tag",
]
