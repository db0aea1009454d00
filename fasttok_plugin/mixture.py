"""Parse and validate a mixture file (DESIGN §3) into a :class:`MixtureConfig`.

The file is OpenTau-style JSON, bare or wrapped in ``{"dataset_mixture": {...}}``. ``{"$ref": "other.json"}``
may stand anywhere a value is expected: it inlines that file (relative to the including file) and sibling
keys deep-merge over it. Every problem carries the JSON pointer of the offending value in the *merged*
document and, where known, the file and line it came from.

Line numbers come from a small scanner that walks the (already validated) JSON text once and records the
line on which every value starts, keyed by its JSON pointer inside that file (an entry's line is the line
of its opening brace). ``$ref`` expansion keeps a map from merged pointers to ``(file, pointer in file)``,
so a problem inside an included file points at that file and line.
"""

from __future__ import annotations

import bisect
import difflib
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fasttok_plugin.defaults import lerobot_home
from fasttok_plugin.errors import MixtureError

__all__ = [
    "DatasetEntry",
    "MixtureConfig",
    "MixtureError",
    "MixtureProblem",
    "UnknownKey",
    "load_mixture",
    "parse_mixture",
]

WRAPPER_KEY = "dataset_mixture"
REF_KEY = "$ref"
TOP_LEVEL_KEYS = (
    "datasets",
    "weights",
    "action_freq",
    "require_non_empty_robot_type",
    "require_non_empty_control_mode",
    "max_action_dim",
    "chunk_size",
)
ENTRY_KEYS = (
    "repo_id",
    "root",
    "robot_type",
    "control_mode",
    "episodes",
    "excluded_episodes",
    "weight",
    "action_key",
    "data_features_name_mapping",
    "revision",
)


@dataclass(frozen=True, slots=True)
class MixtureProblem:
    """One problem in a mixture file.

    Attributes:
        pointer: JSON pointer of the offending value in the merged document (``""`` for the whole file).
        message: What is wrong.
        hint: How to fix it.
        line: 1-based line of the value in ``file``, when known.
        file: File the value came from (the mixture or a ``$ref``-included file).
    """

    pointer: str
    message: str
    hint: str = ""
    line: int | None = None
    file: Path | None = None

    def __str__(self) -> str:
        where = str(self.file) if self.file is not None else "<mixture>"
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: {self.pointer or '/'}: {self.message}"
        return f"{text} (fix: {self.hint})" if self.hint else text


@dataclass(frozen=True, slots=True)
class UnknownKey:
    """A key the mixture schema does not know (often a typo), with the closest known key."""

    pointer: str
    key: str
    suggestion: str | None
    line: int | None
    file: Path | None = None


@dataclass(frozen=True, slots=True)
class DatasetEntry:
    """One entry of ``datasets``, validated.

    Attributes:
        index: Position in ``datasets``.
        repo_id: Hugging Face repo id (also the dataset name, see ``resolve.dataset_names``).
        root: Absolute local dataset folder (relative roots resolve against the mixture file's folder;
            default ``$HF_LEROBOT_HOME/<repo_id>``).
        robot_type: Override of ``info.json``'s ``robot_type`` (``None``: no override).
        control_mode: Override of ``info.json``'s ``control_mode`` (``None``: no override).
        episodes: Selected episode indices, as given.
        excluded_episodes: Excluded episode indices, as given.
        weight: Per-entry ``weight`` as given (``None`` when absent).
        action_key: Native action column (``action_key`` or ``data_features_name_mapping.actions``).
        revision: Recorded only.
        pointer: JSON pointer of the entry (``/datasets/3`` or ``/dataset_mixture/datasets/3``).
        line: Line of the entry's opening brace in ``file``.
        file: File the entry was written in (differs from the mixture when it came from a ``$ref``).
    """

    index: int
    repo_id: str
    root: Path
    robot_type: str | None
    control_mode: str | None
    episodes: tuple[int, ...] | None
    excluded_episodes: tuple[int, ...] | None
    weight: float | None
    action_key: str | None
    revision: str | None
    pointer: str
    line: int | None
    file: Path | None = None


