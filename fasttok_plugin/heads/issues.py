"""Problem records of the norm heads: what `build_norm_heads` met, for the caller to judge.

Every ``entry``/``entries`` field is an entry's position in ``ResolvedMixture.entries`` (for
`resolve_mixture` output, also its index in the mixture file). Head records (`NonFiniteStat`,
`FilledDim`, `IncompatibleDims`) name a head by its row and display key (``NormHeads.keys``). Each record
has ``message()``: one line naming the entry or head, the field and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DimOverflow",
    "DuplicateFallback",
    "FilledDim",
    "IncompatibleDims",
    "MissingTag",
    "NonFiniteStat",
    "SkippedEntry",
]


def _where(pointer: str) -> str:
    return f" at {pointer}" if pointer else ""


@dataclass(frozen=True, slots=True)
class MissingTag:
    """An entry whose tag is missing while the mixture sets ``require_non_empty_<field>``."""

    entry: int
    name: str
    field: str  # "robot_type" | "control_mode"
    value: object
    pointer: str = ""  # JSON pointer of the entry in the mixture file

    def message(self) -> str:
        """Return a one-line description naming the entry, the field and the fix."""
        return (
            f"entry {self.entry} ({self.name}): {self.field} is missing (value {self.value!r}) but "
            f'require_non_empty_{self.field} is set; add "{self.field}": "<{self.field}>" to the '
            f"entry{_where(self.pointer)} or to the dataset's meta/info.json"
        )


@dataclass(frozen=True, slots=True)
class DimOverflow:
    """An entry whose native action dim exceeds ``max_action_dim`` (excluded from pooling)."""

    entry: int
    name: str
    dim: int
    max_action_dim: int
    pointer: str = ""

    def message(self) -> str:
        """Return a one-line description naming the entry, the field and the fix."""
        return (
            f"entry {self.entry} ({self.name}): action dim {self.dim} exceeds max_action_dim "
            f"{self.max_action_dim}; raise max_action_dim to at least {self.dim} or remove the entry"
            f"{_where(self.pointer)}"
        )


@dataclass(frozen=True, slots=True)
class NonFiniteStat:
    """A non-finite (NaN or ±Inf) stat value that was masked out before pooling."""

    head: int
    key: str
    dim: int
    stat: str  # "min" | "max" | "mean" | "std"
    entries: tuple[int, ...]
    names: tuple[str, ...] = ()

    def message(self) -> str:
        """Return a one-line description of the masked values."""
        who = ", ".join(f"{i} ({n})" for i, n in zip(self.entries, self.names, strict=False)) or str(
            self.entries
        )
        return (
            f"head {self.head} ({self.key}): non-finite {self.stat} in dim {self.dim} from entries {who}; "
            f"masked before pooling (fix the dataset's meta/stats.json)"
        )


@dataclass(frozen=True, slots=True)
class FilledDim:
    """A head dim where no member had a finite value, filled with a default.

    ``stats`` says what was filled: ``("min", "max")`` -> ``[-1, 1]``; ``("mean", "std")`` -> ``0, 1``.
    """

    head: int
    key: str
    dim: int
    stats: tuple[str, ...] = ("min", "max")

    def message(self) -> str:
        """Return a one-line description naming the head, the dim and the fix."""
        filled = []
        if "min" in self.stats:
            filled.append("min/max filled with [-1, 1]")
        if "mean" in self.stats:
            filled.append("mean/std filled with 0/1")
        return (
            f"head {self.head} ({self.key}): dim {self.dim} has no finite {'/'.join(self.stats)} in any "
            f"member; {' and '.join(filled)}; fix the members' meta/stats.json"
        )


@dataclass(frozen=True, slots=True)
class IncompatibleDims:
    """Entries sharing a (non-fallback) head key but with different native action dims."""

    head: int
    key: str
    dims: tuple[tuple[int, int], ...]  # (entry position, native dim)
    names: tuple[str, ...] = ()

    def message(self) -> str:
        """Return a one-line description naming the entries and the fix."""
        names = self.names or tuple(str(i) for i, _ in self.dims)
        who = ", ".join(f"entry {i} ({n}) d={d}" for (i, d), n in zip(self.dims, names, strict=False))
        return (
            f"head {self.head} ({self.key}): members have different action dims: {who}; "
            f"give them distinct robot_type/control_mode overrides or fix the action_key"
        )


@dataclass(frozen=True, slots=True)
class DuplicateFallback:
    """The same ``repo_id`` listed more than once without usable tags (identical singleton heads)."""

    repo_id: str
    entries: tuple[int, ...]
    names: tuple[str, ...] = ()

    def message(self) -> str:
        """Return a one-line description and the likely fix."""
        return (
            f"repo_id {self.repo_id!r} appears in fallback entries {list(self.entries)} "
            f"({', '.join(self.names)}): each becomes its own singleton head instead of sharing one "
            f"(identical stats unless their episode selections differ); remove the duplicate or set "
            f"robot_type/control_mode on the entries"
        )


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """An entry that got no head: its metadata or stats could not be read."""

    entry: int
    name: str
    reason: str
    pointer: str = ""

    def message(self) -> str:
        """Return a one-line description naming the entry and the reason (which carries the fix)."""
        label = f"entry {self.entry} ({self.name})"
        if label in self.reason:  # dataset errors already name the entry: don't say it twice
            return f"{self.reason} (entry skipped, no norm head{_where(self.pointer)})"
        return f"{label}{_where(self.pointer)} was skipped (no norm head): {self.reason}"
