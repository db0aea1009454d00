"""Fit a FAST tokenizer on a mixture, normalized exactly as the policy sees it (`fit_tokenizer`).

The package, one idea per module: `settings` (`FitSettings`), `source` (what a fit is fed: `FitSource`),
`fingerprint` (`fit_fingerprint` and what it leaves out), `plan` (the sampled fit / held-out split),
`evaluate` (held-out measures), `report` (`FitReport` and its JSON), `pipeline` (`fit_tokenizer`) and
`tune` (`tune_tokenizer`: the scale that meets a token budget).
"""

from fasttok_plugin.errors import FitError, OutDirError
from fasttok_plugin.fit.fingerprint import NOT_FINGERPRINTED, describe_difference, fit_fingerprint
from fasttok_plugin.fit.pipeline import fit_tokenizer
from fasttok_plugin.fit.plan import FitBatch, FitPlan
from fasttok_plugin.fit.report import (
    REPORT_FORMAT_VERSION,
    REPORT_NAME,
    DatasetFitStats,
    FitReport,
    HeadFitStats,
    TokenLengthStats,
)
from fasttok_plugin.fit.settings import (
    DEFAULT_HELDOUT_FRACTION,
    DEFAULT_MAX_ACTION_TOKENS,
    DEFAULT_MAX_FIT_CHUNKS,
    DEFAULT_TOTAL_CHUNKS,
    FitSettings,
)
from fasttok_plugin.fit.source import FitSource
from fasttok_plugin.fit.tune import TuneResult, TuneStep, tune_tokenizer

__all__ = [
    "DEFAULT_HELDOUT_FRACTION",
    "DEFAULT_MAX_ACTION_TOKENS",
    "DEFAULT_MAX_FIT_CHUNKS",
    "DEFAULT_TOTAL_CHUNKS",
    "NOT_FINGERPRINTED",
    "REPORT_FORMAT_VERSION",
    "REPORT_NAME",
    "DatasetFitStats",
    "FitBatch",
    "FitError",
    "FitPlan",
    "FitReport",
    "FitSettings",
    "FitSource",
    "HeadFitStats",
    "OutDirError",
    "TokenLengthStats",
    "TuneResult",
    "TuneStep",
    "describe_difference",
    "fit_fingerprint",
    "fit_tokenizer",
    "tune_tokenizer",
]
