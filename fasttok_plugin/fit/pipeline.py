"""The fit pipeline: mixture -> preflight -> norm heads -> sample -> Normalize -> FAST fit -> held-out report.

`fit_tokenizer` is what the ``fasttok fit`` CLI and the Lightning callback run. Its steps:

1. **Preflight** (`fasttok_plugin.preflight.run_preflight`, imported lazily): any error raises
   `PreflightError` before a single action is read.
2. **Norm heads**: the very `NormHeads` the policy's `Normalize` module is built from.
3. **Sample** with `ChunkSampler` (weighted, resampled, padded; see `fasttok_plugin.sampling`).
4. **Split** into fit corpus and held-out set by episode, stratified across heads and datasets
   (see `fasttok_plugin.fit.plan`).
5. **Normalize** with the torch `Normalize` module itself (bit-identical to training).
6. **Fit** `FastTokenizer.fit` on the streamed, normalized fit batches (``layout="native"``: each chunk
   at its entry's native width, one tokenizer over the mixed widths).
7. **Evaluate** on the held-out chunks (the sampler is re-run with the same seed, so nothing but the
   fit corpus is held in memory): token lengths, truncation against ``max_action_tokens``, round-trip
   MSE, compression, per head.

`FitPlan` exposes steps 3-5 (``fit_batches`` / ``heldout_batches``) so tests and other callers can see the
exact corpus that was fit.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fasttok_plugin.errors import FitError
from fasttok_plugin.fit._build_report import build_report
from fasttok_plugin.fit._outdir import check_out_dir, save_atomically
from fasttok_plugin.fit._progress import ElapsedBar, PhaseClock, progress_bar
from fasttok_plugin.fit.evaluate import evaluate_heldout
from fasttok_plugin.fit.fingerprint import FINGERPRINT_KEY, NORM_HEADS_KEY, fit_fingerprint
from fasttok_plugin.fit.plan import FitPlan
from fasttok_plugin.fit.report import REPORT_KEY, REPORT_NAME, FitReport
from fasttok_plugin.fit.settings import FitSettings
from fasttok_plugin.fit.source import FitSource, PreparedFit, prepare_fit
from fasttok_plugin.sampling.report import unsampled

if TYPE_CHECKING:  # pragma: no cover - typing only; torch/codec are imported lazily
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.mixture import MixtureConfig
    from fasttok_plugin.normalize import Normalize
    from fasttok_plugin.sampling import DatasetSampleReport

__all__ = ["fit_tokenizer"]

logger = logging.getLogger(__name__)


def fit_tokenizer(
    source: str | os.PathLike[str] | MixtureConfig | FitSource,
    settings: FitSettings | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    preflight: bool = True,
    on_plan: Callable[[FitPlan], None] | None = None,
) -> tuple[FastTokenizer, FitReport]:
    """Fit a FAST tokenizer on a mixture, normalized exactly as the policy will see it.

    Args:
        source: A mixture file, a parsed `MixtureConfig`, or a `FitSource` (norm heads + sampler).
        settings: Fit settings (default `FitSettings()`); unset chunk size / action dim come from the
            mixture (or the source), else the package defaults.
        out_dir: When given, the tokenizer and ``fit_report.json`` are written there in one atomic
            directory rename (an existing tokenizer directory is replaced).
        progress: Show a tqdm progress bar per phase.
        preflight: Run the preflight first (errors stop the fit before anything is sampled).
        on_plan: Called with the `FitPlan` before sampling (lets callers inspect the corpus split).

    Returns:
        ``(tokenizer, report)``; ``tokenizer.metadata`` carries the fingerprints, normalization
        convention, chunk size, action dim and the report.

    Raises:
        PreflightError: The preflight found errors (nothing was sampled).
        MixtureError: The mixture file is unreadable.
        NormHeadsError: The heads have errors and ``preflight`` is False.
        SamplingError: Invalid weights.
        OutDirError: ``out_dir`` is a file, a non-tokenizer folder, or cannot be created (checked first).
        FitError: Invalid settings, unreadable dataset frames, or nothing to fit.
        CodecError: The fit corpus does not fit the vocabulary (raise vocab_size or lower scale).
    """
    settings = settings or FitSettings()
    clock = PhaseClock()
    if out_dir is not None:
        check_out_dir(Path(out_dir).absolute())
    prepared = prepare_fit(source, settings, preflight=preflight, clock=clock)
    settings, heads, sampler = prepared.settings, prepared.heads, prepared.sampler
    sampler_settings = sampler.settings()
    fingerprint = fit_fingerprint(heads, settings, sampler_settings)
    plan = FitPlan(sampler, _normalize(heads, settings), settings, clock=clock)
    if on_plan is not None:
        on_plan(plan)
    _log_plan(plan, prepared)

    # Pass 1: sample -> split -> Normalize -> FastTokenizer.fit (streamed).
    tokenizer = _fit_pass(plan, settings, progress=progress, clock=clock)
    fit_counts, sample_report = plan.fit_counts.copy(), plan.sample_report
    # Pass 2: the held-out chunks (same seed, same stream) -> encode / decode.
    evaluation = evaluate_heldout(
        tokenizer, plan, heads, max_action_tokens=settings.max_action_tokens, progress=progress, clock=clock
    )
    report = build_report(
        prepared=prepared,
        plan=plan,
        fit_counts=fit_counts,
        sample_report=sample_report,
        evaluation=evaluation,
        tokenizer=tokenizer,
        fingerprint=fingerprint,
        sampler_settings=sampler_settings,
        clock=clock,
    )
    tokenizer.metadata.update(_tokenizer_metadata(prepared, fingerprint, report))
    if out_dir is not None:
        start = time.perf_counter()
        save_atomically(
            tokenizer,
            report,
            Path(out_dir),
            norm_stats=folder_norm_stats(heads, settings, getattr(prepared.sampler, "transforms", None)),
        )
        logger.info(
            "saved tokenizer and %s to %s in %.2f s", REPORT_NAME, out_dir, time.perf_counter() - start
        )
    return tokenizer, report


def _normalize(heads: NormHeads, settings: FitSettings) -> Normalize:
    """The policy's `Normalize` for these settings (the convention's formula, else the package's)."""
    from fasttok_plugin.normalize import Normalize

    if settings.convention is not None:  # resolved: carries every override (mode, eps, dtype, ...)
        from fasttok_plugin.conventions import convention_from_dict

        return Normalize.for_convention(heads, convention_from_dict(settings.convention))
    return Normalize(heads, mode=settings.normalization, zero_range=settings.zero_range, eps=settings.eps)


