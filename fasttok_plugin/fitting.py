"""Compatibility path: the fit pipeline now lives in the `fasttok_plugin.fit` package.

``from fasttok_plugin.fitting import FitSettings, fit_tokenizer`` keeps working (docs and users import it).
To replace `fit_tokenizer` in tests, patch `fasttok_plugin.fit.pipeline.fit_tokenizer`: that is the
module the Lightning callback calls it through.
"""

from fasttok_plugin.fit import (
    DEFAULT_HELDOUT_FRACTION,
    DEFAULT_MAX_ACTION_TOKENS,
    DEFAULT_MAX_FIT_CHUNKS,
    DEFAULT_TOTAL_CHUNKS,
    NOT_FINGERPRINTED,
    REPORT_FORMAT_VERSION,
    REPORT_NAME,
    DatasetFitStats,
    FitBatch,
    FitError,
    FitPlan,
    FitReport,
    FitSettings,
    FitSource,
    HeadFitStats,
    OutDirError,
    TokenLengthStats,
    describe_difference,
    fit_fingerprint,
    fit_tokenizer,
)

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
    "describe_difference",
    "fit_fingerprint",
    "fit_tokenizer",
]
