"""What the callback hands the trainer's loggers and the console: parameters, report scalars, a summary.

Metric names are safe for every Lightning logger: each ``/``-separated part matches W&B's
``^[_a-zA-Z][_a-zA-Z0-9]*$`` (docs.wandb.ai, "Metric naming constraints"), which is stricter than
MLflow's ``^[/\\w.\\- ]*$`` (mlflow/utils/validation.py; Lightning's MLFlowLogger deletes other
characters, so a head key ``panda::joint_pos`` became ``pandajoint_pos``), TensorBoard's ``[-/\\w.]``
and CSV (no ``,`` or quotes).
"""

from __future__ import annotations

import logging
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl

from fasttok_plugin._report_text import render_report

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.fit.report import FitReport
    from fasttok_plugin.fit.settings import FitSettings
    from fasttok_plugin.heads import NormHeads

__all__ = [
    "head_metric_names",
    "log_fit",
    "log_prepared",
    "report_metrics",
    "run_hyperparams",
    "tokenizer_params",
]

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def head_metric_names(keys: list[str]) -> list[str]:
    """A metric-safe, case-insensitively unique name per head key (``arm::joint_pos`` -> ``arm__joint_pos``).

    Every character but letters, digits and ``_`` becomes ``_``; a leading digit gets a ``_`` prefix; a name
    already taken (W&B compares names case-insensitively) gets the head's index appended.
    """
    names: list[str] = []
    taken: set[str] = set()
    for index, key in enumerate(keys):
        name = _UNSAFE.sub("_", key) or f"head_{index}"
        if name[0].isdigit():
            name = f"_{name}"
        if name.lower() in taken:
            name = f"{name}_{index}"
        taken.add(name.lower())
        names.append(name)
    return names


def report_metrics(report: FitReport) -> dict[str, float]:
    """The fit report as ``fasttok/...`` scalars: overall, then per head under ``fasttok/head/<name>/...``.

    ``<name>`` is the head key made metric-safe (:func:`head_metric_names`). Token lengths and truncation are
    measured on held-out chunks; the truncation rate is against the policy's ``max_action_tokens``.
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
    names = head_metric_names([head.key for head in report.heads])
    for head, name in zip(report.heads, names, strict=True):
        prefix = f"fasttok/head/{name}/"
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


def run_hyperparams(trainer: pl.Trainer, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` merged into the hyperparameters Lightning logs for the run; the run's own values win.

    The callback logs during ``setup``, before Lightning logs the module's and datamodule's hyperparameters.
    TensorBoard keeps the first hyperparameter set of a run (its event reader stores a tag's metadata the
    first time it sees it), so that first set must already hold the model's own values.
    """
    own: dict[str, Any] = {}
    module = trainer.lightning_module
    # Lightning's order (pytorch_lightning/loggers/utilities.py::_log_hyperparams): module, then datamodule.
    for holder in (module, trainer.datamodule):
        if holder is not None and getattr(holder, "_log_hyperparams", False):
            own.update(holder.hparams_initial)
    own.pop("_class_path", None)  # LightningCLI's internal entry, which Lightning does not log either
    merged = dict(own)
    for key, value in params.items():
        if key in own and not _same(own[key], value):
            log.warning(
                "hyperparameter %r keeps the run's own value %r; the tokenizer's %r is not logged",
                key,
                own[key],
                value,
            )
            continue
        merged[key] = value
    return merged


def _same(a: Any, b: Any) -> bool:
    """Equal values; False for values that do not compare to a bool (arrays, tensors)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):
        return False


def log_fit(
    trainer: pl.Trainer,
    report: FitReport | None,
    *,
    fitted: bool,
    params: dict[str, Any],
    summary: bool = True,
) -> None:
    """Print the summary (after a fit, if ``summary``), log warnings, hand params and metrics to loggers."""
    if report is not None and fitted:
        for warning in report.warnings:
            log.warning("fit report: %s", warning)
        if summary:
            # Printed, as Lightning prints its model summary: a logger nobody configured would drop it.
            directory = params.get("fasttok/tokenizer_dir")
            text = render_report(report, directory=Path(directory) if directory else None, datasets=False)
            sys.stdout.write(f"FAST tokenizer fit report\n{text}")
            sys.stdout.flush()
    if not trainer.loggers:
        return
    metrics = report_metrics(report) if report is not None else {}
    merged = run_hyperparams(trainer, params)
    for logger in trainer.loggers:
        logger.log_hyperparams(merged)
        if metrics:
            logger.log_metrics(metrics, step=trainer.global_step)


def log_prepared(
    trainer: pl.Trainer, prepared: Any, settings: FitSettings, tokenizer_dir: Path, summary: bool
) -> None:
    """Rank 0 after the callback's setup: :func:`log_fit` for the tokenizer it fit or loaded."""
    params = tokenizer_params(
        fingerprint=prepared.fingerprint,
        heads=prepared.heads,
        tokenizer=prepared.tokenizer,
        settings=settings,
        tokenizer_dir=str(tokenizer_dir),
        fitted=prepared.fitted,
    )
    log_fit(trainer, prepared.report, fitted=prepared.fitted, params=params, summary=summary)
