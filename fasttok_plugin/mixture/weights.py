"""The weight rule: which mixture weights are usable, one rule for the parser and the sampler.

A weight is a JSON number (``true``/``false`` are not), finite and non-negative; 0 disables its entry. A
set of weights that are all valid but sum to zero would sample nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fasttok_plugin.mixture._values import is_number, type_name

__all__ = ["WeightProblem", "check_weights"]

_FINITE_HINT = "use a non-negative finite number"


@dataclass(frozen=True, slots=True)
class WeightProblem:
    """One problem found by :func:`check_weights`.

    Attributes:
        index: Position of the offending weight, ``None`` for a problem of the whole set (all zero).
        message: What is wrong, naming the weight by its label.
        hint: How to fix it.
    """

    index: int | None
    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.hint})"


def check_weights(weights: Sequence[object], labels: Sequence[str] | None = None) -> list[WeightProblem]:
    """Check mixture weights against the one weight rule (pure: bad weights are returned, not raised).

    Args:
        weights: The weight values, as given (any objects: a string or ``None`` is reported, not raised).
        labels: How messages name each weight (default ``weights[i]``); as long as ``weights``.

    Returns:
        The problems in order: one per weight that is not a number, is NaN or infinite, or is negative;
        then, when every weight is valid but they are all zero, one with ``index=None``. Empty when the
        weights are usable (an empty ``weights`` has no problem here: the caller reports missing entries).

    Raises:
        ValueError: ``labels`` is not as long as ``weights``.

    Example:
        >>> [str(p) for p in check_weights([1.0, -2, "x"])]  # doctest: +NORMALIZE_WHITESPACE
        ['weights[1] is negative (-2.0) (fix: use a non-negative weight (0 disables the entry))',
         "weights[2] must be a number, got string 'x' (fix: use a non-negative finite number)"]
    """
    if labels is not None and len(labels) != len(weights):
        raise ValueError(f"{len(labels)} labels for {len(weights)} weights")
    problems: list[WeightProblem] = []
    for index, value in enumerate(weights):
        label = labels[index] if labels is not None else f"weights[{index}]"
        problem = _weight_problem(value, label)
        if problem is not None:
            problems.append(WeightProblem(index, *problem))
    if weights and not problems and sum(float(w) for w in weights) == 0:  # type: ignore[arg-type]
        problems.append(
            WeightProblem(
                None,
                "all weights are zero: nothing would be sampled",
                "give at least one entry a positive weight",
            )
        )
    return problems


def _weight_problem(value: object, label: str) -> tuple[str, str] | None:
    """``(message, hint)`` when ``value`` breaks the weight rule, else ``None``."""
    if not is_number(value):
        return f"{label} must be a number, got {type_name(value)} {value!r}", _FINITE_HINT
    weight = float(value)  # type: ignore[arg-type]
    if math.isnan(weight) or math.isinf(weight):
        return f"{label} is {weight}, not finite", _FINITE_HINT
    if weight < 0:
        return f"{label} is negative ({weight})", "use a non-negative weight (0 disables the entry)"
    return None
