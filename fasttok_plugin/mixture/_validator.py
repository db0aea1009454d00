"""The validator: records problems (fatal or not) and unknown keys at their file and line, and checks the
value kinds the schema shares (optional strings, flags, positive integers, episode lists).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fasttok_plugin._validate import is_positive_int
from fasttok_plugin.mixture._pointers import Location, closest, pointer_join
from fasttok_plugin.mixture._refs import Expander
from fasttok_plugin.mixture._values import is_number, type_name
from fasttok_plugin.mixture.model import MixtureProblem, UnknownKey

__all__ = ["Validator", "entry_label", "field_label"]


def entry_label(raw: Any, index: int) -> str:
    """How messages name entry ``index``: ``datasets[3] (org/name)``, or ``datasets[3]`` without a repo_id."""
    repo_id = raw.get("repo_id") if isinstance(raw, dict) else None
    return f"datasets[{index}] ({repo_id})" if isinstance(repo_id, str) and repo_id else f"datasets[{index}]"


def field_label(label: str, key: str) -> str:
    """How messages name field ``key`` of the object called ``label`` (just ``key`` at the top level)."""
    return f"{label}.{key}" if label else key


class Validator:
    """Collects the problems of one parse, each located at the file and line its value came from.

    Attributes:
        fatal: Problems that make the mixture unusable (raised together as a MixtureError).
        soft: Problems the preflight reports (bad weights), kept in the MixtureConfig.
        unknown: Keys the schema does not know.
    """

    def __init__(self, expander: Expander, path: Path | None) -> None:
        self.expander = expander
        self.path = path
        self.fatal: list[MixtureProblem] = []
        self.soft: list[MixtureProblem] = []
        self.unknown: list[UnknownKey] = []

    def location(self, pointer: str) -> Location:
        """``(file, line)`` of the merged value at ``pointer`` (or of its closest enclosing value)."""

        def lookup(ptr: str) -> Location | None:
            origin = self.expander.origins.get(ptr)
            return None if origin is None else (origin[0].path, origin[0].line(origin[1]))

        return closest(pointer, lookup, (self.path, None))

    def problem(self, pointer: str, message: str, hint: str = "", *, fatal: bool = True) -> None:
        """Record a problem at ``pointer``; ``fatal=False`` keeps the mixture usable."""
        file, line = self.location(pointer)
        record = MixtureProblem(pointer, message, hint, line, file)
        (self.fatal if fatal else self.soft).append(record)

    def check_keys(
        self,
        obj: Mapping[str, Any],
        pointer: str,
        known: tuple[str, ...],
        suggest: tuple[str, ...] | None = None,
    ) -> None:
        """Record each key of ``obj`` not in ``known``, with its closest match in ``suggest`` or ``known``."""
        for key in obj:
            if key in known:
                continue
            matches = difflib.get_close_matches(key, suggest or known, n=1, cutoff=0.6)
            key_ptr = pointer_join(pointer, key)
            file, line = self.location(key_ptr)
            self.unknown.append(UnknownKey(key_ptr, key, matches[0] if matches else None, line, file))

    def optional_str(
        self, obj: Mapping[str, Any], key: str, pointer: str, hint: str, label: str = ""
    ) -> str | None:
        """``obj[key]`` when a string or absent/null; a problem otherwise."""
        value = obj.get(key)
        if value is None or isinstance(value, str):
            return value
        self.problem(
            pointer_join(pointer, key),
            f"{field_label(label, key)} must be a string or null, got {type_name(value)} {value!r}",
            hint,
        )
        return None

    def flag(self, obj: Mapping[str, Any], key: str, pointer: str) -> bool:
        """``obj[key]`` as a JSON boolean (absent or null: ``False``); a problem otherwise."""
        value = obj.get(key, False)
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        self.problem(
            pointer_join(pointer, key),
            f"{key} must be true or false, got {type_name(value)} {value!r}",
            f'write "{key}": true or false (JSON booleans, not strings)',
        )
        return False

    def choice(self, obj: Mapping[str, Any], key: str, pointer: str, allowed: tuple[str, ...]) -> str | None:
        """``obj[key]`` when one of ``allowed``, ``None`` when absent/null; else a problem naming them."""
        value = obj.get(key)
        if value is None or (isinstance(value, str) and value in allowed):
            return value
        names = ", ".join(f'"{a}"' for a in allowed)
        self.problem(
            pointer_join(pointer, key),
            f"{key} must be one of {names}, got {type_name(value)} {value!r}",
            f'write "{key}": one of {names}, or remove it to use "{allowed[0]}"',
        )
        return None

    def positive_int(
        self, obj: Mapping[str, Any], key: str, pointer: str, *, maximum: int | None = None
    ) -> int | None:
        """``obj[key]`` as a positive integer (``2.0`` counts, at most ``maximum``), ``None`` when absent;
        a problem otherwise."""
        value = obj.get(key)
        if value is None:
            return None
        number: int | None = None
        # is_number first: only JSON numbers (no numpy scalars), which the canonical dump can serialize.
        integral = is_number(value) and is_positive_int(value)
        if integral or (isinstance(value, float) and value.is_integer() and value > 0):
            number = int(value)
        if number is not None and (maximum is None or number <= maximum):
            return number
        if number is not None:
            self.problem(
                pointer_join(pointer, key),
                f"{key} must be at most {maximum}, got {value!r}",
                f"set {key} to at most {maximum}, or remove it to use the default",
            )
            return None
        self.problem(
            pointer_join(pointer, key),
            f"{key} must be a positive integer or null, got {value!r}",
            f"set {key} to a positive integer, or remove it to use the default",
        )
        return None

    def episode_list(
        self, obj: Mapping[str, Any], key: str, pointer: str, label: str = ""
    ) -> tuple[int, ...] | None:
        """``obj[key]`` as distinct non-negative episode indices, ``None`` when absent; problems otherwise."""
        value = obj.get(key)
        if value is None:
            return None
        ptr = pointer_join(pointer, key)
        if not isinstance(value, list):
            self.problem(
                ptr,
                f"{field_label(label, key)} must be a list of episode indices, got {type_name(value)}",
                f'"{key}": [0, 1]',
            )
            return None
        out: list[int] = []
        seen: set[int] = set()
        for i, item in enumerate(value):
            if isinstance(item, float) and item.is_integer():
                item = int(item)
            if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                self.problem(
                    f"{ptr}/{i}",
                    f"{field_label(label, key)}[{i}] must be a non-negative integer episode index, "
                    f"got {item!r}",
                    "use integer episode indices as in meta/episodes",
                )
                continue
            if item in seen:
                self.problem(
                    f"{ptr}/{i}",
                    f"{field_label(label, key)} lists episode {item} twice",
                    "list each episode once",
                )
                continue
            seen.add(item)
            out.append(item)
        return tuple(out)
