"""What a check sees (:class:`PreflightContext`) and how plugins declare options (:class:`OptionRegistry`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from fasttok_plugin.preflight.findings import Finding, PreflightUsageError, Severity

if TYPE_CHECKING:
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.mixture import DatasetEntry, MixtureConfig
    from fasttok_plugin.resolve import ResolvedEntry, ResolvedMixture

__all__ = ["RESERVED_OPTIONS", "Option", "OptionRegistry", "PreflightContext"]

# Options the preflight itself owns (CLI flags and pyproject keys); plugins cannot redeclare them.
RESERVED_OPTIONS = frozenset(
    {
        "max_action_dim",
        "chunk_size",
        "head_grouping",
        "format",
        "select",
        "ignore",
        "strict",
        "plugins",
        "color",
        "help",
        "jobs",
        "skip_fragments",
    }
)


def option_key(name: str) -> str:
    """Canonical option name: ``min-frames`` and ``min_frames`` are the same option."""
    return name.strip().lstrip("-").replace("-", "_")


@dataclass(frozen=True, slots=True)
class Option:
    """A plugin option: ``--min-frames`` on the CLI, ``min_frames`` in pyproject and ``options=``.

    Attributes:
        name: Canonical name (underscores).
        type: ``int``, ``float``, ``str``, ``bool`` (a CLI flag) or any callable parsing a string.
        default: Value when nobody sets it.
        help: One line for ``--help``.
        metavar: Placeholder in ``--help``.
        plugin: Name of the plugin that declared it.
    """

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str
    metavar: str | None
    plugin: str

    @property
    def flag(self) -> str:
        """The CLI flag (``--min-frames``)."""
        return "--" + self.name.replace("_", "-")

    def coerce(self, value: Any, *, source: str) -> Any:
        """Convert ``value`` (a string from the CLI, or a TOML/Python value) to the option's type.

        Raises:
            PreflightUsageError: When the value does not fit the type, naming the option and the source.
        """
        kind = self.type
        try:
            if kind is bool:
                if isinstance(value, bool):
                    return value
                if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
                    return _BOOL_WORDS[value.strip().lower()]
                raise ValueError
            if kind in (int, float):
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    raise ValueError
                if kind is int and isinstance(value, float):
                    if not value.is_integer():
                        raise ValueError
                    return int(value)
                return kind(value)
            if kind is str:
                if not isinstance(value, str):
                    raise ValueError
                return value
            return kind(value) if isinstance(value, str) else value
        except (TypeError, ValueError) as exc:
            type_name = getattr(kind, "__name__", repr(kind))
            raise PreflightUsageError(
                f"option {self.name!r} (from {source}): {value!r} is not a valid {type_name}"
                f" (declared by plugin {self.plugin!r})"
            ) from exc


_BOOL_WORDS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


class OptionRegistry:
    """Collects the options plugins declare in ``fasttok_add_options``."""

    def __init__(self, *, plugin: str = "?") -> None:
        self._options: dict[str, Option] = {}
        self._plugin = plugin  # the manager gives every plugin a registry of its own, named after it

    @property
    def plugin(self) -> str:
        """The plugin whose declarations this registry collects (``?`` when unknown)."""
        return self._plugin

    def add(
        self,
        name: str,
        *,
        type: Callable[[str], Any] = str,
        default: Any = None,
        help: str = "",
        metavar: str | None = None,
    ) -> None:
        """Declare an option.

        Args:
            name: ``min_frames`` (the CLI flag becomes ``--min-frames``).
            type: ``int``, ``float``, ``str``, ``bool`` or a callable parsing a string.
            default: Value when unset.
            help: One line for ``--help``.
            metavar: Placeholder in ``--help``.

        Raises:
            PreflightUsageError: When the name is reserved or already declared by another plugin.
        """
        key = option_key(name)
        if not key.isidentifier():
            raise PreflightUsageError(f"plugin {self._plugin!r} declares an invalid option name {name!r}")
        if key in RESERVED_OPTIONS:
            raise PreflightUsageError(f"plugin {self._plugin!r} declares option {key!r}, which is reserved")
        self._insert(Option(key, type, default, help, metavar, self._plugin))

    def merge(self, other: OptionRegistry) -> None:
        """Add every option of ``other`` (the manager merges the plugins' registries in registration order).

        Raises:
            PreflightUsageError: When a name is already declared here.
        """
        for option in other:
            self._insert(option)

    def _insert(self, option: Option) -> None:
        if option.name in self._options:
            first = self._options[option.name].plugin
            raise PreflightUsageError(
                f"option {option.name!r} is declared by both {first!r} and {option.plugin!r}"
            )
        self._options[option.name] = option

    def __iter__(self) -> Iterator[Option]:
        return iter(self._options.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and option_key(name) in self._options

    def __len__(self) -> int:
        return len(self._options)

    def get(self, name: str) -> Option | None:
        """The option called ``name`` (dashes or underscores), or None."""
        return self._options.get(option_key(name))

    def resolve(self, *layers: tuple[Mapping[str, Any], str]) -> dict[str, Any]:
        """Merge ``(values, source)`` layers over the defaults; later layers win.

        Raises:
            PreflightUsageError: For a value of the wrong type or an option nobody declared.
        """
        values = {o.name: o.default for o in self._options.values()}
        for mapping, source in layers:
            for raw_key, raw_value in mapping.items():
                option = self.get(raw_key)
                if option is None:
                    known = ", ".join(sorted(self._options)) or "none"
                    raise PreflightUsageError(
                        f"unknown option {raw_key!r} (from {source}); options declared by plugins: {known}"
                    )
                if raw_value is None:
                    continue
                values[option.name] = option.coerce(raw_value, source=source)
        return values


def fit_transforms(config: MixtureConfig, transform: Any) -> tuple[Any, ...]:
    """Each entry's transform: a per-entry tuple as given (a sampler's), else the argument, else the
    mixture's keys (`MixtureConfig.entry_transforms`)."""
    return tuple(transform) if isinstance(transform, tuple) else config.entry_transforms(transform)