@dataclass(frozen=True, slots=True)
class MixtureConfig:
    """A parsed, validated mixture.

    Attributes:
        path: The mixture file (``None`` when parsed from a document).
        datasets: The entries, in file order.
        weights: One per dataset as given (default 1.0); invalid values are kept (non-numbers become NaN)
            and reported in ``problems``.
        weights_pointer: Where the weights came from (``/weights`` or ``/datasets``, with the wrapper prefix).
        action_freq: Resampling rate in Hz, ``None`` for each dataset's native fps.
        require_non_empty_robot_type: Entries without a usable ``robot_type`` are errors.
        require_non_empty_control_mode: Entries without a usable ``control_mode`` are errors.
        max_action_dim: Optional default for the padded action dim.
        chunk_size: Optional default chunk size.
        unknown_keys: Keys the schema does not know, with suggestions.
        problems: Non-fatal problems (bad weights) for the preflight to report.
        sha256: sha256 of the canonical (sorted keys) merged document.
        locations: Merged JSON pointer -> ``(file, line)`` of every value (see :meth:`line_of`).
    """

    path: Path | None
    datasets: tuple[DatasetEntry, ...]
    weights: tuple[float, ...]
    weights_pointer: str
    action_freq: float | None
    require_non_empty_robot_type: bool
    require_non_empty_control_mode: bool
    max_action_dim: int | None
    chunk_size: int | None
    unknown_keys: tuple[UnknownKey, ...]
    problems: tuple[MixtureProblem, ...]
    sha256: str
    prefix: str = ""
    locations: Mapping[str, tuple[Path | None, int | None]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def line_of(self, pointer: str) -> int | None:
        """Line (1-based) where the value at ``pointer`` starts, in the file it was written in."""
        return self.location_of(pointer)[1]

    def location_of(self, pointer: str) -> tuple[Path | None, int | None]:
        """``(file, line)`` of the value at ``pointer``; falls back to the closest enclosing value."""
        return _closest(pointer, self.locations.get, (self.path, None))


def _closest(
    pointer: str,
    lookup: Callable[[str], tuple[Path | None, int | None] | None],
    default: tuple[Path | None, int | None],
) -> tuple[Path | None, int | None]:
    """``lookup`` of ``pointer`` or of its closest enclosing pointer (a value may lack its own line)."""
    current = pointer
    while True:
        found = lookup(current)
        if found is not None:
            return found
        if not current:
            return default
        current = current.rsplit("/", 1)[0]


# ---------------------------------------------------------------------------------------------------------
# JSON reading with a line index


class _Source:
    """A JSON file's text and the line on which each value (by JSON pointer in that file) starts."""

    def __init__(self, path: Path | None, text: str | None, base_dir: Path | None = None) -> None:
        self.path = path
        # Folder that $ref paths written in this source resolve against.
        self.base_dir = (
            base_dir if base_dir is not None else (path.parent if path is not None else Path.cwd())
        )
        self.lines: dict[str, int] = {}
        # (pointer, line) of keys repeated inside one object: JSON would silently keep the last one.
        self.duplicates: list[tuple[str, int]] = []
        if text is not None:
            try:
                _index_lines(text, self.lines, self.duplicates)
            except (ValueError, IndexError, RecursionError):
                # The index is best effort: json already accepted the text, lines are only decoration.
                self.lines = {}
                self.duplicates = []

    def line(self, pointer: str) -> int | None:
        return self.lines.get(pointer)


_NUMBER = re.compile(r"-?(?:Infinity|(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?)|NaN|true|false|null")
_WS = re.compile(r"[ \t\n\r]*")


def _index_lines(text: str, out: dict[str, int], duplicates: list[tuple[str, int]]) -> None:
    """Record, for every value in ``text``, the 1-based line where it starts, keyed by JSON pointer.

    Keys repeated within one object are appended to ``duplicates`` as ``(pointer, line)``.
    """
    newlines = [m.start() for m in re.finditer("\n", text)]

    def line_at(pos: int) -> int:
        return bisect.bisect_left(newlines, pos) + 1

    scanstring = json.decoder.scanstring  # type: ignore[attr-defined]

    def skip_ws(pos: int) -> int:
        return _WS.match(text, pos).end()  # type: ignore[union-attr]

    def value(pos: int, pointer: str) -> int:
        pos = skip_ws(pos)
        out[pointer] = line_at(pos)
        char = text[pos]
        if char == "{":
            pos = skip_ws(pos + 1)
            if text[pos] == "}":
                return pos + 1
            seen: set[str] = set()
            while True:
                key_line = line_at(pos)
                key, pos = scanstring(text, pos + 1)
                if key in seen:
                    duplicates.append((_pointer_join(pointer, key), key_line))
                seen.add(key)
                pos = skip_ws(pos)  # at ':'
                pos = value(pos + 1, _pointer_join(pointer, key))
                pos = skip_ws(pos)
                if text[pos] == "}":
                    return pos + 1
                pos = skip_ws(pos + 1)  # after ',' at the next key's quote
        if char == "[":
            pos = skip_ws(pos + 1)
            if text[pos] == "]":
                return pos + 1
            index = 0
            while True:
                pos = value(pos, f"{pointer}/{index}")
                pos = skip_ws(pos)
                if text[pos] == "]":
                    return pos + 1
                pos += 1
                index += 1
        if char == '"':
            return scanstring(text, pos + 1)[1]
        match = _NUMBER.match(text, pos)
        if match is None:
            raise ValueError(f"unexpected character at {pos}")
        return match.end()

    value(0, "")


def _pointer_join(pointer: str, key: str | int) -> str:
    token = str(key).replace("~", "~0").replace("/", "~1")
    return f"{pointer}/{token}"


def _read_json(path: Path, *, chain: list[Path], pointer: str, including: Path | None) -> tuple[Any, _Source]:
    """Read a JSON file (NaN/Infinity accepted); raise an unreadable MixtureError naming the include chain."""
    via = _chain_text(chain)
    # The MixtureError names the top-level mixture file (None when parsing an in-memory document).
    error_path = chain[0] if chain else (path if including is None else None)
    try:
        # utf-8-sig: a byte-order mark some editors write is not a JSON error.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        if including is None:
            problem = MixtureProblem("", f"mixture file not found: {path}", "check the path", None, path)
        else:
            problem = MixtureProblem(
                pointer,
                f"$ref target not found: {path} (include chain: {via} -> {path.name})",
                "fix the $ref path; it is relative to the including file's folder",
                None,
                including,
            )
        raise MixtureError([problem], unreadable=True, path=error_path) from None
    except (OSError, UnicodeDecodeError) as exc:
        problem = MixtureProblem(
            pointer, f"cannot read {path}: {exc}", "check the file", None, including or path
        )
        raise MixtureError([problem], unreadable=True, path=error_path) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        suffix = f" (include chain: {via} -> {path.name})" if including is not None else ""
        problem = MixtureProblem(
            "",
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{suffix}",
            "fix the JSON syntax at that position (trailing commas and comments are not JSON)",
            exc.lineno,
            path,
        )
        raise MixtureError([problem], unreadable=True, path=error_path) from None
    except RecursionError:
        problem = MixtureProblem("", "JSON nested too deeply", "flatten the document", None, path)
        raise MixtureError([problem], unreadable=True, path=error_path) from None
    return document, _Source(path, text)


def _chain_text(chain: list[Path]) -> str:
    return " -> ".join(p.name for p in chain) if chain else "<document>"


# ---------------------------------------------------------------------------------------------------------
# $ref expansion


class _Expander:
    """Inline ``$ref`` includes and remember where every merged value came from."""

    def __init__(self) -> None:
        self.origins: dict[str, tuple[_Source, str]] = {}
        self.problems: list[MixtureProblem] = []
        self._cache: dict[Path, tuple[Any, _Source]] = {}

    def report_duplicates(self, source: _Source, mptr: str) -> None:
        """Record keys repeated within one object of ``source`` (included at merged pointer ``mptr``)."""
        for fptr, line in source.duplicates:
            key = fptr.rsplit("/", 1)[1].replace("~1", "/").replace("~0", "~")
            self.problems.append(
                MixtureProblem(
                    mptr + fptr,
                    f"key '{key}' appears more than once in the same object; JSON would silently keep "
                    "only the last value",
                    "remove the duplicate key",
                    line,
                    source.path,
                )
            )

    def expand(self, value: Any, source: _Source, fptr: str, mptr: str, chain: list[Path]) -> Any:
        self.origins[mptr] = (source, fptr)
        if isinstance(value, dict):
            if REF_KEY in value:
                return self._include(value, source, fptr, mptr, chain)
            return {
                k: self.expand(v, source, _pointer_join(fptr, k), _pointer_join(mptr, k), chain)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.expand(v, source, f"{fptr}/{i}", f"{mptr}/{i}", chain) for i, v in enumerate(value)]
        return value

    def _include(self, value: dict, source: _Source, fptr: str, mptr: str, chain: list[Path]) -> Any:
        ref = value[REF_KEY]
        ref_ptr = _pointer_join(fptr, REF_KEY)
        if not isinstance(ref, str) or not ref.strip():
            self.problems.append(
                MixtureProblem(
                    _pointer_join(mptr, REF_KEY),
                    f"$ref must be a non-empty file path string, got {ref!r}",
                    'write "$ref": "other.json"',
                    source.line(ref_ptr),
                    source.path,
                )
            )
            return None
        target = Path(os.path.abspath(source.base_dir / Path(ref).expanduser()))
        if target in chain:
            cycle = " -> ".join(p.name for p in [*chain, target])
            problem = MixtureProblem(
                _pointer_join(mptr, REF_KEY),
                f"$ref cycle: {cycle}",
                "remove the $ref that includes a file already being included",
                source.line(ref_ptr),
                source.path,
            )
            raise MixtureError([problem], unreadable=True, path=chain[0] if chain else None)
        if target not in self._cache:
            self._cache[target] = _read_json(
                target, chain=chain, pointer=_pointer_join(mptr, REF_KEY), including=source.path
            )
            self.report_duplicates(self._cache[target][1], mptr)
        document, target_source = self._cache[target]
        included = self.expand(document, target_source, "", mptr, [*chain, target])
        siblings = {
            k: self.expand(v, source, _pointer_join(fptr, k), _pointer_join(mptr, k), chain)
            for k, v in value.items()
            if k != REF_KEY
        }
        # The including object is where a reader looks for this value.
        self.origins[mptr] = (source, fptr)
        if not siblings:
            return included
        if not isinstance(included, dict):
            self.problems.append(
                MixtureProblem(
                    mptr,
                    f"$ref {ref!r} includes a {_type_name(included)}, so the sibling keys "
                    f"{sorted(siblings)} cannot be merged over it",
                    "only objects can be extended with sibling keys; move the keys into the included file",
                    source.line(fptr),
                    source.path,
                )
            )
            return included
        return _deep_merge(included, siblings)


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# ---------------------------------------------------------------------------------------------------------
# validation


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Validator:
    def __init__(self, expander: _Expander, path: Path | None) -> None:
        self.expander = expander
        self.path = path
        self.fatal: list[MixtureProblem] = []
        self.soft: list[MixtureProblem] = []
        self.unknown: list[UnknownKey] = []

    def location(self, pointer: str) -> tuple[Path | None, int | None]:
        def lookup(ptr: str) -> tuple[Path | None, int | None] | None:
            origin = self.expander.origins.get(ptr)
            return None if origin is None else (origin[0].path, origin[0].line(origin[1]))

        return _closest(pointer, lookup, (self.path, None))

    def problem(self, pointer: str, message: str, hint: str = "", *, fatal: bool = True) -> None:
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
        for key in obj:
            if key in known:
                continue
            matches = difflib.get_close_matches(key, suggest or known, n=1, cutoff=0.6)
            key_ptr = _pointer_join(pointer, key)
            file, line = self.location(key_ptr)
            self.unknown.append(UnknownKey(key_ptr, key, matches[0] if matches else None, line, file))

    def optional_str(
        self, obj: Mapping[str, Any], key: str, pointer: str, hint: str, label: str = ""
    ) -> str | None:
        value = obj.get(key)
        if value is None or isinstance(value, str):
            return value
        self.problem(
            _pointer_join(pointer, key),
            f"{_field(label, key)} must be a string or null, got {_type_name(value)} {value!r}",
            hint,
        )
        return None

    def flag(self, obj: Mapping[str, Any], key: str, pointer: str) -> bool:
        value = obj.get(key, False)
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        self.problem(
            _pointer_join(pointer, key),
            f"{key} must be true or false, got {_type_name(value)} {value!r}",
            f'write "{key}": true or false (JSON booleans, not strings)',
        )
        return False

    def positive_int(self, obj: Mapping[str, Any], key: str, pointer: str) -> int | None:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, float) and value.is_integer() and value > 0:
            return int(value)
        self.problem(
            _pointer_join(pointer, key),
            f"{key} must be a positive integer or null, got {value!r}",
            f"set {key} to a positive integer, or remove it to use the default",
        )
        return None

    def episode_list(
        self, obj: Mapping[str, Any], key: str, pointer: str, label: str = ""
    ) -> tuple[int, ...] | None:
        value = obj.get(key)
        if value is None:
            return None
        ptr = _pointer_join(pointer, key)
        if not isinstance(value, list):
            self.problem(
                ptr,
                f"{_field(label, key)} must be a list of episode indices, got {_type_name(value)}",
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
                    f"{_field(label, key)}[{i}] must be a non-negative integer episode index, got {item!r}",
                    "use integer episode indices as in meta/episodes",
                )
                continue
            if item in seen:
                self.problem(
                    f"{ptr}/{i}", f"{_field(label, key)} lists episode {item} twice", "list each episode once"
                )
                continue
            seen.add(item)
            out.append(item)
        return tuple(out)


