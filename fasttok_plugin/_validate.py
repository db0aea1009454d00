"""Argument checks shared by every public entry point, so one rule gives one message everywhere."""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["MAX_ACTION_DIM", "MAX_SEED", "is_positive_int", "positive_float", "positive_int"]

#: Widest padded action accepted: a policy's action dim is tens; more is a typo that would allocate
#: gigabytes of statistics and padded chunks.
MAX_ACTION_DIM = 4096
#: Largest seed accepted: seeds are mixed into 64-bit hashes and passed to numpy and torch as int64.
MAX_SEED = 2**63 - 1


def is_positive_int(value: Any) -> bool:
    """Return True for an integer >= 1 (numpy integers included; ``bool`` is not a number here)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1


def positive_int(
    value: Any, name: str, error: type[Exception] = ValueError, *, maximum: int | None = None
) -> int:
    """Return ``value`` as an ``int`` or raise ``error`` naming ``name``.

    Args:
        value: The value to check.
        name: The argument's name, as the user wrote it.
        error: The exception type the caller's API promises.
        maximum: Largest value accepted (None: no bound), e.g. `MAX_ACTION_DIM`.

    Raises:
        error: ``value`` is not an integer >= 1 (and <= ``maximum``).
    """
    if not is_positive_int(value):
        raise error(f"{name} must be a positive integer, got {value!r}")
    if maximum is not None and int(value) > maximum:
        raise error(f"{name} must be at most {maximum}, got {value!r}")
    return int(value)


def positive_float(value: Any, name: str, error: type[Exception] = ValueError) -> float:
    """Return ``value`` as a finite ``float`` > 0 or raise ``error`` naming ``name``.

    Raises:
        error: ``value`` is not a finite number > 0.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise error(f"{name} must be a positive finite number, got {value!r}")
    return float(value)
