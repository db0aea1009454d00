"""The held-out chunks a fit evaluates, sampled again outside the fit pipeline (to check its report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fasttok_plugin.fit import FitPlan, FitSettings
from fasttok_plugin.fit._progress import PhaseClock
from fasttok_plugin.fit.source import prepare_fit
from fasttok_plugin.normalize import Normalize


def heldout_chunks(mixture: Path, settings: FitSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The held-out chunks the fit evaluates: (normalized chunks, head index, native dim per head)."""
    prepared = prepare_fit(mixture, settings, preflight=False, clock=PhaseClock())
    s = prepared.settings
    plan = FitPlan(prepared.sampler, Normalize(prepared.heads, mode=s.normalization), s)
    batches = list(plan.heldout_batches())
    head = np.concatenate([b.head_index for b in batches])
    return np.concatenate([b.normalized for b in batches]), head, np.asarray(prepared.heads.native_dims)
