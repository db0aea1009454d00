"""The one JSON reader of dataset metadata (NaN/Infinity tokens and a byte-order mark accepted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fasttok_plugin.errors import DatasetError

__all__ = ["load_json", "load_json_or_error"]


def load_json(path: Path) -> Any:
    """Read a JSON file, accepting the ``NaN`` / ``Infinity`` / ``-Infinity`` tokens found in the wild."""
    # Python's json accepts these tokens by default; this function pins that contract in one place.
    # utf-8-sig: a byte-order mark written by some editors/tools is not a JSON error.
    with open(path, encoding="utf-8-sig") as handle:
        return json.load(handle)


def load_json_or_error(
    path: Path, reason_missing: str, reason_invalid: str, hint: str, name: str | None
) -> Any:
    """`load_json`, turning a missing, unreadable or malformed file into a `DatasetError`.

    Args:
        path: The JSON file.
        reason_missing: ``DatasetError.reason`` when the file does not exist.
        reason_invalid: ``DatasetError.reason`` when it cannot be read or is not JSON.
        hint: Fix named when the file is missing.
        name: Dataset name for messages.
    """
    try:
        return load_json(path)
    except FileNotFoundError:
        raise DatasetError(
            reason_missing, f"{path.name} not found", path=path, hint=hint, dataset=name
        ) from None
    except json.JSONDecodeError as exc:
        raise DatasetError(
            reason_invalid,
            f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            path=path,
            hint=f"repair {path.name}",
            dataset=name,
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(
            reason_invalid, f"cannot read {path.name}: {exc}", path=path, hint="check the file", dataset=name
        ) from None
