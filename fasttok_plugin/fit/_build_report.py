"""Assemble a `FitReport` from a finished fit: the plan's counts, the held-out measures, the tokenizer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from fasttok_plugin.fit._jsonable import jsonable
from fasttok_plugin.fit.report import DatasetFitStats, FitReport, HeadFitStats, TokenLengthStats
from fasttok_plugin.sampling import DatasetSampleReport, peak_rss_mb, sample_warnings

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.fit._progress import PhaseClock
    from fasttok_plugin.fit.evaluate import HeadEvaluation, HeldoutEvaluation
    from fasttok_plugin.fit.plan import FitPlan
    from fasttok_plugin.fit.source import PreparedFit
    from fasttok_plugin.heads import NormHeads

_HISTOGRAM_BINS = 20


def build_report(
    *,
    prepared: PreparedFit,
    plan: FitPlan,
    fit_counts: np.ndarray,
    sample_report: Sequence[DatasetSampleReport],
    evaluation: HeldoutEvaluation,
    tokenizer: FastTokenizer,
    fingerprint: str,
    sampler_settings: Mapping[str, Any],
    clock: PhaseClock,
) -> FitReport:
    """The report of a fit (``fit_counts`` / ``sample_report``: of the fit pass)."""
    settings, heads = prepared.settings, prepared.heads
    chunk_size, width = int(prepared.sampler.chunk_size), int(heads.max_action_dim)
    values, head_values = _chunk_values(settings, evaluation, chunk_size, width)
    datasets = _dataset_stats(prepared, plan, fit_counts, sample_report)
    acc = evaluation.heads
    all_lengths = [a.all_lengths() for a in acc]
    merged = np.concatenate(all_lengths) if all_lengths else np.zeros(0, np.int64)
    edges = _histogram_edges(merged)
    budget = settings.max_action_tokens
    # A head capped at max_heldout_chunks_per_head stands for all its held-out chunks in the mixture-wide
    # numbers: each evaluated chunk weighs (held-out chunks / evaluated chunks) of its head.
    head_weight = [_head_weight(datasets, h, lengths.size) for h, lengths in enumerate(all_lengths)]
    weights = np.concatenate(
        [np.zeros(0)] + [np.full(n.size, w) for n, w in zip(all_lengths, head_weight, strict=True)]
    )
    overall = TokenLengthStats.from_lengths(merged, weights if merged.size else None)
    truncated, weighted_truncated, sq_error, elements = _weighted_sums(acc, head_weight)
    config = prepared.config
    return FitReport(
        fit_fingerprint=fingerprint,
        norm_heads_fingerprint=heads.fingerprint,
        mixture_sha256=None if config is None else config.sha256,
        mixture_path=None if config is None or config.path is None else str(config.path),
        settings=jsonable(settings.to_dict()),
        sampler_settings=jsonable(dict(sampler_settings)),
        chunk_size=chunk_size,
        action_dim=width,
        normalization=settings.normalization,
        zero_range=settings.zero_range,
        head_grouping=str(getattr(heads, "grouping", "robot_control")),
        stats_source=str(getattr(heads, "stats_source", "stored")),
        transforms=_transforms(prepared.sampler),
        layout=str(getattr(settings, "layout", "padded")),
        sampled=sum(d.sampled for d in datasets),
        fit=int(fit_counts.sum()),
        heldout=int(plan.heldout_counts.sum()),
        skipped_nonfinite=sum(d.skipped_nonfinite for d in datasets),
        token_lengths=overall,
        max_action_tokens=budget,
        truncated=truncated,
        truncation_rate=(weighted_truncated / float(weights.sum()))
        if (budget is not None and merged.size)
        else None,
        roundtrip_mse=(sq_error / elements) if elements else None,
        invalid_decodes=sum(a.invalid for a in acc),
        clamped_values=int(evaluation.clamped),
        compression_ratio=(values / overall.mean) if overall is not None and overall.mean > 0 else None,
        histogram_edges=tuple(float(e) for e in edges),
        datasets=datasets,
        heads=tuple(
            _head_stats(h, heads, datasets, acc[h], all_lengths[h], edges, budget, head_values[h])
            for h in range(len(heads.keys))
        ),
        tokenizer=_tokenizer_summary(tokenizer),
        timings={k: round(v, 4) for k, v in clock.seconds.items()},
        peak_memory_mb=round(peak_rss_mb(), 1),
        peak_memory_workers_mb=round(plan.peak_worker_mb, 1),
        warnings=(
            *_warnings(prepared, plan, datasets, evaluation, chunk_size, width),
            *sample_warnings(sample_report),
        ),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        heldout_split=plan.heldout_split,
        heldout_evaluated=int(plan.evaluated_counts.sum()),
    )


def _weighted_sums(acc: Sequence[Any], head_weight: Sequence[float]) -> tuple[int, float, float, float]:
    """Truncated rows (plain and weighted), squared error and elements over the heads, each head weighted."""
    pairs = list(zip(acc, head_weight, strict=True))
    return (
        sum(a.truncated for a in acc),
        sum(a.truncated * w for a, w in pairs),
        sum(a.sq_error * w for a, w in pairs),
        sum(a.elements * w for a, w in pairs),
    )


def _chunk_values(
    settings: Any, evaluation: HeldoutEvaluation, chunk_size: int, width: int
) -> tuple[float, list[float]]:
    """Values per chunk (``compression_ratio``'s numerator): mixture-wide and per head.

    ``padded``: ``T x D`` everywhere. ``native``: ``T x`` the mean width of the evaluated chunks.
    """
    padded = chunk_size * width
    if getattr(settings, "layout", "padded") != "native":
        return padded, [padded] * len(evaluation.heads)
    counts = [sum(n.size for n in a.lengths) for a in evaluation.heads]
    per_head = [
        chunk_size * a.widths / c if c else padded for a, c in zip(evaluation.heads, counts, strict=True)
    ]
    total = sum(counts)
    overall = chunk_size * sum(a.widths for a in evaluation.heads) / total if total else padded
    return overall, per_head


def _dataset_stats(
    prepared: PreparedFit,
    plan: FitPlan,
    fit_counts: np.ndarray,
    sample_report: Sequence[DatasetSampleReport],
) -> tuple[DatasetFitStats, ...]:
    by_entry = {r.entry: r for r in sample_report}
    datasets = []
    for position, entry in enumerate(prepared.sampler.resolved.entries):
        r = by_entry.get(int(entry.index))
        datasets.append(
            DatasetFitStats(
                entry=int(entry.index),
                name=entry.name,
                head=int(prepared.heads.dataset_to_head[position]),
                requested=int(plan.budgets[position]),
                sampled=0 if r is None else r.sampled,
                skipped_nonfinite=0 if r is None else r.skipped_nonfinite,
                fit=int(fit_counts[position]),
                heldout=int(plan.heldout_counts[position]),
                valid_starts=0 if r is None else r.valid_starts,
                repeated_starts=0 if r is None else r.repeated_starts,
                freq=None if r is None else r.freq,
                error=None if r is None else r.error,
                heldout_episodes=int(plan.split.heldout_episodes[position].size),
                heldout_evaluated=int(plan.evaluated_counts[position]),
            )
        )
    return tuple(datasets)


def _head_weight(datasets: Sequence[DatasetFitStats], head: int, evaluated: int) -> float:
    """Held-out chunks of ``head`` per evaluated one (1.0 when nothing was capped or evaluated)."""
    heldout = sum(d.heldout for d in datasets if d.head == head)
    return heldout / evaluated if evaluated else 1.0


def _histogram_edges(lengths: np.ndarray) -> np.ndarray:
    """At most ``_HISTOGRAM_BINS`` integer-aligned bins over the held-out token lengths."""
    if not lengths.size:
        return np.zeros(0)
    hi = int(lengths.max()) + 1
    lo = int(lengths.min())
    return np.unique(np.linspace(lo, hi, min(_HISTOGRAM_BINS, hi - lo) + 1).round())


def _head_stats(
    h: int,
    heads: NormHeads,
    datasets: Sequence[DatasetFitStats],
    a: HeadEvaluation,
    lengths: np.ndarray,
    edges: np.ndarray,
    budget: int | None,
    values: float,
) -> HeadFitStats:
    members = [d for d in datasets if d.head == h]
    stats = TokenLengthStats.from_lengths(lengths)
    return HeadFitStats(
        head=h,
        key=heads.keys[h],
        entries=tuple(d.entry for d in members),
        native_dim=int(heads.native_dims[h]),
        fallback=any(d.entry in heads.fallback_entries for d in members),
        sampled=sum(d.sampled for d in members),
        fit=sum(d.fit for d in members),
        heldout=sum(d.heldout for d in members),
        token_lengths=stats,
        truncated=a.truncated,
        truncation_rate=(a.truncated / lengths.size) if (budget is not None and lengths.size) else None,
        roundtrip_mse=(a.sq_error / a.elements) if a.elements else None,
        invalid_decodes=a.invalid,
        compression_ratio=(values / stats.mean) if stats is not None and stats.mean > 0 else None,
        histogram=tuple(int(c) for c in np.histogram(lengths, bins=edges)[0]) if edges.size > 1 else (),
        heldout_episodes=sum(d.heldout_episodes or 0 for d in members),
        heldout_evaluated=sum(d.heldout_evaluated or 0 for d in members),
    )


def _warnings(
    prepared: PreparedFit,
    plan: FitPlan,
    datasets: Sequence[DatasetFitStats],
    evaluation: HeldoutEvaluation,
    chunk_size: int,
    width: int,
) -> list[str]:
    warnings: list[str] = []
    if prepared.preflight is not None:
        warnings += [str(f) for f in prepared.preflight.warnings]
    warnings += prepared.heads.warnings()
    warnings += _head_coverage_warnings(prepared, plan, datasets)
    skipped = sum(d.skipped_nonfinite for d in datasets)
    if skipped:
        warnings.append(f"{skipped} sampled chunk(s) held NaN/Inf and were skipped (see datasets)")
    if evaluation.clamped:
        warnings.append(
            f"{evaluation.clamped} held-out value(s) fell outside the fitted token range (clamped)"
        )
    invalid = sum(a.invalid for a in evaluation.heads)
    if invalid:
        shape = (
            f"{chunk_size}x{width}"
            if prepared.settings.layout == "padded"
            else f"{chunk_size}x(native width)"
        )
        warnings.append(f"{invalid} held-out chunk(s) did not decode back to {shape} values")
    return warnings


def _head_coverage_warnings(
    prepared: PreparedFit, plan: FitPlan, datasets: Sequence[DatasetFitStats]
) -> list[str]:
    """Heads the fit or the held-out measures miss: no chunk at all, no fit chunk, a single episode."""
    weights = prepared.sampler.resolved.config.weights
    out = []
    for h, key in enumerate(prepared.heads.keys):
        members = [(p, d) for p, d in enumerate(datasets) if d.head == h]
        weighted = [d for p, d in members if p < len(weights) and _positive(weights[p])]
        if not weighted:
            continue
        names = ", ".join(f"entry {d.entry} ({d.name})" for d in weighted)
        fit, heldout = sum(d.fit for d in weighted), sum(d.heldout for d in weighted)
        requested = sum(d.requested for d in weighted)
        if fit == 0 and heldout == 0:
            fix = "raise total_chunks or its weight" if requested == 0 else "see the datasets' errors"
            out.append(
                f"head {key} ({names}) has a positive weight but got 0 fit and 0 held-out chunks "
                f"({requested} requested of total_chunks {prepared.settings.total_chunks}): it does not "
                f"shape the vocabulary and is not measured; {fix}"
            )
        elif fit == 0:
            out.append(f"head {key} ({names}) got no fit chunks: it does not shape the vocabulary")
        elif h in plan.split.single_episode_heads:
            out.append(
                f"head {key} ({names}) has a single episode long enough for a chunk: it is fit on it and "
                f"has no held-out chunks, so the report has no held-out measures for it; add episodes"
            )
        elif heldout == 0:
            out.append(
                f"head {key} ({names}) got no held-out chunks, so the report has no held-out measures for "
                f"it; raise total_chunks or its weight"
            )
    return out


def _positive(weight: object) -> bool:
    return isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight > 0


def _tokenizer_summary(tokenizer: FastTokenizer) -> dict[str, Any]:
    return {
        "pipeline": tokenizer.pipeline,
        "vocab_size": int(tokenizer.vocab_size),
        "learned_vocab": int(tokenizer.tokenizer.get_vocab_size()),
        "scale": float(tokenizer.scale),
        "min_token": int(tokenizer.min_token),
        "max_token": int(tokenizer.max_token),
    }


def _transforms(sampler: Any) -> tuple[str, ...]:
    """Each entry's transform, described; () when no entry is transformed."""
    transforms = getattr(sampler, "transforms", ())
    if all(t is None for t in transforms):
        return ()
    return tuple("identity" if t is None else t.describe() for t in transforms)
