r"""
FAST tokenizer
==============

Fit (or reuse) a FAST action tokenizer for the datamodule's mixture before training starts, and attach it to
the LightningModule. The tokenizer is fit on chunks normalized by the datamodule's own norm heads, so the
tokens the model sees at train time come from exactly the normalization the tokenizer was fit with.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import pytorch_lightning as pl
from pytorch_lightning.callbacks.callback import Callback
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from pytorch_lightning.utilities.rank_zero import rank_zero_only, rank_zero_warn
from typing_extensions import override

from fasttok_plugin.errors import TokenizerMismatchError
from fasttok_plugin.fitting import (
    DEFAULT_HELDOUT_FRACTION,
    DEFAULT_MAX_ACTION_TOKENS,
    DEFAULT_MAX_FIT_CHUNKS,
    DEFAULT_TOTAL_CHUNKS,
    FitReport,
    FitSettings,
)

if TYPE_CHECKING:
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.normalize import Normalize
    from fasttok_plugin.resolve import ResolvedMixture
    from fasttok_plugin.sampling import ChunkSampler

__all__ = ["FastTokenizerCallback", "TokenizerMismatchError", "TokenizerSource"]

log = logging.getLogger(__name__)

# Files whose presence marks a folder as holding a tokenizer (ours or a reference processor directory).
_TOKENIZER_MARKERS = ("processor_config.json", "fasttok.json", "tokenizer.json")
_REPORT_FILE = "fit_report.json"
# Key of the fit fingerprint in the tokenizer's sidecar metadata (written by fitting.fit_tokenizer).
_FINGERPRINT_KEY = "fit_fingerprint"
# FitSettings fields that never change the tokenizer (fitting.fit_fingerprint leaves them out).
_NOT_FINGERPRINTED = frozenset({"workers", "max_action_tokens", "on_dataset_error"})


@runtime_checkable
class TokenizerSource(Protocol):
    """What :class:`FastTokenizerCallback` needs from ``trainer.datamodule`` (and all it uses).

    :class:`~fasttok_plugin.lightning.MixtureDataModule` implements it; so can any datamodule. The attributes
    must be ready when ``Callback.setup`` runs, i.e. built in the datamodule's ``setup()`` (Lightning calls it
    first).

    Attributes:
        norm_heads: The :class:`~fasttok_plugin.heads.NormHeads` the model normalizes its actions with.
        chunk_sampler: The :class:`~fasttok_plugin.sampling.ChunkSampler` to draw fit chunks from; its
            ``settings()`` enter the fit fingerprint.
        resolved_mixture: The :class:`~fasttok_plugin.resolve.ResolvedMixture` the heads were built from, for
            the preflight; ``None`` limits the preflight to the norm heads' own checks.
    """

    norm_heads: NormHeads
    chunk_sampler: ChunkSampler
    resolved_mixture: ResolvedMixture | None


@dataclass(frozen=True)
class _RankZeroOutcome:
    """What global rank 0 decided in ``setup``; broadcast so every rank acts on the same decision."""

    fingerprint: str | None
    fitted: bool
    error: BaseException | None = None
    error_text: str = ""


@dataclass(frozen=True)
class _Prepared:
    """The tokenizer prepared for one datamodule (reused by later stages)."""

    heads: NormHeads
    fingerprint: str
    tokenizer: FastTokenizer
    report: FitReport | None
    fitted: bool


class FastTokenizerCallback(Callback):
    r"""Fit or load the FAST action tokenizer for ``trainer.datamodule``'s mixture and attach it to the model.

    In ``setup`` (once; later stages reuse the result):

    1. **Preflight** the datamodule's mixture with its own resolved mixture and norm heads; any error stops
       the run with one :class:`~fasttok_plugin.preflight.PreflightError` listing every finding, before any
       chunk is sampled, any tokenizer fit or any step taken.
    2. **Fingerprint** the fit: norm-heads fingerprint + chunk size + action dim + codec and sampler settings.
    3. If ``tokenizer_dir`` holds a tokenizer with that fingerprint, **load** it (no sampling, no fit).
       Otherwise global rank 0 **fits** one (chunks from the datamodule's sampler, normalized by its heads),
       writes it atomically (a half-written folder is never left for a later run to load), the ranks
       synchronize, and every rank loads it. A tokenizer fit for another fingerprint is an error, or is
       replaced with ``on_mismatch="refit"``.
    4. **Attach** the tokenizer as ``pl_module.<attribute>`` (and, with ``normalize_attribute``, the matching
       :class:`~fasttok_plugin.normalize.Normalize` module), and log the fit report to the trainer's loggers.

    The callback's ``state_dict`` records the fingerprint, so resuming from a checkpoint with a changed
    mixture is detected (an error, or a warning with ``on_mismatch="refit"``). Under DDP, ``tokenizer_dir``
    must be on a filesystem every rank can read.

    Args:
        tokenizer_dir: Folder holding (or receiving) the tokenizer, in the reference processor layout plus the
            ``fasttok.json`` sidecar and ``fit_report.json``.
        vocab_size: BPE vocabulary size.
        scale: DCT coefficient scale before rounding.
        pipeline: ``"char"`` (full alphabet) or ``"reference"`` (byte-identical to the reference processor).
        min_frequency: BPE merge threshold.
        max_token_length: Longest BPE token (the trainer's cap, not the policy's budget).
        total_chunks: Chunks sampled from the mixture for fitting and evaluation.
        max_fit_chunks: At most this many chunks go into the BPE fit (stratified); ``None``: no cap.
        heldout_fraction: Share of ``total_chunks`` held out for the fit report (``0 < f < 1``).
        max_action_tokens: The policy's token budget per chunk; the report gives the truncation rate
            against it.
        seed: Seed of the fit sampling.
        workers: Sampler worker processes while fitting (never changes the result).
        normalization: Normalization mode of the fit corpus (``"min_max"``, ``"mean_std"`` or ``"identity"``).
        zero_range: How zero-range dims normalize (``"center"`` -> 0, ``"legacy"`` -> -1).
        eps: Zero-range threshold of the normalization.
        on_dataset_error: ``"raise"`` stops when a dataset's frames cannot be read; ``"skip"`` fits without
            it (the report lists the error).
        on_mismatch: ``"error"`` (default) or ``"refit"`` when the existing tokenizer or the resumed
            checkpoint was fit for another fingerprint.
        attribute: Name of the LightningModule attribute receiving the tokenizer.
        normalize_attribute: If set, name of the LightningModule attribute receiving the
            :class:`~fasttok_plugin.normalize.Normalize` module built from the same heads and settings.
        preflight: Run the preflight first (strongly recommended).
        strict: Treat preflight warnings as errors.
        progress: Show progress bars while fitting; ``None`` (default): when stderr is a terminal.

    Raises:
        ValueError: If an argument is out of range or has an unknown value.
        MisconfigurationException: If ``trainer.datamodule`` is ``None`` or lacks ``norm_heads`` /
            ``chunk_sampler`` / ``resolved_mixture``.
        PreflightError: If the preflight finds errors (all findings listed).
        TokenizerMismatchError: If ``tokenizer_dir`` or the resumed checkpoint belongs to another
            fingerprint and ``on_mismatch="error"``.
        FileExistsError: If ``tokenizer_dir`` is a non-empty folder that holds no tokenizer.

    Example::

        from pytorch_lightning import Trainer
        from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule

        datamodule = MixtureDataModule("mixture.json", chunk_size=50, max_action_dim=32, batch_size=64)
        tokenizer = FastTokenizerCallback("runs/tokenizer", vocab_size=1024, max_action_tokens=256)
        trainer = Trainer(max_steps=1000, callbacks=[tokenizer])
        trainer.fit(model, datamodule=datamodule)  # model.action_tokenizer is set before the first step
    """

    def __init__(
        self,
        tokenizer_dir: str | os.PathLike,
        *,
        vocab_size: int = 1024,
        scale: float = 10.0,
        pipeline: Literal["char", "reference"] = "char",
        min_frequency: int = 2,
        max_token_length: int | None = 10000,
        total_chunks: int = DEFAULT_TOTAL_CHUNKS,
        max_fit_chunks: int | None = DEFAULT_MAX_FIT_CHUNKS,
        heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
        max_action_tokens: int | None = DEFAULT_MAX_ACTION_TOKENS,
        seed: int = 0,
        workers: int = 0,
        normalization: Literal["min_max", "mean_std", "identity"] = "min_max",
        zero_range: Literal["center", "legacy"] = "center",
        eps: float = 1e-6,
        on_dataset_error: Literal["raise", "skip"] = "raise",
        on_mismatch: Literal["error", "refit"] = "error",
        attribute: str = "action_tokenizer",
        normalize_attribute: str | None = None,
        preflight: bool = True,
        strict: bool = False,
        progress: bool | None = None,
    ) -> None:
        super().__init__()
        from fasttok_plugin.fitting import FitSettings

        if not isinstance(tokenizer_dir, (str, os.PathLike)) or not str(tokenizer_dir).strip():
            raise ValueError(
                f"FastTokenizerCallback: tokenizer_dir must be a folder path, got {tokenizer_dir!r}"
            )
        _check_choice("on_mismatch", on_mismatch, ("error", "refit"))
        for name, value in (("attribute", attribute), ("normalize_attribute", normalize_attribute)):
            if value is None and name == "normalize_attribute":
                continue
            if not isinstance(value, str) or not value.isidentifier():
                raise ValueError(f"FastTokenizerCallback: {name} must be a Python identifier, got {value!r}")
        if normalize_attribute == attribute:
            raise ValueError(
                "FastTokenizerCallback: attribute and normalize_attribute must differ, both are "
                f"{attribute!r}"
            )
        try:
            # FitSettings validates every fit argument and names each bad value.
            self._settings = FitSettings(
                vocab_size=vocab_size,
                scale=scale,
                pipeline=pipeline,
                min_frequency=min_frequency,
                max_token_length=max_token_length,
                total_chunks=total_chunks,
                max_fit_chunks=max_fit_chunks,
                heldout_fraction=heldout_fraction,
                max_action_tokens=max_action_tokens,
                seed=seed,
                workers=workers,
                normalization=normalization,
                zero_range=zero_range,
                eps=eps,
                on_dataset_error=on_dataset_error,
            )
        except ValueError as exc:
            raise ValueError(f"FastTokenizerCallback: {exc}") from None

        self.tokenizer_dir = Path(tokenizer_dir).expanduser()
        self.on_mismatch = on_mismatch
        self.attribute = attribute
        self.normalize_attribute = normalize_attribute
        self.preflight = preflight
        self.strict = strict
        self.progress = progress

        self._prepared: _Prepared | None = None
        self._normalize: Normalize | None = None
        self._checkpoint_state: dict[str, Any] | None = None
        self._resume_checked = False

    # -- public read-only state -----------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str | None:
        """Fit fingerprint of the current tokenizer (``None`` before ``setup``)."""
        return self._prepared.fingerprint if self._prepared else None

    @property
    def tokenizer(self) -> FastTokenizer | None:
        """The tokenizer attached to the module (``None`` before ``setup``)."""
        return self._prepared.tokenizer if self._prepared else None

    @property
    def fit_report(self) -> FitReport | None:
        """The fit report kept in ``tokenizer_dir`` (``None`` before ``setup`` or if the folder has none)."""
        return self._prepared.report if self._prepared else None

    @property
    def fitted(self) -> bool | None:
        """``True``: this run fit the tokenizer; ``False``: it loaded one; ``None`` before setup."""
        return self._prepared.fitted if self._prepared else None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(attribute=self.attribute)

    # -- settings -------------------------------------------------------------------------------------------

    @property
    def settings(self) -> FitSettings:
        """The fit settings given to the callback (chunk size and action dim come from the datamodule)."""
        return self._settings

    def fit_settings(self, source: TokenizerSource) -> FitSettings:
        """The :class:`~fasttok_plugin.fitting.FitSettings` this callback fits with for ``source``."""
        return dataclasses.replace(
            self._settings,
            chunk_size=_chunk_size_of(source),
            max_action_dim=int(source.norm_heads.max_action_dim),
        )

    def _fingerprint(self, source: TokenizerSource, settings: FitSettings) -> str:
        from fasttok_plugin import fitting

        return fitting.fit_fingerprint(source.norm_heads, settings, source.chunk_sampler.settings())

    # -- hooks ----------------------------------------------------------------------------------------------

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        source = _source_of(trainer)
        if self._prepared is None or self._prepared.heads is not source.norm_heads:
            self._prepared = self._prepare(trainer, source)
            self._normalize = None
            self._log_report(trainer, self._prepared)
        self._attach(pl_module, source)
        self._check_resumed()

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Strategies that restore checkpoints after setup call load_state_dict late: check again here.
        self._check_resumed()

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check_resumed()

    @override
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check_resumed()

    @override
    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check_resumed()

    @override
    def state_dict(self) -> dict[str, Any]:
        if self._prepared is None:
            return {}
        return {
            "fingerprint": self._prepared.fingerprint,
            "norm_heads_fingerprint": self._prepared.heads.fingerprint,
            "tokenizer_dir": str(self.tokenizer_dir),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._checkpoint_state = dict(state_dict)
        self._resume_checked = False
        self._check_resumed()

    # -- setup steps ----------------------------------------------------------------------------------------

    def _prepare(self, trainer: pl.Trainer, source: TokenizerSource) -> _Prepared:
        """Preflight, fingerprint and fit on rank 0; then load on every rank."""
        rank_zero_error: BaseException | None = None
        outcome: _RankZeroOutcome | None = None
        if trainer.is_global_zero:
            try:
                outcome = self._decide_and_fit(source)
            except Exception as exc:  # every rank must learn about it, or the others hang in the broadcast
                rank_zero_error = exc
                outcome = _RankZeroOutcome(None, False, _picklable(exc), f"{type(exc).__name__}: {exc}")
        # The broadcast is the barrier: no rank loads before rank 0 has finished writing the tokenizer.
        outcome = trainer.strategy.broadcast(outcome, src=0)
        assert outcome is not None
        if outcome.error_text:
            if rank_zero_error is not None:
                raise rank_zero_error
            if outcome.error is not None:
                raise outcome.error
            raise RuntimeError(f"FastTokenizerCallback failed on global rank 0: {outcome.error_text}")

        settings = self.fit_settings(source)
        fingerprint = self._fingerprint(source, settings)
        if fingerprint != outcome.fingerprint:
            raise RuntimeError(
                f"global rank {trainer.global_rank} computed fit fingerprint {fingerprint} but rank 0 "
                f"computed {outcome.fingerprint}: the ranks see different mixture files or dataset "
                "statistics; make every rank read the same mixture and datasets"
            )
        tokenizer = self._load_matching(fingerprint)
        report = _load_report(self.tokenizer_dir)
        if trainer.is_global_zero:
            log.info(
                "%s FAST tokenizer %s (fingerprint %s, vocab %d)",
                "fit" if outcome.fitted else "loaded cached",
                self.tokenizer_dir,
                fingerprint[:12],
                tokenizer.vocab_size,
            )
        return _Prepared(source.norm_heads, fingerprint, tokenizer, report, outcome.fitted)

    def _decide_and_fit(self, source: TokenizerSource) -> _RankZeroOutcome:
        """Rank 0: preflight, then load-or-fit. Returns the fingerprint and whether a fit happened."""
        if self.preflight:
            self._run_preflight(source)
        settings = self.fit_settings(source)
        fingerprint = self._fingerprint(source, settings)
        if self._existing_matches(source, settings, fingerprint):
            return _RankZeroOutcome(fingerprint, fitted=False)
        from fasttok_plugin import fitting

        log.info("fitting a FAST tokenizer into %s (fingerprint %s)", self.tokenizer_dir, fingerprint[:12])
        # fit_tokenizer builds the tokenizer and fit_report.json in a sibling temp folder and renames it into
        # place, so a crash leaves either the previous folder or none, never a half-written tokenizer.
        progress = sys.stderr.isatty() if self.progress is None else self.progress
        fitting.fit_tokenizer(
            source, settings, out_dir=self.tokenizer_dir, progress=progress, preflight=False
        )
        return _RankZeroOutcome(fingerprint, fitted=True)

    def _run_preflight(self, source: TokenizerSource) -> None:
        from fasttok_plugin.preflight import run_preflight

        resolved = source.resolved_mixture
        heads = source.norm_heads
        if resolved is None:
            rank_zero_warn(
                "FastTokenizerCallback: the datamodule exposes no resolved_mixture, so the preflight is "
                "limited to the norm heads' own checks; expose it to get the full preflight"
            )
            heads.raise_for_errors()
            return
        result = run_preflight(
            resolved.config,
            resolved=resolved,
            norm_heads=heads,
            max_action_dim=heads.max_action_dim,
            chunk_size=_chunk_size_of(source),
            strict=self.strict,
        )
        for finding in result.warnings:
            log.warning("preflight: %s", finding)
        result.raise_for_errors()

    def _existing_matches(self, source: TokenizerSource, settings: FitSettings, fingerprint: str) -> bool:
        """Whether ``tokenizer_dir`` holds a tokenizer with ``fingerprint``; raises or warns on a mismatch."""
        from fasttok_plugin.codec import FastTokenizer, TokenizerFormatError

        folder = self.tokenizer_dir
        if not folder.exists():
            return False
        if not folder.is_dir():
            raise NotADirectoryError(
                f"tokenizer_dir {folder} is a file; point tokenizer_dir at a folder (it is created if "
                "missing)"
            )
        names = sorted(p.name for p in folder.iterdir())
        if not names:
            return False
        if not any(name in names for name in _TOKENIZER_MARKERS):
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise FileExistsError(
                f"tokenizer_dir {folder} is not empty but holds no tokenizer (found {shown}); point "
                "tokenizer_dir at an empty or new folder (nothing was overwritten)"
            )
        try:
            existing = FastTokenizer.load(folder)
        except TokenizerFormatError as exc:
            if self.on_mismatch == "refit":
                rank_zero_warn(
                    f"FastTokenizerCallback: replacing the unreadable tokenizer in {folder}: {exc}"
                )
                return False
            raise TokenizerMismatchError(
                f"tokenizer_dir {folder} holds an unreadable tokenizer ({exc}); delete the folder, point "
                "tokenizer_dir at a new folder, or pass on_mismatch='refit' to replace it",
                expected=fingerprint,
                found=None,
                tokenizer_dir=folder,
            ) from exc
        found = existing.metadata.get(_FINGERPRINT_KEY)
        if found == fingerprint:
            return True
        why = _explain_difference(existing.metadata, source, settings)
        message = (
            f"tokenizer_dir {folder} holds a tokenizer fit for fingerprint {found or '<none recorded>'}, "
            "but the datamodule's norm heads and this callback's settings give fingerprint "
            f"{fingerprint}{f' ({why})' if why else ''}. Fix: point tokenizer_dir at a new folder for this "
            "mixture, restore the mixture and settings the tokenizer was fit for, or pass "
            "on_mismatch='refit' to replace it"
        )
        if self.on_mismatch == "refit":
            rank_zero_warn(f"FastTokenizerCallback: refitting. {message}")
            return False
        raise TokenizerMismatchError(message, expected=fingerprint, found=found, tokenizer_dir=folder)

    def _load_matching(self, fingerprint: str) -> FastTokenizer:
        from fasttok_plugin.codec import FastTokenizer

        tokenizer = FastTokenizer.load(self.tokenizer_dir)
        found = tokenizer.metadata.get(_FINGERPRINT_KEY)
        if found != fingerprint:
            # Only possible if something rewrote the folder between rank 0's decision and this load.
            raise TokenizerMismatchError(
                f"tokenizer_dir {self.tokenizer_dir} changed while the ranks were loading it (expected "
                f"fingerprint {fingerprint}, found {found}); do not share one tokenizer_dir between "
                "concurrent runs",
                expected=fingerprint,
                found=found,
                tokenizer_dir=self.tokenizer_dir,
            )
        return tokenizer

    def _attach(self, pl_module: pl.LightningModule, source: TokenizerSource) -> None:
        assert self._prepared is not None
        setattr(pl_module, self.attribute, self._prepared.tokenizer)
        if self.normalize_attribute is None:
            return
        if self._normalize is None:
            from fasttok_plugin.normalize import Normalize

            settings = self._settings
            self._normalize = Normalize(
                source.norm_heads,
                mode=settings.normalization,
                zero_range=settings.zero_range,
                eps=settings.eps,
            )
        if getattr(pl_module, self.normalize_attribute, None) is not self._normalize:
            setattr(pl_module, self.normalize_attribute, self._normalize.to(pl_module.device))

    def _check_resumed(self) -> None:
        if self._resume_checked or self._checkpoint_state is None or self._prepared is None:
            return
        self._resume_checked = True
        old = self._checkpoint_state.get("fingerprint")
        new = self._prepared.fingerprint
        if old is None or old == new:
            return
        old_dir = self._checkpoint_state.get("tokenizer_dir", "?")
        heads_changed = self._checkpoint_state.get("norm_heads_fingerprint") not in (
            None,
            self._prepared.heads.fingerprint,
        )
        what = (
            "the mixture's norm heads changed"
            if heads_changed
            else "the tokenizer or sampling settings changed"
        )
        message = (
            f"the checkpoint being resumed was trained with tokenizer fingerprint {old} ({old_dir}), but "
            f"this run gives fingerprint {new} ({self.tokenizer_dir}): {what}, so the model learned other "
            "tokens. Fix: resume with the original mixture and settings, or start a fresh run"
        )
        if self.on_mismatch == "refit":
            rank_zero_warn(f"FastTokenizerCallback: {message} (continuing because on_mismatch='refit')")
            return
        raise TokenizerMismatchError(message, expected=new, found=old, tokenizer_dir=self.tokenizer_dir)

    @rank_zero_only
    def _log_report(self, trainer: pl.Trainer, prepared: _Prepared) -> None:
        report = prepared.report
        if report is not None and prepared.fitted:
            for warning in report.warnings:
                log.warning("fit report: %s", warning)
        if report is not None:
            log.info(
                "FAST tokenizer report: %s",
                ", ".join(f"{k}={v:.4g}" for k, v in report_metrics(report).items() if k.count("/") == 1),
            )
        if not trainer.loggers:
            return
        tokenizer = prepared.tokenizer
        settings = self._settings
        params: dict[str, Any] = {
            "fasttok/fingerprint": prepared.fingerprint,
            "fasttok/norm_heads_fingerprint": prepared.heads.fingerprint,
            "fasttok/tokenizer_dir": str(self.tokenizer_dir),
            "fasttok/fitted": prepared.fitted,
            "fasttok/vocab_size": tokenizer.vocab_size,
            "fasttok/scale": tokenizer.scale,
            "fasttok/pipeline": tokenizer.pipeline,
            "fasttok/chunk_size": tokenizer.time_horizon,
            "fasttok/action_dim": tokenizer.action_dim,
            "fasttok/normalization": str(settings.normalization),
            "fasttok/zero_range": settings.zero_range,
            "fasttok/max_action_tokens": settings.max_action_tokens,
            "fasttok/num_heads": len(prepared.heads.keys),
            "fasttok/head_keys": ", ".join(prepared.heads.keys),
        }
        metrics = report_metrics(report) if report is not None else {}
        for logger in trainer.loggers:
            logger.log_hyperparams(params)
            if metrics:
                logger.log_metrics(metrics, step=trainer.global_step)


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


# -- helpers -----------------------------------------------------------------------------------------------


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(
            f"FastTokenizerCallback: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )


def _source_of(trainer: pl.Trainer) -> TokenizerSource:
    datamodule = trainer.datamodule
    if datamodule is None:
        raise MisconfigurationException(
            "FastTokenizerCallback needs a datamodule: pass one to the Trainer, e.g. `trainer.fit(model, "
            "datamodule=MixtureDataModule('mixture.json'))`, or give your own datamodule the norm_heads, "
            "chunk_sampler and resolved_mixture attributes (see TokenizerSource)"
        )
    missing = [
        name for name in ("norm_heads", "chunk_sampler", "resolved_mixture") if not hasattr(datamodule, name)
    ]
    if missing:
        raise MisconfigurationException(
            f"FastTokenizerCallback: the datamodule {type(datamodule).__name__} lacks {', '.join(missing)}; "
            "it must expose norm_heads, chunk_sampler and resolved_mixture after its setup() (see "
            "TokenizerSource), e.g. use fasttok_plugin.lightning.MixtureDataModule"
        )
    for name in ("norm_heads", "chunk_sampler"):
        if getattr(datamodule, name) is None:
            raise MisconfigurationException(
                f"FastTokenizerCallback: {type(datamodule).__name__}.{name} is None; build it in the "
                "datamodule's setup() (Lightning runs it before the callback's setup)"
            )
    return datamodule  # type: ignore[return-value]


def _chunk_size_of(source: TokenizerSource) -> int:
    # The sampler's chunk size is the one the fit samples with; the datamodule's is a fallback.
    value = getattr(source.chunk_sampler, "chunk_size", None)
    if value is None:
        value = source.chunk_sampler.settings().get("chunk_size")
    if value is None:
        value = getattr(source, "chunk_size", None)
    if value is None:
        raise MisconfigurationException(
            f"FastTokenizerCallback: cannot tell the chunk size of {type(source).__name__}; expose "
            "`chunk_size` on the datamodule"
        )
    return int(value)


def _picklable(exc: BaseException) -> BaseException | None:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return None
    return exc


def _load_report(folder: Path) -> FitReport | None:
    if not (folder / _REPORT_FILE).is_file():
        return None
    try:
        return FitReport.load(folder)
    except Exception as exc:  # the report is informative; a broken one must not stop training
        rank_zero_warn(f"FastTokenizerCallback: could not read {folder / _REPORT_FILE}: {exc}")
        return None


def _explain_difference(metadata: Mapping[str, Any], source: TokenizerSource, settings: FitSettings) -> str:
    """Name what changed, from the components the tokenizer's sidecar records."""
    recorded_heads = metadata.get("norm_heads_fingerprint")
    if recorded_heads is None:
        return ""
    if recorded_heads != source.norm_heads.fingerprint:
        return (
            f"the norm heads differ: {recorded_heads[:12]} -> {source.norm_heads.fingerprint[:12]}; the "
            "mixture's datasets, tags, episodes or stats changed"
        )
    report = metadata.get("fit_report")
    if not isinstance(report, Mapping):
        return "same norm heads, other fit or sampling settings"
    changes = []
    old_settings = report.get("settings") if isinstance(report.get("settings"), Mapping) else {}
    new_settings = settings.to_dict()
    for key in sorted(new_settings):
        if key in _NOT_FINGERPRINTED or key not in old_settings:
            continue
        if old_settings[key] != new_settings[key] and str(old_settings[key]) != str(new_settings[key]):
            changes.append(f"{key} {old_settings[key]!r} -> {new_settings[key]!r}")
    if report.get("sampler_settings") != source.chunk_sampler.settings():
        changes.append("the sampler settings (weights, action_freq, episodes)")
    return "same norm heads; changed: " + ", ".join(changes) if changes else "same norm heads, other settings"
