"""Head keys: which entries of a mixture share a norm head (DESIGN §5).

A head is identified by a typed :class:`HeadKey`, never by its display string: the display
``"<robot_type>::<control_mode>"`` of tags ``("x::y", "z")`` equals that of ``("x", "y::z")``, and a
fallback entry may be named ``"a::b"``; the typed key keeps all three apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from fasttok_plugin.defaults import HEAD_GROUPINGS

__all__ = ["HeadKey", "check_head_grouping", "compute_norm_key", "grouped_key", "head_key", "is_missing_tag"]

#: Display name of the one head of the ``global`` grouping.
GLOBAL_HEAD_NAME = "global"


def is_missing_tag(value: object) -> bool:
    """Return True when a robot_type/control_mode tag is unusable: None, blank, or "unknown" (any case)."""
    if value is None:
        return True
    text = str(value).strip()
    return not text or text.lower() == "unknown"


def _has_tags(robot_type: object, control_mode: object) -> bool:
    return not (is_missing_tag(robot_type) or is_missing_tag(control_mode))


@final
@dataclass(frozen=True, slots=True)
class HeadKey:
    """The identity of one norm head: a tag pair, one fallback entry, one entry, or the whole mixture.

    Build keys with :meth:`tagged`, :meth:`fallback`, :meth:`entry` or :meth:`global_` (or
    :func:`grouped_key`). Exactly one kind is set:

    Attributes:
        robot_type: Tagged heads: the robot type, stripped of surrounding whitespace.
        control_mode: Tagged heads: the control mode, stripped of surrounding whitespace.
        fallback_entry: Fallback heads (``robot_control`` grouping, tags missing): position of the entry
            in ``ResolvedMixture.entries``.
        dataset_entry: Per-entry heads (``dataset`` grouping): position of the entry.
        whole_mixture: The one head of the ``global`` grouping.
        name: Fallback and per-entry heads: the entry's name, shown as the head's display name.
    """

    robot_type: str | None = None
    control_mode: str | None = None
    fallback_entry: int | None = None
    name: str = ""
    dataset_entry: int | None = None
    whole_mixture: bool = False

    def __post_init__(self) -> None:
        has_robot, has_mode = self.robot_type is not None, self.control_mode is not None
        kinds = (has_robot, self.fallback_entry is not None, self.dataset_entry is not None)
        if has_robot != has_mode or sum(kinds) + self.whole_mixture != 1:
            raise ValueError(
                "a HeadKey holds either robot_type and control_mode (a tagged head), fallback_entry "
                f"(a singleton head), dataset_entry (a per-entry head) or whole_mixture, got {self!r}"
            )

    @classmethod
    def tagged(cls, robot_type: object, control_mode: object) -> HeadKey:
        """Key of the head shared by every entry with these tags (compared stripped of whitespace)."""
        return cls(robot_type=str(robot_type).strip(), control_mode=str(control_mode).strip())

    @classmethod
    def fallback(cls, position: int, name: str) -> HeadKey:
        """Key of the singleton head of the entry at ``position``, displayed as ``name``."""
        return cls(fallback_entry=int(position), name=str(name))

    @classmethod
    def entry(cls, position: int, name: str) -> HeadKey:
        """Key of the head of the entry at ``position`` under the ``dataset`` grouping, shown as ``name``."""
        return cls(dataset_entry=int(position), name=str(name))

    @classmethod
    def global_(cls) -> HeadKey:
        """Key of the one head over the whole mixture (``global`` grouping)."""
        return cls(whole_mixture=True)

    @property
    def is_fallback(self) -> bool:
        """True for a singleton head made because the entry's tags are missing (``robot_control`` only)."""
        return self.fallback_entry is not None

    @property
    def is_tagged(self) -> bool:
        """True for a head shared by the entries with one ``(robot_type, control_mode)`` pair."""
        return self.robot_type is not None

    @property
    def display(self) -> str:
        """``"<robot_type>::<control_mode>"``, the entry name (fallback, per-entry) or ``"global"``."""
        if self.whole_mixture:
            return GLOBAL_HEAD_NAME
        if self.fallback_entry is not None or self.dataset_entry is not None:
            return self.name
        return f"{self.robot_type}::{self.control_mode}"

    def to_json(self) -> list[str | int]:
        """Unambiguous JSON form (for fingerprints).

        ``["tagged", rt, cm]``, ``["fallback", pos, name]``, ``["entry", pos, name]`` or ``["global"]``.
        """
        if self.whole_mixture:
            return ["global"]
        if self.dataset_entry is not None:
            return ["entry", self.dataset_entry, self.name]
        if self.fallback_entry is not None:
            return ["fallback", self.fallback_entry, self.name]
        return ["tagged", str(self.robot_type), str(self.control_mode)]

    def __str__(self) -> str:
        return self.display


def head_key(robot_type: object, control_mode: object, position: int, name: str) -> HeadKey:
    """Return the head key of an entry: its tags when both are usable, else a fallback on itself.

    Args:
        robot_type: Effective robot type (mixture override, else ``info.json``).
        control_mode: Effective control mode (mixture override, else ``info.json``).
        position: The entry's position in ``ResolvedMixture.entries``.
        name: The entry's unique name (``repo_id``, with ``#i`` when the repo id repeats).
    """
    if _has_tags(robot_type, control_mode):
        return HeadKey.tagged(robot_type, control_mode)
    return HeadKey.fallback(position, name)


def check_head_grouping(value: object, what: str = "head_grouping") -> str:
    """Return ``value`` when it names a head grouping; raise naming the allowed ones otherwise.

    Raises:
        ValueError: ``value`` is not one of `HEAD_GROUPINGS`.
    """
    if isinstance(value, str) and value in HEAD_GROUPINGS:
        return value
    allowed = ", ".join(repr(g) for g in HEAD_GROUPINGS)
    raise ValueError(f"{what} must be one of {allowed}, got {value!r}")


def grouped_key(grouping: str, robot_type: object, control_mode: object, position: int, name: str) -> HeadKey:
    """Return the head key of an entry under ``grouping`` (DESIGN §11 item 1).

    ``robot_control``: `head_key` (tags, else a fallback singleton); ``global``: the one whole-mixture head;
    ``dataset``: a head of the entry's own, named after it. The last two need no tags.
    """
    grouping = check_head_grouping(grouping, "grouping")
    if grouping == "global":
        return HeadKey.global_()
    if grouping == "dataset":
        return HeadKey.entry(position, name)
    return head_key(robot_type, control_mode, position, name)


def compute_norm_key(robot_type: object, control_mode: object, name: str) -> tuple[str, bool]:
    """Return ``(display key, fallback)`` for an entry.

    Args:
        robot_type: Effective robot type (mixture override, else ``info.json``).
        control_mode: Effective control mode (mixture override, else ``info.json``).
        name: The entry's unique name (``repo_id``, with ``#i`` when the repo id repeats).

    Returns:
        ``("<robot_type>::<control_mode>", False)`` (tags stripped) when both tags are usable, else
        ``(name, True)``: the entry becomes a singleton head named after itself. Display only: heads
        are grouped by :class:`HeadKey`.
    """
    if _has_tags(robot_type, control_mode):
        return HeadKey.tagged(robot_type, control_mode).display, False
    return name, True
