"""The two ways in: :func:`load_mixture` reads a file, :func:`parse_mixture` takes a loaded document."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fasttok_plugin.errors import MixtureError
from fasttok_plugin.mixture._document import parse_document
from fasttok_plugin.mixture._source import Source, read_json
from fasttok_plugin.mixture._values import user_path
from fasttok_plugin.mixture.model import MixtureConfig, MixtureProblem

__all__ = ["load_mixture", "parse_mixture"]


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
    try:
        file = Path(os.path.abspath(user_path(os.fspath(path))))
    except ValueError as exc:
        problem = MixtureProblem(
            "", f"mixture path {os.fspath(path)!r} is not usable: {exc}", "check the path"
        )
        raise MixtureError([problem], unreadable=True, path=Path(os.fspath(path))) from None
    document, source = read_json(file, chain=[], pointer="", including=None)
    return parse_document(document, base_dir=file.parent, path=file, source=source)


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
    source = Source(file, None, base_dir=base)
    return parse_document(document, base_dir=base, path=file, source=source)
