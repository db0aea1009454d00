"""Parse and validate a mixture file (DESIGN §3) into a :class:`MixtureConfig`.

The file is OpenTau-style JSON, bare or wrapped in ``{"dataset_mixture": {...}}``. ``{"$ref": "other.json"}``
may stand anywhere a value is expected: it inlines that file (relative to the including file) and sibling
keys deep-merge over it. Every problem carries the JSON pointer of the offending value in the *merged*
document and, where known, the file and line it came from.

Modules: :mod:`.model` (the value types and schema keys), :mod:`.load` (the entry points),
:mod:`.weights` (the one weight rule, shared with the sampler), and private helpers: ``_lines`` (the
pointer -> line scanner), ``_source`` (reading one JSON file), ``_refs`` (``$ref`` expansion),
``_validator`` (problem recording and shared value checks), ``_entries`` (one ``datasets`` entry),
``_document`` (the whole document).
"""

from __future__ import annotations

from fasttok_plugin.errors import MixtureError

# The line scanner under its old name, for tests that drive it directly (not public API).
from fasttok_plugin.mixture._lines import index_lines as _index_lines  # noqa: F401
from fasttok_plugin.mixture.load import load_mixture, parse_mixture
from fasttok_plugin.mixture.model import (
    ENTRY_KEYS,
    TOP_LEVEL_KEYS,
    WRAPPER_KEY,
    DatasetEntry,
    MixtureConfig,
    MixtureProblem,
    UnknownKey,
)
from fasttok_plugin.mixture.weights import WeightProblem, check_weights

__all__ = [
    "ENTRY_KEYS",
    "TOP_LEVEL_KEYS",
    "WRAPPER_KEY",
    "DatasetEntry",
    "MixtureConfig",
    "MixtureError",
    "MixtureProblem",
    "UnknownKey",
    "WeightProblem",
    "check_weights",
    "load_mixture",
    "parse_mixture",
]
