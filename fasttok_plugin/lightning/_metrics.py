"""What the callback hands the trainer's loggers: the fit's parameters and the fit report as scalars."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.fit.report import FitReport
    from fasttok_plugin.fit.settings import FitSettings
    from fasttok_plugin.heads import NormHeads

__all__ = ["log_fit", "report_metrics", "tokenizer_params"]

log = logging.getLogger(__name__)


def report_metrics(report: FitReport) -> dict[str, float]:
    """The fit report as ``fasttok/...`` scalars: overall, then per head under ``fasttok/head/<key>/...``.

    Token lengths and truncation are measured on held-out chunks; the truncation rate is against the policy's
    ``max_action_tokens``.
    """
    metrics: dict[str, float] = {}

    def put(name: str, value: Any) -> None:
        if isinstance(value, (bool, int, float)) and math.isfinite(float(value)):
            metrics[name] = float(value)

    def lengths(prefix: str, stats: Any) -> None:
        if stats is None:
            return
        for field_name in ("mean", "p50", "p90", "p99", "max"):
            put(f"{prefix}tokens_{field_name}", getattr(stats, field_name, None))

    lengths("fasttok/", report.token_lengths)
    put("fasttok/truncation_rate", report.truncation_rate)
    put("fasttok/roundtrip_mse", report.roundtrip_mse)
    put("fasttok/compression_ratio", report.compression_ratio)
    put("fasttok/invalid_decodes", report.invalid_decodes)
    put("fasttok/fit_chunks", report.fit)
    put("fasttok/heldout_chunks", report.heldout)
    for head in report.heads:
        prefix = f"fasttok/head/{head.key}/"
        lengths(prefix, head.token_lengths)
        put(f"{prefix}truncation_rate", head.truncation_rate)
        put(f"{prefix}roundtrip_mse", head.roundtrip_mse)
        put(f"{prefix}compression_ratio", head.compression_ratio)
    return metrics


def tokenizer_params(
    *,
    fingerprint: str,
    heads: NormHeads,
    tokenizer: FastTokenizer,
    settings: FitSettings,
    tokenizer_dir: str,
    fitted: bool,
) -> dict[str, Any]:
    """The ``fasttok/...`` hyperparameters of a run: which tokenizer, fit how, for which heads."""
    return {
        "fasttok/fingerprint": fingerprint,
        "fasttok/norm_heads_fingerprint": heads.fingerprint,
        "fasttok/tokenizer_dir": tokenizer_dir,
        "fasttok/fitted": fitted,
        "fasttok/vocab_size": tokenizer.vocab_size,
        "fasttok/scale": tokenizer.scale,
        "fasttok/pipeline": tokenizer.pipeline,
        "fasttok/chunk_size": tokenizer.time_horizon,
        "fasttok/action_dim": tokenizer.action_dim,
        "fasttok/normalization": str(settings.normalization),
        "fasttok/zero_range": settings.zero_range,
        "fasttok/max_action_tokens": settings.max_action_tokens,
        "fasttok/num_heads": len(heads.keys),
        "fasttok/head_keys": ", ".join(heads.keys),
        # Only a native tokenizer adds keys, so padded runs log what they always did.
        **(
            {
                "fasttok/layout": "native",
                "fasttok/action_dims": ", ".join(map(str, tokenizer.action_dims or ())),
            }
            if getattr(tokenizer, "layout", "padded") == "native"
            else {}
        ),
    }


def log_fit(trainer: pl.Trainer, report: FitReport | None, *, fitted: bool, params: dict[str, Any]) -> None:
    """Log the fit report (its warnings only after a fit) and hand params and metrics to the loggers."""
    if report is not None and fitted:
        for warning in report.warnings:
            log.warning("fit report: %s", warning)
    if report is not None:
        log.info(
            "FAST tokenizer report: %s",
            ", ".join(f"{k}={v:.4g}" for k, v in report_metrics(report).items() if k.count("/") == 1),
        )
    if not trainer.loggers:
        return
    metrics = report_metrics(report) if report is not None else {}
    for logger in trainer.loggers:
        logger.log_hyperparams(params)
        if metrics:
            logger.log_metrics(metrics, step=trainer.global_step)