def _entry_label(raw: Any, index: int) -> str:
    repo_id = raw.get("repo_id") if isinstance(raw, dict) else None
    return f"datasets[{index}] ({repo_id})" if isinstance(repo_id, str) and repo_id else f"datasets[{index}]"


def _field(label: str, key: str) -> str:
    return f"{label}.{key}" if label else key


def _check_weight(validator: _Validator, value: Any, pointer: str, label: str) -> float:
    """Return the weight as a float (NaN for non-numbers), recording problems as non-fatal."""
    if not _is_number(value):
        validator.problem(
            pointer,
            f"{label} must be a number, got {_type_name(value)} {value!r}",
            "use a non-negative finite number",
            fatal=False,
        )
        return math.nan
    weight = float(value)
    if math.isnan(weight) or math.isinf(weight):
        validator.problem(
            pointer, f"{label} is {weight}, not finite", "use a non-negative finite number", fatal=False
        )
    elif weight < 0:
        validator.problem(
            pointer,
            f"{label} is negative ({weight})",
            "use a non-negative weight (0 disables the entry)",
            fatal=False,
        )
    return weight


def _parse_document(document: Any, *, base_dir: Path, path: Path | None, source: _Source) -> MixtureConfig:
    expander = _Expander()
    expander.report_duplicates(source, "")
    chain = [path] if path is not None else []
    merged = expander.expand(document, source, "", "", chain)
    validator = _Validator(expander, path)
    validator.fatal.extend(expander.problems)

    prefix = ""
    body: Any = merged
    if isinstance(merged, dict) and WRAPPER_KEY in merged:
        prefix = "/" + WRAPPER_KEY
        body = merged[WRAPPER_KEY]
        validator.check_keys(merged, "", (WRAPPER_KEY,))
    if not isinstance(body, dict):
        validator.problem(
            prefix,
            f"the mixture must be a JSON object, got {_type_name(body)}",
            'write {"datasets": [...]} or {"dataset_mixture": {"datasets": [...]}}',
        )
        raise MixtureError(validator.fatal, path=path)
    # A bare document may also carry a misspelt wrapper ("dataset_mixtures"): suggest it too.
    wrapper = (WRAPPER_KEY,) if not prefix else ()
    validator.check_keys(body, prefix, TOP_LEVEL_KEYS, suggest=TOP_LEVEL_KEYS + wrapper)

    datasets_ptr = prefix + "/datasets"
    raw_datasets = body.get("datasets")
    entries: list[DatasetEntry] = []
    if raw_datasets is None:
        near = [u for u in validator.unknown if u.pointer.count("/") == datasets_ptr.count("/")]
        found = "; unknown keys here: " + ", ".join(
            f"'{u.key}'" + (f" (did you mean '{u.suggestion}'?)" if u.suggestion else "") for u in near
        )
        validator.problem(
            datasets_ptr,
            "datasets is missing" + (found if near else ""),
            'add "datasets": [{"repo_id": "..."}]',
        )
        raw_datasets = []
    elif not isinstance(raw_datasets, list):
        validator.problem(
            datasets_ptr,
            f"datasets must be a list, got {_type_name(raw_datasets)}",
            'write "datasets": [ ... ]',
        )
        raw_datasets = []
    elif not raw_datasets:
        validator.problem(datasets_ptr, "datasets is empty", "list at least one dataset entry")
    for index, raw in enumerate(raw_datasets):
        entry = _parse_entry(validator, raw, index, f"{datasets_ptr}/{index}", base_dir)
        if entry is not None:
            entries.append(entry)

    weights, weights_pointer = _parse_weights(validator, body, raw_datasets, prefix)

    action_freq = body.get("action_freq")
    if action_freq is not None and (
        not _is_number(action_freq) or not math.isfinite(action_freq) or action_freq <= 0
    ):
        validator.problem(
            prefix + "/action_freq",
            f"action_freq must be a positive number of Hz or null, got {action_freq!r}",
            "set action_freq to e.g. 30.0, or null to keep each dataset's native fps",
        )
        action_freq = None
    require_rt = validator.flag(body, "require_non_empty_robot_type", prefix)
    require_cm = validator.flag(body, "require_non_empty_control_mode", prefix)
    max_action_dim = validator.positive_int(body, "max_action_dim", prefix)
    chunk_size = validator.positive_int(body, "chunk_size", prefix)

    if validator.fatal:
        raise MixtureError(validator.fatal, path=path)

    canonical = json.dumps(merged, sort_keys=True, separators=(",", ":"), allow_nan=True)
    locations = {ptr: (src.path, src.line(fptr)) for ptr, (src, fptr) in expander.origins.items()}
    return MixtureConfig(
        path=path,
        datasets=tuple(entries),
        weights=weights,
        weights_pointer=weights_pointer,
        action_freq=float(action_freq) if action_freq is not None else None,
        require_non_empty_robot_type=require_rt,
        require_non_empty_control_mode=require_cm,
        max_action_dim=max_action_dim,
        chunk_size=chunk_size,
        unknown_keys=tuple(validator.unknown),
        problems=tuple(validator.soft),
        sha256=hashlib.sha256(canonical.encode()).hexdigest(),
        prefix=prefix,
        locations=locations,
    )


