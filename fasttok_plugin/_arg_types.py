"""``argparse`` types of the command-line tools, built on the shared rules of :mod:`fasttok_plugin._validate`.

Each raises ``argparse.ArgumentTypeError`` naming the text as typed, so argparse prints
``argument --chunk-size: '0' must be a positive integer`` and exits with status 2.
"""

from __future__ import annotations

import argparse
from typing import Any

from fasttok_plugin._validate import is_positive_int, positive_float

__all__ = [
    "fraction_arg",
    "non_negative_int_arg",
    "optional_positive_int_arg",
    "positive_float_arg",
    "positive_int_arg",
]


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def positive_int_arg(text: str) -> int:
    """An integer >= 1."""
    value = _integer(text)
    if not is_positive_int(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer")
    return value


def non_negative_int_arg(text: str) -> int:
    """An integer >= 0."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def optional_positive_int_arg(text: str) -> int | None:
    """An integer >= 1, or ``none`` for no limit (``None``).

    ``0`` is refused rather than read as "no limit": ``--max-fit-chunks 0`` reads as "fit on nothing",
    and silently fitting on everything instead is the opposite of what was typed.
    """
    if text.strip().lower() == "none":
        return None
    value = _integer(text)
    if not is_positive_int(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer, or 'none' for no limit")
    return value


def positive_float_arg(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    try:
        return positive_float(value, text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number") from None


def fraction_arg(text: str) -> float:
    """A number strictly between 0 and 1."""
    value = positive_float_arg(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1 (exclusive)")
    return value


def add_transform_flags(parser: Any) -> None:
    """The transform flags of both CLIs: together they form one `ActionTransform` for every entry."""
    group = parser.add_argument_group(
        "action transforms (together they replace the mixture's transform keys; stats from the data)"
    )
    select = group.add_mutually_exclusive_group()
    select.add_argument(
        "--action-index", metavar="DIMS", help='native columns kept, e.g. "0:6,7:23" or "0,2"'
    )
    select.add_argument("--encoded-dims", dest="action_index", metavar="DIMS", help="alias of --action-index")
    group.add_argument(
        "--relative-dims", metavar="DIMS", help="native dims made relative to the state at the chunk start"
    )
    group.add_argument("--relative-exclude", metavar="DIMS", help="dims of --relative-dims kept absolute")
    group.add_argument(
        "--state-key", metavar="KEY", help="state column of relative actions (observation.state)"
    )


def transform_from_args(args: argparse.Namespace) -> Any:
    """The flags' `ActionTransform`, or None when no transform flag is given (the mixture's apply).

    Raises:
        TransformError: An invalid flag value (its ``field`` names the flag).
    """
    from fasttok_plugin.transforms import ActionTransform

    names = ("action_index", "relative_dims", "relative_exclude", "state_key")
    given = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    return ActionTransform.from_settings(given, "") if given else None
