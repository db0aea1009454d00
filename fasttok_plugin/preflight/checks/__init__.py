"""The built-in checks: ordinary plugins, registered by name exactly like third-party ones.

Each class is one plugin (``-p no:<name>`` disables it). They read the structured records the core
already computed (``NormHeads`` issue records, ``ResolvedEntry.error``, ``DatasetMeta.stats_error``,
``MixtureConfig.problems``/``unknown_keys``) so the preflight and training can never disagree.
"""

from __future__ import annotations

from typing import Any

from fasttok_plugin.preflight.checks._base import _Check
from fasttok_plugin.preflight.checks.budgets import Budgets
from fasttok_plugin.preflight.checks.conventions import Conventions
from fasttok_plugin.preflight.checks.core import CORE_RULES
from fasttok_plugin.preflight.checks.datasets import DatasetMetadata
from fasttok_plugin.preflight.checks.dims import ActionDims
from fasttok_plugin.preflight.checks.episodes import EpisodeLengths
from fasttok_plugin.preflight.checks.mixture_file import UnknownKeys, Weights
from fasttok_plugin.preflight.checks.stats import StatsChecks
from fasttok_plugin.preflight.checks.tags import DuplicateFallbacks, FallbackHeads, RequireNonEmptyTags
from fasttok_plugin.preflight.checks.timing import TimestampStats
from fasttok_plugin.preflight.checks.transforms import TransformChecks

__all__ = [
    "BUILTIN_CHECKS",
    "CORE_RULES",
    "ActionDims",
    "Budgets",
    "Conventions",
    "DatasetMetadata",
    "DuplicateFallbacks",
    "EpisodeLengths",
    "FallbackHeads",
    "RequireNonEmptyTags",
    "StatsChecks",
    "TimestampStats",
    "TransformChecks",
    "UnknownKeys",
    "Weights",
    "builtin_plugins",
]

# Registration order; pluggy calls them in reverse (last registered first), and the output is sorted.
BUILTIN_CHECKS: tuple[type[_Check], ...] = (
    Weights,
    UnknownKeys,
    DatasetMetadata,
    StatsChecks,
    RequireNonEmptyTags,
    DuplicateFallbacks,
    FallbackHeads,
    ActionDims,
    EpisodeLengths,
    TimestampStats,
    Budgets,
    TransformChecks,
    Conventions,
)


def builtin_plugins() -> list[tuple[str, Any]]:
    """Fresh ``(name, plugin)`` pairs of the built-in checks, in registration order."""
    return [(cls.name, cls()) for cls in BUILTIN_CHECKS]