def _parse_entry(
    validator: _Validator, raw: Any, index: int, pointer: str, base_dir: Path
) -> DatasetEntry | None:
    if not isinstance(raw, dict):
        validator.problem(
            pointer,
            f"datasets[{index}] must be an object, got {_type_name(raw)}",
            'write {"repo_id": "org/name", ...}',
        )
        return None
    validator.check_keys(raw, pointer, ENTRY_KEYS)
    repo_id = raw.get("repo_id")
    if not isinstance(repo_id, str) or not repo_id.strip():
        got = "missing" if "repo_id" not in raw else f"{_type_name(repo_id)} {repo_id!r}"
        validator.problem(
            _pointer_join(pointer, "repo_id"),
            f"datasets[{index}].repo_id must be a non-empty string, got {got}",
            'add "repo_id": "org/name" (it names the dataset and its default root)',
        )
        repo_id = None
    label = _entry_label(raw, index)

    root_value = validator.optional_str(
        raw, "root", pointer, "give the local dataset folder as a string", label
    )
    if root_value is not None and not root_value.strip():
        validator.problem(
            _pointer_join(pointer, "root"),
            f"{label}: root is blank",
            "remove root or give the dataset folder",
        )
        root_value = None
    if root_value is not None:
        candidate = Path(root_value).expanduser()
        root = Path(os.path.abspath(candidate if candidate.is_absolute() else base_dir / candidate))
    else:
        root = Path(os.path.abspath(lerobot_home() / (repo_id or "")))

    robot_type = validator.optional_str(raw, "robot_type", pointer, 'e.g. "robot_type": "so100"', label)
    control_mode = validator.optional_str(
        raw, "control_mode", pointer, 'e.g. "control_mode": "joint_pos"', label
    )
    revision = validator.optional_str(raw, "revision", pointer, "give the revision as a string", label)
    episodes = validator.episode_list(raw, "episodes", pointer, label)
    excluded = validator.episode_list(raw, "excluded_episodes", pointer, label)

    action_key = validator.optional_str(raw, "action_key", pointer, 'e.g. "action_key": "action"', label)
    mapping = raw.get("data_features_name_mapping")
    mapping_ptr = _pointer_join(pointer, "data_features_name_mapping")
    if mapping is not None:
        if not isinstance(mapping, dict):
            validator.problem(
                mapping_ptr,
                f"{label}: data_features_name_mapping must be an object, got {_type_name(mapping)}",
                'write "data_features_name_mapping": {"actions": "<column>"}',
            )
        elif "actions" in mapping:
            mapped = mapping["actions"]
            if not isinstance(mapped, str) or not mapped:
                validator.problem(
                    mapping_ptr + "/actions",
                    f"{label}: data_features_name_mapping.actions must be a column name, got {mapped!r}",
                    "give the dataset's action column name as a string",
                )
            elif action_key is not None and action_key != mapped:
                validator.problem(
                    mapping_ptr + "/actions",
                    f"{label}: action_key {action_key!r} disagrees with "
                    f"data_features_name_mapping.actions {mapped!r}",
                    "keep only one of them",
                )
            else:
                action_key = mapped

    weight = raw.get("weight")
    weight_value: float | None = None
    if "weight" in raw:
        # Validity is checked in _parse_weights (non-fatal); keep the value as given.
        weight_value = float(weight) if _is_number(weight) else math.nan

    if repo_id is None:
        return None
    file, line = validator.location(pointer)
    return DatasetEntry(
        index=index,
        repo_id=repo_id,
        root=root,
        robot_type=robot_type,
        control_mode=control_mode,
        episodes=episodes,
        excluded_episodes=excluded,
        weight=weight_value,
        action_key=action_key,
        revision=revision,
        pointer=pointer,
        line=line,
        file=file,
    )


