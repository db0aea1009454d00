"""Compatibility path: the fit pipeline now lives in the `fasttok_plugin.fit` package.

``from fasttok_plugin.fitting import FitSettings, fit_tokenizer`` keeps working (docs and users import it):
this module re-exports every public name of `fasttok_plugin.fit`, so the two surfaces cannot drift. To
replace `fit_tokenizer` in tests, patch `fasttok_plugin.fit.pipeline.fit_tokenizer`: that is the module the
Lightning callback calls it through.
"""

from __future__ import annotations

from fasttok_plugin import fit as _fit

__all__ = list(_fit.__all__)
globals().update({name: getattr(_fit, name) for name in __all__})
