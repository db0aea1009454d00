"""The tuner's one sampled corpus: the fit plan's chunks, normalized and laid out exactly as the fit does.

Every step of `tune_tokenizer` fits and measures on this corpus, so it must be what the final
`fit_tokenizer` pass fits and evaluates: the same `Normalize` (the convention's formula, else the package's)
and, for ``layout="native"``, each chunk at its entry's native width.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fasttok_plugin.errors import FitError
from fasttok_plugin.fit._progress import PhaseClock
from fasttok_plugin.fit.plan import FitPlan
from fasttok_plugin.fit.settings import FitSettings
from fasttok_plugin.fit.source import FitSource, prepare_fit

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.codec import DecodedBatch, EncodedBatch, FastTokenizer
    from fasttok_plugin.mixture import MixtureConfig

__all__ = ["TuneCorpus", "sample_once"]


@dataclass(frozen=True, slots=True)
class TuneCorpus:
    """The one sampled corpus every step reuses.

    Attributes:
        fit: ``(N, T, D)`` normalized fit chunks.
        heldout: ``(M, T, D)`` normalized evaluated held-out chunks.
        head: ``(M,)`` head of each held-out chunk.
        native: ``(H,)`` native width of each head.
        fit_widths: ``native`` layout: ``(N,)`` width of each fit chunk; None for ``padded``.
        heldout_widths: ``native`` layout: ``(M,)`` width of each held-out chunk; None for ``padded``.
        plan: The plan the corpus was drawn from (its resolved settings and heads).
    """

    fit: np.ndarray
    heldout: np.ndarray
    head: np.ndarray
    native: np.ndarray
    fit_widths: np.ndarray | None
    heldout_widths: np.ndarray | None
    plan: FitPlan

    def round_trip(self, tok: FastTokenizer) -> tuple[EncodedBatch, DecodedBatch, np.ndarray]:
        """Encode and decode the held-out chunks as the fit's evaluation does; also each row's width."""
        if self.heldout_widths is None:
            encoded = tok.encode_padded(self.heldout)
            return encoded, tok.decode(encoded), self.native[self.head]
        encoded = tok.encode_padded(self.heldout, action_dims=self.heldout_widths)
        return encoded, tok.decode(encoded, action_dim=self.heldout_widths), self.heldout_widths


def sample_once(
    source: str | os.PathLike[str] | MixtureConfig | FitSource, settings: FitSettings, *, preflight: bool
) -> TuneCorpus:
    """The plan's fit corpus and evaluated held-out chunks, normalized, in memory."""
    from fasttok_plugin.fit.pipeline import _check_sample_errors, _normalize

    prepared = prepare_fit(source, settings, preflight=preflight, clock=PhaseClock())
    resolved, heads = prepared.settings, prepared.heads
    plan = FitPlan(prepared.sampler, _normalize(heads, resolved), resolved)
    fit = list(plan.fit_batches())
    _check_sample_errors(plan.sample_report, resolved)
    held = list(plan.heldout_batches())
    if not fit:
        raise FitError("the fit corpus is empty; raise total_chunks or lower heldout_fraction")
    if not held:
        raise FitError(
            "no held-out chunks to tune on (every head has a single episode, or too few chunks were "
            "sampled); raise total_chunks or heldout_fraction"
        )
    native = plan.widths is not None
    return TuneCorpus(
        fit=np.concatenate([b.normalized for b in fit]),
        heldout=np.concatenate([b.normalized for b in held]),
        head=np.concatenate([b.head_index for b in held]).astype(np.int64),
        native=np.asarray(heads.native_dims, dtype=np.int64),
        fit_widths=np.concatenate([b.action_dims for b in fit]) if native else None,
        heldout_widths=np.concatenate([b.action_dims for b in held]) if native else None,
        plan=plan,
    )