def _parse_weights(
    validator: _Validator, body: Mapping[str, Any], raw_datasets: list[Any], prefix: str
) -> tuple[tuple[float, ...], str]:
    n = len(raw_datasets)
    weights_ptr = prefix + "/weights"
    datasets_ptr = prefix + "/datasets"
    entry_has_weight = [isinstance(raw, dict) and "weight" in raw for raw in raw_datasets]
    raw_weights = body.get("weights")
    if raw_weights is not None:
        if any(entry_has_weight):
            which = [i for i, has in enumerate(entry_has_weight) if has]
            validator.problem(
                weights_ptr,
                f"weights are given both as a list and per entry (datasets {which} have 'weight')",
                "keep either the weights list or the per-entry weight fields, not both",
                fatal=False,
            )
        if not isinstance(raw_weights, list):
            validator.problem(
                weights_ptr,
                f"weights must be a list parallel to datasets, got {_type_name(raw_weights)}",
                "write one number per dataset entry",
                fatal=False,
            )
            return tuple(math.nan for _ in range(n)), weights_ptr
        if len(raw_weights) != n:
            validator.problem(
                weights_ptr,
                f"weights has {len(raw_weights)} values but datasets has {n} entries",
                "give exactly one weight per dataset entry",
                fatal=False,
            )
        values = [
            _check_weight(
                validator,
                raw_weights[i],
                f"{weights_ptr}/{i}",
                f"weights[{i}] (for {_entry_label(raw_datasets[i], i)})",
            )
            for i in range(min(n, len(raw_weights)))
        ]
        # Missing trailing weights are NaN (invalid, reported above), never a silent default.
        values += [math.nan] * (n - len(values))
        pointer = weights_ptr
    else:
        values = []
        for i, raw in enumerate(raw_datasets):
            if entry_has_weight[i]:
                values.append(
                    _check_weight(
                        validator,
                        raw["weight"],
                        f"{datasets_ptr}/{i}/weight",
                        f"{_entry_label(raw, i)}.weight",
                    )
                )
            else:
                values.append(1.0)
        pointer = datasets_ptr
    finite = [w for w in values if math.isfinite(w) and w >= 0]
    if n and len(finite) == n and sum(finite) == 0:
        validator.problem(
            pointer,
            "all weights are zero: nothing would be sampled",
            "give at least one entry a positive weight",
            fatal=False,
        )
    return tuple(values), pointer


