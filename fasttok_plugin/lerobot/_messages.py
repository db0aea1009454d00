"""How error messages list episode indices (long lists are cut, with the total)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["short_list"]


def short_list(values: Sequence[int], limit: int = 10) -> str:
    """``[1, 2, 3]``; past ``limit`` values the first ``limit``, ``...`` and the count (``[...] (25)``)."""
    shown = ", ".join(str(v) for v in values[:limit])
    return (
        f"[{shown}{', ...' if len(values) > limit else ''}] ({len(values)})"
        if len(values) > limit
        else f"[{shown}]"
    )
