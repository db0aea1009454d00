"""The token-budget tuner: the largest ``scale`` whose held-out sequences fit the policy's budget.

`tune_tokenizer` samples the mixture **once** (the fit corpus and the held-out chunks of `FitPlan`, exactly
those ``fasttok fit`` uses), then walks ``scale`` by a small search: from the start scale it doubles or
halves until the goal is bracketed, then bisects geometrically. Each step fits a tokenizer on the same
in-memory fit corpus and encodes / decodes the same held-out chunks. Two goals:

- ``max_action_tokens=N``: the largest scale (finest quantization, lowest error) at which **every head's**
  ``quantile`` of held-out token lengths is at most ``N`` (the inverted-CDF quantile: an observed length that
  at least that share of the head's chunks do not exceed), so no robot of the mixture is truncated more
  than ``1 - quantile`` of the time.
- ``target_mse=X``: the smallest scale (shortest sequences) at which every head's held-out round-trip MSE
  (normalized units, native dims only) is at most ``X``.

Lengths grow and the error shrinks with ``scale``, but BPE makes both only roughly monotone: the chosen
scale is always one the search evaluated and saw meet the goal. The folder is then written by the plain
fit pipeline at that scale (a second sampling pass, same seed), so it is byte-for-byte the folder
``fasttok fit --scale <chosen>`` writes, plus the walked curve under ``settings["tune"]`` of its report.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from fasttok_plugin.errors import CodecError, FitError
from fasttok_plugin.fit._outdir import check_out_dir, save_atomically
from fasttok_plugin.fit._tune_corpus import TuneCorpus, sample_once
from fasttok_plugin.fit.report import REPORT_KEY, FitReport
from fasttok_plugin.fit.settings import FitSettings
from fasttok_plugin.fit.source import FitSource

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.mixture import MixtureConfig

__all__ = ["TUNE_KEY", "TuneResult", "TuneStep", "tune_tokenizer"]

logger = logging.getLogger(__name__)

#: Key of the tuner's record in the fit report's ``settings``.
TUNE_KEY: Final = "tune"
_MAX_BRACKET_STEPS: Final = 10  # doublings / halvings to bracket the goal: a factor 1024 either way
_DEFAULT_BISECT_STEPS: Final = 6


@dataclass(frozen=True, slots=True)
class TuneStep:
    """One evaluated scale of the walk.

    Attributes:
        scale: The DCT scale.
        tokens_quantile: Largest per-head ``quantile`` of held-out token lengths (None: the fit failed).
        mean_tokens: Mean held-out tokens over every evaluated chunk.
        max_tokens: Longest held-out sequence.
        mse: Largest per-head round-trip MSE (normalized units, native dims).
        ok: Whether this scale meets the goal.
        error: Why the fit failed at this scale ("" when it did not), e.g. a range the vocabulary cannot hold.
    """

    scale: float
    tokens_quantile: float | None
    mean_tokens: float | None
    max_tokens: int | None
    mse: float | None
    ok: bool
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class TuneResult:
    """The tuner's choice and the curve it walked (steps in evaluation order).

    Attributes:
        scale: The chosen scale.
        goal: ``"max_action_tokens"`` or ``"target_mse"``.
        max_action_tokens: The budget (None under ``target_mse``).
        quantile: The length quantile compared with the budget.
        target_mse: The error target (None under ``max_action_tokens``).
        steps: Every evaluated scale, in order.
        fit_chunks: Chunks of the one sampled fit corpus.
        heldout_chunks: Held-out chunks evaluated at every step.
    """

    scale: float
    goal: str
    max_action_tokens: int | None
    quantile: float
    target_mse: float | None
    steps: tuple[TuneStep, ...]
    fit_chunks: int
    heldout_chunks: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (the record stored in the report's ``settings["tune"]``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "steps"}
        out["steps"] = [s.to_dict() for s in self.steps]
        return out

    def curve_text(self) -> str:
        """The walked curve as a table sorted by scale, the chosen row marked."""
        q = f"p{self.quantile * 100:g}"
        lines = [f"{'scale':>10} {q + ' tokens':>11} {'mean':>7} {'max':>5} {'mse':>10}  goal"]
        for s in sorted(self.steps, key=lambda s: s.scale):
            if s.error:
                lines.append(f"{s.scale:>10.4g} {'-':>11} {'-':>7} {'-':>5} {'-':>10}  no ({s.error[:60]})")
                continue
            mark = "  <- chosen" if s.scale == self.scale else ""
            lines.append(
                f"{s.scale:>10.4g} {s.tokens_quantile:>11.0f} {s.mean_tokens:>7.1f} {s.max_tokens:>5d} "
                f"{s.mse:>10.3g}  {'yes' if s.ok else 'no'}{mark}"
            )
        return "\n".join(lines) + "\n"


def tune_tokenizer(
    source: str | os.PathLike[str] | MixtureConfig | FitSource,
    settings: FitSettings | None = None,
    *,
    max_action_tokens: int | None = None,
    quantile: float = 0.99,
    target_mse: float | None = None,
    bisect_steps: int = _DEFAULT_BISECT_STEPS,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    preflight: bool = True,
    on_step: Callable[[TuneStep], None] | None = None,
) -> tuple[FastTokenizer, FitReport, TuneResult]:
    """Choose ``scale`` for a token budget (or an error target) on one sampled corpus, then fit with it.

    Args:
        source: A mixture file, a parsed `MixtureConfig`, or a `FitSource`.
        settings: Fit settings; ``scale`` is where the search starts (default `FitSettings()`).
        max_action_tokens: The policy's budget: every head's ``quantile`` of held-out lengths must fit.
        quantile: The length quantile compared with the budget (0 < q <= 1; 1 is the longest sequence).
        target_mse: Instead of a budget: every head's held-out round-trip MSE must be at most this.
        bisect_steps: Bisection steps once the goal is bracketed.
        out_dir: When given, the chosen tokenizer and its report are written there atomically.
        progress: Progress bars of the final fit.
        preflight: Run the preflight first.
        on_step: Called with every evaluated step (the CLI prints them as they come).

    Returns:
        ``(tokenizer, report, result)``: the tokenizer fit at the chosen scale, its fit report (with the
        walk under ``settings["tune"]``) and the walk.

    Raises:
        FitError: Not exactly one goal, a bad ``quantile`` / ``target_mse`` / ``bisect_steps``, no held-out
            chunks, or no scale within a factor 1024 of the start meets the goal (names the closest step).
        PreflightError, MixtureError, OutDirError: As `fit_tokenizer`.
    """
    from fasttok_plugin.fit.pipeline import fit_tokenizer

    settings = settings or FitSettings()
    goal = _check_goal(max_action_tokens, quantile, target_mse, bisect_steps)
    if out_dir is not None:
        check_out_dir(Path(out_dir).absolute())
    corpus = sample_once(source, settings, preflight=preflight)

    def ok(step: TuneStep) -> bool:
        if step.error:
            return False
        if goal == "max_action_tokens":
            return step.tokens_quantile is not None and step.tokens_quantile <= int(max_action_tokens or 0)
        return step.mse is not None and step.mse <= float(target_mse or 0.0)

    def evaluate(scale: float) -> TuneStep:
        step = _evaluate(corpus, dataclasses.replace(settings, scale=scale), quantile, ok)
        logger.info("tune: %s", step)
        if on_step is not None:
            on_step(step)
        return step

    steps = _search(evaluate, float(settings.scale), largest=goal == "max_action_tokens", steps=bisect_steps)
    chosen = _choose(steps, goal, largest=goal == "max_action_tokens")
    result = TuneResult(
        scale=chosen.scale,
        goal=goal,
        max_action_tokens=max_action_tokens if goal == "max_action_tokens" else None,
        quantile=float(quantile),
        target_mse=float(target_mse) if target_mse is not None else None,
        steps=tuple(steps),
        fit_chunks=int(corpus.fit.shape[0]),
        heldout_chunks=int(corpus.heldout.shape[0]),
    )
    # The report's truncation rate is then measured against the budget (not fingerprinted).
    budget = max_action_tokens if max_action_tokens is not None else settings.max_action_tokens
    final = dataclasses.replace(settings, scale=chosen.scale, max_action_tokens=budget)
    tokenizer, report = fit_tokenizer(source, final, progress=progress, preflight=False)
    report = dataclasses.replace(report, settings={**report.settings, TUNE_KEY: result.to_dict()})
    tokenizer.metadata[REPORT_KEY] = report.to_dict()
    if out_dir is not None:
        _save_tuned(tokenizer, report, Path(out_dir), corpus)
    return tokenizer, report, result


def _save_tuned(tokenizer: FastTokenizer, report: FitReport, out_dir: Path, corpus: Any) -> None:
    """Write the tuned folder, with norm_stats.json: from_tokenizer_dir rebuilds the tuned normalization."""
    from fasttok_plugin.fit.pipeline import folder_norm_stats

    sampler = corpus.plan.sampler
    stats = folder_norm_stats(sampler.heads, corpus.plan.settings, getattr(sampler, "transforms", None))
    save_atomically(tokenizer, report, out_dir, norm_stats=stats)


def _check_goal(
    max_action_tokens: int | None, quantile: float, target_mse: float | None, bisect_steps: int
) -> str:
    problems = []
    if (max_action_tokens is None) == (target_mse is None):
        problems.append("give exactly one goal: max_action_tokens (a token budget) or target_mse")
    if max_action_tokens is not None and (
        isinstance(max_action_tokens, bool) or not isinstance(max_action_tokens, int) or max_action_tokens < 1
    ):
        problems.append(f"max_action_tokens must be a positive integer, got {max_action_tokens!r}")
    if not (isinstance(quantile, (int, float)) and not isinstance(quantile, bool) and 0 < quantile <= 1):
        problems.append(f"quantile must be in (0, 1], got {quantile!r}")
    if target_mse is not None and not (
        isinstance(target_mse, (int, float)) and math.isfinite(target_mse) and target_mse > 0
    ):
        problems.append(f"target_mse must be a positive number, got {target_mse!r}")
    if isinstance(bisect_steps, bool) or not isinstance(bisect_steps, int) or not 0 <= bisect_steps <= 30:
        problems.append(f"bisect_steps must be an integer in 0..30, got {bisect_steps!r}")
    if problems:
        raise FitError("invalid tune settings:\n" + "\n".join(f"  - {p}" for p in problems))
    return "max_action_tokens" if max_action_tokens is not None else "target_mse"


def _evaluate(
    corpus: TuneCorpus, settings: FitSettings, quantile: float, ok: Callable[[TuneStep], bool]
) -> TuneStep:
    """Fit at ``settings.scale`` on the corpus, then measure the held-out lengths and error per head."""
    from fasttok_plugin.codec import FastTokenizer

    codec_logger = logging.getLogger("fasttok_plugin.codec")
    level = codec_logger.level
    codec_logger.setLevel(logging.ERROR)  # clamp warnings of every step would flood the walk
    try:
        tok = FastTokenizer.fit(
            corpus.fit,
            **settings.codec_arguments(),
            layout=corpus.plan.settings.layout,  # resolved: a convention or the mixture may set it
            action_dims=corpus.fit_widths,
        )
        encoded, decoded, widths = corpus.round_trip(tok)
    except CodecError as exc:
        return TuneStep(float(settings.scale), None, None, None, None, False, error=str(exc).split("\n")[0])
    finally:
        codec_logger.setLevel(level)
    lengths = encoded.lengths.astype(np.int64)
    width = decoded.actions.shape[2]  # native: the widest row; narrower rows are measured at their width
    dims = np.arange(width)[None, None, :] < widths[:, None, None]
    sq = np.where(dims, decoded.actions.astype(np.float64) - corpus.heldout[:, :, :width], 0.0) ** 2
    worst_q, worst_mse = 0.0, 0.0
    for h in np.unique(corpus.head):
        rows = corpus.head == h
        worst_q = max(worst_q, float(np.quantile(lengths[rows], quantile, method="inverted_cdf")))
        good = rows & decoded.valid
        elements = int(good.sum()) * corpus.heldout.shape[1] * int(corpus.native[h])
        # An invalid decode is an unbounded error: it fails any MSE target.
        mse = float(sq[good].sum() / elements) if elements and good.sum() == rows.sum() else math.inf
        worst_mse = max(worst_mse, mse)
    step = TuneStep(
        scale=float(settings.scale),
        tokens_quantile=worst_q,
        mean_tokens=float(lengths.mean()),
        max_tokens=int(lengths.max()),
        mse=worst_mse,
        ok=False,
    )
    return dataclasses.replace(step, ok=ok(step))


def _round(scale: float) -> float:
    """Three significant digits: the walk's scales stay readable (and land in the folder as such)."""
    return float(f"{scale:.3g}")


