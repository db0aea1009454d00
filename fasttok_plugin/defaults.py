"""Defaults shared by the mixture parser, the CLIs and the Lightning integration."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

DEFAULT_MAX_ACTION_DIM = 32
DEFAULT_CHUNK_SIZE = 50
#: How entries are grouped into norm heads (DESIGN §11 item 1): per ``(robot_type, control_mode)`` tag pair,
#: one head over the whole mixture, or one head per entry. The default keeps the pre-#11 heads.
HEAD_GROUPINGS = ("robot_control", "global", "dataset")
DEFAULT_HEAD_GROUPING = "robot_control"
#: Threads reading dataset metadata while a mixture is resolved. The reads are small files (JSON,
#: episode-table footers) whose time goes to system calls and pyarrow, which release the GIL.
DEFAULT_METADATA_THREADS = 4


def resolve_setting(argument: T | None, mixture_value: T | None, default: T) -> T:
    """The one defaulting rule: the explicit argument, else the mixture file's value, else the default.

    ``None`` means "not given" at both levels; any other value (even one a later check rejects, such as
    ``0``) is taken as given, so a bad value is reported instead of silently replaced by a default.
    """
    if argument is not None:
        return argument
    if mixture_value is not None:
        return mixture_value
    return default