def _log_plan(plan: FitPlan, prepared: PreparedFit) -> None:
    total = int(plan.budgets.sum())
    logger.info(
        "fit: %d chunks of %dx%d over %d entries / %d heads (fit quota %d, held-out about %d)",
        total,
        int(prepared.sampler.chunk_size),
        int(prepared.heads.max_action_dim),
        len(plan.budgets),
        prepared.heads.num_heads,
        int(plan.fit_quota.sum()),
        int(plan.heldout_pool.sum()),
    )


def _fit_pass(plan: FitPlan, settings: FitSettings, *, progress: bool, clock: PhaseClock) -> FastTokenizer:
    """Fit the tokenizer on the plan's fit corpus, streamed batch by batch; sets ``plan.fit_counts``.

    Raises:
        FitError: A dataset could not be sampled (under ``on_dataset_error="raise"``), or the fit corpus
            is empty.
    """
    from fasttok_plugin.codec import FastTokenizer

    total = int(plan.budgets.sum())
    bar = progress_bar(progress, total, "sample + normalize")
    bpe_bar: Any = None

    native = settings.layout == "native"

    def fit_stream() -> Iterator[Any]:
        nonlocal bpe_bar
        fed = 0
        for batch in plan.fit_batches():
            bar.update(len(batch))
            fed += len(batch)
            # native: the codec fits row i as normalized[i, :, :action_dims[i]].
            yield (batch.normalized, batch.action_dims) if native else batch.normalized
        bar.update(max(0, total - bar.n))
        bar.close()
        # Raised inside the stream, so FastTokenizer.fit stops before training on a bad corpus.
        _check_sample_errors(plan.sample_report, settings)
        if fed == 0:
            raise FitError(
                "the fit corpus is empty: no sampled chunk is on the fit side (see the per-dataset "
                "report); raise total_chunks or lower heldout_fraction"
            )
        # BPE training has no steps to count: the bar shows the elapsed time instead of a 0/1 bar.
        bpe_bar = ElapsedBar(progress, "BPE fit")

    try:
        with clock.phase_excluding("fit", ("sample", "normalize")):
            tokenizer = FastTokenizer.fit(fit_stream(), **settings.codec_arguments(), layout=settings.layout)
    finally:
        if bpe_bar is not None:
            bpe_bar.close()
    return tokenizer


def _check_sample_errors(reports: Sequence[DatasetSampleReport], settings: FitSettings) -> None:
    failed, lines = unsampled(reports)
    if not failed:
        return
    if settings.on_dataset_error == "raise":
        raise FitError(
            f"{len(failed)} dataset(s) could not be sampled:\n{lines}\nfix or remove them (or fit without "
            f"them with on_dataset_error='skip')"
        )
    logger.warning("fitting without %d dataset(s) that could not be sampled:\n%s", len(failed), lines)


def folder_norm_stats(heads: NormHeads, settings: FitSettings, transforms: Any = None) -> dict[str, Any]:
    """The folder's ``norm_stats.json`` (DESIGN §13): the heads and the normalization they were fit with.

    Args:
        heads: The fit's norm heads.
        settings: The fit's resolved settings (`FitPlan.settings`).
        transforms: What the sampler applied per entry (``ChunkSampler.transforms``), so inference can undo
            it (`ActionDecoder` adds the state back).
    """
    from fasttok_plugin.conventions import convention_from_dict
    from fasttok_plugin.norm_stats import norm_stats_document

    convention = convention_from_dict(settings.convention) if settings.convention is not None else None
    return norm_stats_document(
        heads,
        normalization=str(settings.normalization),
        zero_range=settings.zero_range,
        eps=float(settings.eps),
        convention=convention,
        layout=settings.layout,
        transforms=transforms,
    )


def _tokenizer_metadata(prepared: PreparedFit, fingerprint: str, report: FitReport) -> dict[str, Any]:
    """What the tokenizer's sidecar records about its fit (the callback reads it to reuse the folder)."""
    settings, heads = prepared.settings, prepared.heads
    convention = folder_norm_stats(heads, settings)["convention"] if settings.convention is not None else None
    return {
        FINGERPRINT_KEY: fingerprint,
        NORM_HEADS_KEY: heads.fingerprint,
        "normalization": str(settings.normalization),
        "zero_range": settings.zero_range,
        "eps": float(settings.eps),
        **({"convention": convention} if convention is not None else {}),
        "chunk_size": int(prepared.sampler.chunk_size),
        "action_dim": int(heads.max_action_dim),
        "head_keys": list(heads.keys),
        REPORT_KEY: report.to_dict(),
        # Only a non-default layout is recorded, so padded sidecars stay byte-identical.
        **({"layout": settings.layout} if settings.layout != "padded" else {}),
    }