def _search(
    evaluate: Callable[[float], TuneStep], start: float, *, largest: bool, steps: int
) -> list[TuneStep]:
    """Bracket the goal by doubling / halving from ``start``, then bisect geometrically ``steps`` times.

    ``largest``: the goal holds below some scale (a budget) and the largest such scale is wanted; else it
    holds above one (an error target) and the smallest is wanted.
    """
    walked: list[TuneStep] = []
    seen: dict[float, TuneStep] = {}

    def at(scale: float) -> TuneStep:
        scale = _round(scale)
        if scale not in seen:
            seen[scale] = evaluate(scale)
            walked.append(seen[scale])
        return seen[scale]

    first = at(start)
    good = first.scale if first.ok else None
    bad = None if first.ok else first.scale
    # Towards larger scales when the goal holds and the largest is wanted (or it fails and the smallest is).
    up = first.ok == largest
    scale = first.scale
    for _ in range(_MAX_BRACKET_STEPS):
        if good is not None and bad is not None:
            break
        scale = scale * 2.0 if up else scale / 2.0
        step = at(scale)
        if step.ok:
            good = step.scale
        else:
            bad = step.scale
    if good is None or bad is None:
        return walked  # never bracketed: _choose names the closest step (or takes the extreme good one)
    for _ in range(steps):
        mid = _round(math.sqrt(good * bad))
        if mid in (good, bad):
            break
        step = at(mid)
        if step.ok:
            good = step.scale
        else:
            bad = step.scale
    return walked


def _choose(steps: Sequence[TuneStep], goal: str, *, largest: bool) -> TuneStep:
    """The largest (budget) or smallest (error target) evaluated scale that met the goal."""
    good = [s for s in steps if s.ok]
    if good:
        return max(good, key=lambda s: s.scale) if largest else min(good, key=lambda s: s.scale)
    measured = [s for s in steps if not s.error]
    walked = f"no scale from {min(s.scale for s in steps):g} to {max(s.scale for s in steps):g}"
    if goal == "max_action_tokens":
        best = min(measured, key=lambda s: s.tokens_quantile or math.inf, default=None)
        closest = (
            f"; the shortest was {best.tokens_quantile:.0f} tokens at scale {best.scale:g}" if best else ""
        )
        raise FitError(
            f"{walked} fits the token budget{closest}: raise max_action_tokens, lower the chunk size, "
            "or raise vocab_size"
        )
    best = min(measured, key=lambda s: s.mse if s.mse is not None else math.inf, default=None)
    closest = f"; the lowest was {best.mse:.3g} at scale {best.scale:g}" if best else ""
    raise FitError(
        f"{walked} meets target_mse{closest} (larger scales need a larger vocab_size): raise target_mse "
        "or vocab_size"
    )
