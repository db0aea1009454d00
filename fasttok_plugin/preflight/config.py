"""Defaults from ``[tool.fasttok.preflight]`` in the nearest ``pyproject.toml`` (the CLI overrides them)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fasttok_plugin._validate import MAX_ACTION_DIM, positive_int
from fasttok_plugin.preflight.context import option_key
from fasttok_plugin.preflight.findings import PreflightUsageError

__all__ = ["BUILTIN_KEYS", "ProjectConfig", "find_project_config"]

TABLE = "[tool.fasttok.preflight]"

# Keys the preflight itself understands; any other key must be an option declared by a plugin.
BUILTIN_KEYS = ("max_action_dim", "chunk_size", "format", "select", "ignore", "strict", "plugins")


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """The ``[tool.fasttok.preflight]`` table of a ``pyproject.toml``.

    Attributes:
        path: The pyproject.toml it came from (None: no table found).
        builtin: Validated values of :data:`BUILTIN_KEYS` present in the table.
        plugin_options: The remaining keys (options declared by plugins), unvalidated.
    """

    path: Path | None = None
    builtin: Mapping[str, Any] = field(default_factory=dict)
    plugin_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """``/repo/pyproject.toml [tool.fasttok.preflight]`` for messages."""
        return f"{self.path} {TABLE}"

    def check_plugin_keys(self, known: set[str]) -> None:
        """Raise for keys that neither the preflight nor any loaded plugin declares (typos must not pass).

        Raises:
            PreflightUsageError: Naming the key, the file and the closest known key.
        """
        for key in self.plugin_options:
            if key not in known:
                candidates = sorted(set(BUILTIN_KEYS) | known)
                close = difflib.get_close_matches(key, candidates, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(candidates)}"
                raise PreflightUsageError(f"unknown key {key!r} in {self.source}{hint}")


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: tomli is the same parser under its old name
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except UnicodeDecodeError as exc:
        raise PreflightUsageError(
            f"cannot read {path}: not UTF-8 (byte {exc.start}); TOML files must be UTF-8, save it as UTF-8"
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PreflightUsageError(f"cannot read {path}: {exc}") from exc


def _preflight_table(path: Path, document: Mapping[str, Any]) -> Any:
    """``document["tool"]["fasttok"]["preflight"]`` (None when absent).

    Raises:
        PreflightUsageError: ``tool`` or ``tool.fasttok`` is there but not a table.
    """
    value: Any = document
    for depth, key in enumerate(("tool", "fasttok")):
        value = value.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            name = ".".join(("tool", "fasttok")[: depth + 1])
            raise PreflightUsageError(
                f"{path}: {name} must be a table, got {value!r}; write [{name}] (or remove the key)"
            )
    return value.get("preflight")


def find_project_config(start: Path) -> ProjectConfig:
    """Walk up from folder ``start`` to the nearest ``pyproject.toml`` with ``[tool.fasttok.preflight]``.

    Raises:
        PreflightUsageError: An unreadable pyproject.toml on the way, or a value of the wrong type.
    """
    folder = Path(start).resolve()
    for candidate_dir in (folder, *folder.parents):
        candidate = candidate_dir / "pyproject.toml"
        try:
            if not candidate.is_file():
                continue
        except (OSError, ValueError):  # a folder name longer than the system allows: no config there
            continue
        document = _load_toml(candidate)
        table = _preflight_table(candidate, document)
        if table is None:
            continue
        if not isinstance(table, dict):
            raise PreflightUsageError(f"{candidate}: [tool.fasttok] preflight must be a table")
        return _parse_table(candidate, table)
    return ProjectConfig()


def _parse_table(path: Path, table: Mapping[str, Any]) -> ProjectConfig:
    source = f"{path} {TABLE}"
    builtin: dict[str, Any] = {}
    plugin_options: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = option_key(raw_key)
        if key not in BUILTIN_KEYS:
            plugin_options[key] = value
            continue
        if key in ("max_action_dim", "chunk_size"):
            maximum = MAX_ACTION_DIM if key == "max_action_dim" else None
            value = positive_int(value, f"{source}: {raw_key}", PreflightUsageError, maximum=maximum)
        elif key == "format":
            from fasttok_plugin.preflight.formats import FORMATS

            if value not in FORMATS:
                raise PreflightUsageError(
                    f"{source}: format must be one of {', '.join(FORMATS)}, got {value!r}"
                )
        elif key == "strict":
            if not isinstance(value, bool):
                raise PreflightUsageError(f"{source}: strict must be true or false, got {value!r}")
        else:  # select, ignore, plugins: a list of strings (or one comma-separated string)
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PreflightUsageError(f"{source}: {raw_key} must be a list of strings, got {value!r}")
        builtin[key] = value
    return ProjectConfig(path=path, builtin=builtin, plugin_options=plugin_options)
