"""``$ref`` expansion: inline included files, deep-merge sibling keys over them, remember origins.

``{"$ref": "other.json", ...siblings}`` may stand anywhere a value is expected. The path is relative to the
including file's folder; siblings deep-merge over the included value. Every merged pointer maps to the
``(source, pointer in that source)`` it was written at, so a problem inside an included file points at
that file and line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fasttok_plugin.errors import MixtureError
from fasttok_plugin.mixture._pointers import last_token, pointer_join
from fasttok_plugin.mixture._source import MAX_JSON_DEPTH, Source, chain_text, read_json
from fasttok_plugin.mixture._values import type_name, user_path
from fasttok_plugin.mixture.model import MixtureProblem

__all__ = ["MAX_EXPANDED_VALUES", "MAX_INCLUDES", "MAX_REF_CHAIN", "REF_KEY", "Expander", "deep_merge"]

REF_KEY = "$ref"
#: Longest chain of nested includes (a file including a file including ...).
MAX_REF_CHAIN = 32
#: Most JSON values in the expanded document: including one file many times multiplies it, so a few small
#: files could otherwise expand to gigabytes.
MAX_EXPANDED_VALUES = 1_000_000
#: Most ``$ref`` includes expanded in one mixture (one per dataset entry is the common use).
MAX_INCLUDES = 10_000


class Expander:
    """Inline ``$ref`` includes and remember where every merged value came from.

    Attributes:
        origins: Merged pointer -> ``(source, pointer in that source)``.
        problems: Problems found while expanding (bad ``$ref`` values, duplicate keys, unmergeable siblings).
    """

    def __init__(self) -> None:
        self.origins: dict[str, tuple[Source, str]] = {}
        self.problems: list[MixtureProblem] = []
        self._cache: dict[Path, tuple[Any, Source]] = {}
        self._values = 0
        self._includes = 0
        # (folder, $ref) -> absolute target: a file included many times resolves its path once.
        self._targets: dict[tuple[Path, str], Path] = {}

    def report_duplicates(self, source: Source, mptr: str) -> None:
        """Record keys repeated within one object of ``source`` (included at merged pointer ``mptr``)."""
        for fptr, line in source.duplicates:
            self.problems.append(
                MixtureProblem(
                    mptr + fptr,
                    f"key '{last_token(fptr)}' appears more than once in the same object; JSON would "
                    "silently keep only the last value",
                    "remove the duplicate key",
                    line,
                    source.path,
                )
            )

    def expand(self, value: Any, source: Source, fptr: str, mptr: str, chain: list[Path]) -> Any:
        """``value`` (at ``fptr`` in ``source``, ``mptr`` in the merged document) with every ``$ref`` inlined.

        Args:
            value: A JSON value read from ``source``.
            source: The file ``value`` was written in.
            fptr: Pointer of ``value`` inside ``source``.
            mptr: Pointer of ``value`` in the merged document.
            chain: Files being included, outermost first (to detect cycles).

        Raises:
            MixtureError: A ``$ref`` cycle, or a target that is missing or not JSON, an include chain longer
                than ``MAX_REF_CHAIN``, a document nested deeper than ``MAX_JSON_DEPTH`` or expanding to
                more than ``MAX_EXPANDED_VALUES`` values (``unreadable=True``).
        """
        self._values += 1
        if self._values > MAX_EXPANDED_VALUES:
            self._refuse(
                source,
                fptr,
                mptr,
                chain,
                f"the mixture expands to more than {MAX_EXPANDED_VALUES:,} JSON values ($ref includes "
                "multiply the files they include)",
                "include each file once (or a few times); do not nest includes that repeat a file",
            )
        if isinstance(value, (dict, list)) and mptr.count("/") >= MAX_JSON_DEPTH:
            self._refuse(
                source,
                fptr,
                mptr,
                chain,
                f"the expanded mixture nests more than {MAX_JSON_DEPTH} levels deep",
                "flatten the document (a mixture needs a handful of levels)",
            )
        self.origins[mptr] = (source, fptr)
        if isinstance(value, dict):
            if REF_KEY in value:
                return self._include(value, source, fptr, mptr, chain)
            return self._expand_members(value, source, fptr, mptr, chain)
        if isinstance(value, list):
            return [self.expand(v, source, f"{fptr}/{i}", f"{mptr}/{i}", chain) for i, v in enumerate(value)]
        return value

    def _refuse(
        self, source: Source, fptr: str, mptr: str, chain: list[Path], message: str, hint: str
    ) -> None:
        """Raise an unreadable MixtureError at ``mptr``: the document cannot be expanded safely."""
        problem = MixtureProblem(mptr, message, hint, source.line(fptr), source.path)
        raise MixtureError([problem], unreadable=True, path=chain[0] if chain else None)

    def _expand_members(
        self, value: Mapping[str, Any], source: Source, fptr: str, mptr: str, chain: list[Path]
    ) -> dict[str, Any]:
        return {
            k: self.expand(v, source, pointer_join(fptr, k), pointer_join(mptr, k), chain)
            for k, v in value.items()
            if k != REF_KEY
        }

    def _include(self, value: dict, source: Source, fptr: str, mptr: str, chain: list[Path]) -> Any:
        ref = value[REF_KEY]
        target = self._target(ref, source, fptr, mptr, chain)
        if target is None:
            return None
        self._includes += 1
        if self._includes > MAX_INCLUDES:
            self._refuse(
                source,
                fptr,
                mptr,
                chain,
                f"the mixture expands more than {MAX_INCLUDES:,} $ref includes (includes that repeat "
                "a file multiply it)",
                "include each file once (or a few times); do not nest includes that repeat a file",
            )
        document, target_source = self._read(target, source, mptr, chain)
        included = self.expand(document, target_source, "", mptr, [*chain, target])
        siblings = self._expand_members(value, source, fptr, mptr, chain)
        # The including object is where a reader looks for this value.
        self.origins[mptr] = (source, fptr)
        if not siblings:
            return included
        if not isinstance(included, dict):
            self.problems.append(
                MixtureProblem(
                    mptr,
                    f"$ref {ref!r} includes a {type_name(included)}, so the sibling keys "
                    f"{sorted(siblings)} cannot be merged over it",
                    "only objects can be extended with sibling keys; move the keys into the included file",
                    source.line(fptr),
                    source.path,
                )
            )
            return included
        return deep_merge(included, siblings)

    def _target(self, ref: Any, source: Source, fptr: str, mptr: str, chain: list[Path]) -> Path | None:
        """The absolute file ``ref`` names (``None`` after recording a bad ``$ref`` value)."""
        ref_ptr = pointer_join(fptr, REF_KEY)
        if not isinstance(ref, str) or not ref.strip():
            self.problems.append(
                MixtureProblem(
                    pointer_join(mptr, REF_KEY),
                    f"$ref must be a non-empty file path string, got {ref!r}",
                    'write "$ref": "other.json"',
                    source.line(ref_ptr),
                    source.path,
                )
            )
            return None
        try:
            target = self._resolve(source.base_dir, ref)
        except ValueError as exc:
            self.problems.append(
                MixtureProblem(
                    pointer_join(mptr, REF_KEY),
                    f"$ref {ref!r} is not a usable file path: {exc}",
                    "write the path of a JSON file, relative to the including file's folder",
                    source.line(ref_ptr),
                    source.path,
                )
            )
            return None
        if len(chain) > MAX_REF_CHAIN:
            self._refuse(
                source,
                ref_ptr,
                pointer_join(mptr, REF_KEY),
                chain,
                f"$ref includes nest more than {MAX_REF_CHAIN} files deep "
                f"({chain_text(chain[:1])} -> ... -> {chain_text(chain[-1:])})",
                "include the files directly instead of through a long chain",
            )
        if target in chain:
            cycle = " -> ".join(p.name for p in [*chain, target])
            problem = MixtureProblem(
                pointer_join(mptr, REF_KEY),
                f"$ref cycle: {cycle}",
                "remove the $ref that includes a file already being included",
                source.line(ref_ptr),
                source.path,
            )
            raise MixtureError([problem], unreadable=True, path=chain[0] if chain else None)
        return target

    def _resolve(self, base_dir: Path, ref: str) -> Path:
        """The absolute path ``ref`` names from ``base_dir``.

        Raises:
            ValueError: ``ref`` holds a NUL character or starts with ``~user`` for an unknown user.
        """
        key = (base_dir, ref)
        if key not in self._targets:
            self._targets[key] = Path(os.path.abspath(base_dir / user_path(ref)))
        return self._targets[key]

    def _read(self, target: Path, source: Source, mptr: str, chain: list[Path]) -> tuple[Any, Source]:
        """``target``'s document and source, read once per parse however often it is included."""
        if target not in self._cache:
            self._cache[target] = read_json(
                target, chain=chain, pointer=pointer_join(mptr, REF_KEY), including=source.path
            )
            self.report_duplicates(self._cache[target][1], mptr)
        return self._cache[target]


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged over it: objects merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
