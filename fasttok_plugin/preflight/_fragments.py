"""``$ref`` fragments among the files a hook passes: recognise them, and say which mixture checks them.

pre-commit passes every changed file matching the hook's pattern, so a part included with ``"$ref"`` (an
entry, a list of entries, shared tags) arrives on its own and, checked as a mixture, fails for lacking
``datasets``. With ``--skip-fragments`` such a file is not checked on its own: a mixture that includes it
checks its content.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["MIXTURE_KEYS", "includers", "is_fragment"]

#: Top-level keys only a whole mixture has (bare or wrapped, DESIGN §3).
MIXTURE_KEYS = frozenset({"datasets", "dataset_mixture"})
_MAX_CHAIN = 32  # as mixture._refs.MAX_REF_CHAIN: a longer top-level chain is the loader's to report


def _top_keys(path: Path, depth: int = 0) -> set[str] | None:
    """Top-level keys of a JSON file, through a top-level ``$ref``; ``None`` when it cannot be read."""
    try:
        document: Any = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return set()
    keys = set(document)
    ref = document.get("$ref")
    if isinstance(ref, str) and depth < _MAX_CHAIN:
        keys |= _top_keys(path.parent / ref, depth + 1) or set()
    return keys


def is_fragment(path: str | Path) -> bool:
    """Whether ``path`` is JSON without ``datasets`` / ``dataset_mixture`` (after a top-level ``$ref``).

    An unreadable or invalid file is *not* a fragment: checking it as a mixture reports what is wrong.
    """
    keys = _top_keys(Path(path))
    return keys is not None and not keys & MIXTURE_KEYS


def includers(fragment: str | Path, mixtures: Sequence[str | Path]) -> list[Path]:
    """The ``mixtures`` whose expanded document has values written in ``fragment``."""
    from fasttok_plugin.mixture import MixtureError, load_mixture

    target = Path(fragment).resolve()
    found = []
    for mixture in mixtures:
        try:
            config = load_mixture(mixture)
        except MixtureError:
            continue
        files = {Path(file).resolve() for file, _line in config.locations.values() if file is not None}
        if target in files:
            found.append(Path(mixture))
    return found
