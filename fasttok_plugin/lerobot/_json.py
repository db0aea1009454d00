"""The one JSON reader of dataset metadata (NaN/Infinity tokens and a byte-order mark accepted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fasttok_plugin.errors import DatasetError
from fasttok_plugin.mixture._source import read_regular_file

__all__ = ["load_json", "load_json_or_error"]


def load_json(path: Path) -> Any:
    """Read a JSON file, accepting the ``NaN`` / ``Infinity`` / ``-Infinity`` tokens found in the wild.

    Only regular files of at most ``MAX_FILE_BYTES`` are read (a FIFO or device would hang or never end).

    Raises:
        OSError: Missing, unreadable, not a regular file (`NotRegularFileError`) or too large.
        ValueError: Not UTF-8, not JSON, or an integer past Python's digit limit.
        RecursionError: Nested too deeply for the parser.
    """
    # Python's json accepts these tokens by default; this function pins that contract in one place.
    # utf-8-sig: a byte-order mark written by some editors/tools is not a JSON error.
    return json.loads(read_regular_file(path).decode("utf-8-sig"))


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
    except ValueError:
        # json's only other ValueError: an integer longer than Python converts (no position given).
        raise DatasetError(
            reason_invalid,
            f"{path.name} holds a number with more digits than can be read",
            path=path,
            hint=f"repair {path.name}",
            dataset=name,
        ) from None
    except RecursionError:
        raise DatasetError(
            reason_invalid,
            f"{path.name} is nested too deeply to read",
            path=path,
            hint=f"repair {path.name}",
            dataset=name,
        ) from None