def uses_data_stats(
    config: MixtureConfig, transform: Any, normalization: str | None, stats_source: str | None
) -> bool:
    """The fit's stats come from the frames: ``stats_source``, else its default (quantile modes and
    transformed actions take ``"data"``, as `FitSettings` resolves it)."""
    if stats_source is not None:
        return stats_source == "data"
    if normalization in ("quantile", "quantile10"):
        return True
    return any(t is not None and not t.is_identity for t in fit_transforms(config, transform))


@dataclass(frozen=True)
class PreflightContext:
    """What every check receives: the parsed mixture, its resolved entries, the norm heads and the options.

    Attributes:
        config: The parsed mixture.
        resolved: Per-entry metadata (``entries[i].meta`` or ``entries[i].error``).
        norm_heads: The norm heads, or None when building them failed (see ``norm_heads_error``).
        norm_heads_error: The exception that prevented building the heads, if any.
        max_action_dim: The policy's action dim the mixture is checked against.
        chunk_size: Steps per action chunk.
        strict: Whether the run is strict (checks may escalate; warnings become errors anyway).
        options: Values of plugin-declared options (read-only).
        transform: The fit's transform argument (`ActionTransform`), replacing the mixture's transform
            keys; a tuple: each entry's (a sampler's ``transforms``); None: the mixture's keys.
        normalization: The fit's normalization mode, when the caller knows it (None: not checked).
        stats_source: The fit's stats source as given (None: its default).
    """

    config: MixtureConfig
    resolved: ResolvedMixture
    norm_heads: NormHeads | None
    norm_heads_error: Exception | None
    max_action_dim: int
    chunk_size: int
    strict: bool = False
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    transform: Any = None
    normalization: str | None = None
    stats_source: str | None = None

    @property
    def data_stats(self) -> bool:
        """The fit computes its stats from the frames (`uses_data_stats`, or heads that already hold them)."""
        if getattr(self.norm_heads, "stats_source", None) == "data":
            return True
        return uses_data_stats(self.config, self.transform, self.normalization, self.stats_source)

    @property
    def entries(self) -> tuple[ResolvedEntry, ...]:
        """The resolved entries, in mixture order."""
        return self.resolved.entries

    @property
    def action_freq(self) -> float | None:
        """Target frequency of chunks in Hz (None: each dataset's native fps)."""
        return self.config.action_freq

    def line_of(self, pointer: str) -> int | None:
        """Line of ``pointer`` (or its closest enclosing value) in the file it was written in."""
        return self.location_of(pointer)[1]

    def finding(
        self,
        code: str,
        severity: Severity | str,
        message: str,
        *,
        entry: int | ResolvedEntry | DatasetEntry | None = None,
        field: str | None = None,
        pointer: str | None = None,
        hint: str = "",
        file: Path | None = None,
        line: int | None = None,
    ) -> Finding:
        """Build a :class:`Finding` with entry name, pointer, file and line filled in.

        Args:
            code: Stable code (use your own prefix in third-party plugins).
            severity: ``"error"``, ``"warning"`` or ``"info"``.
            message: One line.
            entry: The dataset entry (index, ``ResolvedEntry`` or ``DatasetEntry``), if any.
            field: A field of the entry (``"robot_type"``) to point at when it exists in the file.
            pointer: An explicit JSON pointer (overrides ``entry``/``field``).
            hint: The fix.
            file: File of the location (default: the mixture file).
            line: Line (default: looked up from the pointer).
        """
        index: int | None = None
        name: str | None = None
        entry_pointer = ""
        if entry is not None:
            index = entry if isinstance(entry, int) else entry.index
            resolved_entry = self.resolved.entries[index]
            name = resolved_entry.name
            entry_pointer = resolved_entry.entry.pointer
        if pointer is None:
            pointer = entry_pointer
            if field is not None and entry_pointer and self.has_pointer(f"{entry_pointer}/{field}"):
                pointer = f"{entry_pointer}/{field}"
        if line is None and file is None:
            file, line = self.location_of(pointer)
        return Finding(
            code=code,
            severity=Severity(severity),
            message=message,
            entry_index=index,
            entry_name=name,
            pointer=pointer,
            hint=hint,
            line=line,
            file=file if file is not None else self.config.path,
        )

    def location_of(self, pointer: str) -> tuple[Path | None, int | None]:
        """``(file, line)`` of ``pointer`` (or its closest enclosing value), in the mixture or an include."""
        try:
            return self.config.location_of(pointer)
        except Exception:  # a hand-built config without locations: no line, the mixture file
            return (self.config.path, None)

    def has_pointer(self, pointer: str) -> bool:
        """Whether ``pointer`` exists in the mixture document (e.g. an entry's ``robot_type`` override)."""
        return pointer in getattr(self.config, "locations", {})