# ---------------------------------------------------------------------------------------------------------
# public API


def load_mixture(path: str | os.PathLike[str]) -> MixtureConfig:
    """Read, expand (``$ref``) and validate a mixture file.

    Args:
        path: The mixture JSON file.

    Returns:
        The validated mixture; weight problems and unknown keys are recorded, not raised.

    Raises:
        MixtureError: The file or an include is missing or not JSON, a ``$ref`` cycle (``unreadable=True``),
            or structural problems (all of them listed).
    """
    file = Path(os.path.abspath(Path(path).expanduser()))
    document, source = _read_json(file, chain=[], pointer="", including=None)
    return _parse_document(document, base_dir=file.parent, path=file, source=source)


def parse_mixture(document: Mapping[str, Any], *, base_dir: Path, path: Path | None = None) -> MixtureConfig:
    """Validate an already-loaded mixture document.

    Args:
        document: The JSON document (bare or wrapped in ``dataset_mixture``).
        base_dir: Folder that relative roots and ``$ref`` paths resolve against.
        path: The file the document came from, for messages (its text is not re-read, so no lines).

    Returns:
        The validated mixture.

    Raises:
        MixtureError: As :func:`load_mixture`.
    """
    base = Path(os.path.abspath(Path(base_dir).expanduser()))
    file = Path(os.path.abspath(Path(path).expanduser())) if path is not None else None
    source = _Source(file, None, base_dir=base)
    return _parse_document(document, base_dir=base, path=file, source=source)
