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
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytorch_lightning as pl
from pytorch_lightning.callbacks.callback import Callback
from typing_extensions import override

from fasttok_plugin.errors import TokenizerMismatchError
from fasttok_plugin.fit._progress import bars_wanted
from fasttok_plugin.fit.fingerprint import fit_fingerprint
from fasttok_plugin.fit.report import FitReport
from fasttok_plugin.fit.settings import (
    DEFAULT_HELDOUT_FRACTION,
    DEFAULT_MAX_ACTION_TOKENS,
    DEFAULT_MAX_FIT_CHUNKS,
    DEFAULT_TOTAL_CHUNKS,
    FitSettings,
)
from fasttok_plugin.lightning._arguments import callback_fit_settings, callback_settings, check_arguments
from fasttok_plugin.lightning._attach import attach
from fasttok_plugin.lightning._cached import existing_matches, explainer, fit_into, load_matching, prepared
from fasttok_plugin.lightning._copies import RankZeroDecision, read_folder, share_folder
from fasttok_plugin.lightning._distributed import (
    RankChannel,
    check_same_fingerprint,
    decide_on_rank_zero,
    on_every_rank,
    rank_channel,
)
from fasttok_plugin.lightning._metrics import log_prepared
from fasttok_plugin.lightning._preflight import preflight_source
from fasttok_plugin.lightning._resume import ResumeGuard, checkpoint_state
from fasttok_plugin.lightning._tuned import TuneRequest, recorded_scale, scale_from_files, tune_into, untuned
from fasttok_plugin.lightning.protocol import TokenizerSource, chunk_size_of, source_of
from fasttok_plugin.transforms import ActionTransform  # at runtime: LightningCLI reads the annotations

if TYPE_CHECKING:
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.lightning._cached import PreparedTokenizer
    from fasttok_plugin.normalize import Normalize

__all__ = ["FastTokenizerCallback", "TokenizerMismatchError", "TokenizerSource"]

log = logging.getLogger(__name__)


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
    mixture is detected before any weight is loaded (an error, or a warning with ``on_mismatch="refit"``).
    The attached ``Normalize`` keeps its stats out of checkpoints (they are derived from the heads), so a
    resumed run normalizes with the current heads and ``Model.load_from_checkpoint`` needs no datamodule.
    Under DDP, global rank 0 decides and fits while the other ranks wait without a collective timeout; the
    tokenizer folder's bytes then reach every rank, so ``tokenizer_dir`` may be node-local.

    Args:
        tokenizer_dir: Folder holding (or receiving) the tokenizer, in the reference processor layout plus the
            ``fasttok.json`` sidecar and ``fit_report.json``.
        vocab_size: BPE vocabulary size.
        scale: DCT coefficient scale before rounding.
        pipeline: ``"char"`` (full alphabet) or ``"reference"`` (byte-identical to the reference processor).
        order: Flatten order ``"time"`` (the reference's), ``"dims"`` or ``"dc_dims"`` (docs/fitting.md).
        rounding: ``"nearest"`` (the reference's) or ``"token_aware"`` (shorter sequences; docs/fitting.md).
        tune_max_action_tokens: If set, ``scale`` is where `tune_tokenizer` starts: the largest scale whose
            held-out ``tune_quantile`` of token lengths fits this budget for every head is fit (and reused).
        min_frequency: BPE merge threshold.
        max_token_length: Longest BPE token (the trainer's cap, not the policy's budget).
        total_chunks: Chunks sampled from the mixture for fitting and evaluation.
        max_fit_chunks: At most this many chunks go into the BPE fit (stratified); ``None``: no cap.
        heldout_fraction: Share of ``total_chunks`` held out for the fit report (``0 < f < 1``).
        max_action_tokens: The policy's token budget per chunk; the report gives the truncation rate
            against it.
        seed: Seed of the fit sampling.
        workers: Sampler worker processes while fitting (never changes the result).
        normalization: ``"min_max"``, ``"mean_std"``, ``"quantile"``, ``"quantile10"`` or ``"identity"``.
        stats_source: ``None``: ``"data"`` for the quantile modes and transforms, else ``"stored"``; must
            equal the datamodule's heads' ``stats_source`` (``MixtureDataModule(stats_source=...)``).
        transform: ``None``: the datamodule's transforms; else it must equal them (an `ActionTransform`).
        zero_range: How zero-range dims normalize (``"center"`` -> 0, ``"legacy"`` -> -1).
        eps: Zero-range threshold of the normalization.
        on_dataset_error: ``"raise"`` stops when a dataset's frames cannot be read; ``"skip"`` fits without
            it (the report lists the error).
        head_grouping: ``None`` (default): the datamodule's heads' grouping; else it must equal theirs
            (``FitError`` otherwise: the callback never regroups the heads the policy normalizes with).
        layout: ``None`` (default): the datamodule's ``layout``; ``"native"`` fits one tokenizer over each
            chunk's native width (the datamodule must serve ``"native"`` batches, ``FitError`` otherwise).
        convention: A normalization convention (name, `Convention` or ``{"name": ..., <field>: ...}``);
            ``None``: the datamodule's ``convention``; its grouping/stats source must match the heads.
        on_mismatch: ``"error"`` or ``"refit"`` when the folder or the checkpoint has another fingerprint.
        attribute: Name of the LightningModule attribute receiving the tokenizer.
        normalize_attribute: If set, name of the LightningModule attribute receiving the
            :class:`~fasttok_plugin.normalize.Normalize` module built from the same heads and settings.
        preflight: Run the preflight first (strongly recommended).
        strict: Treat preflight warnings as errors.
        progress: Progress bars while fitting and the report summary printed after it; ``None`` (default):
            the summary, and bars when stderr is a terminal and the trainer shows its own
            (``Trainer(enable_progress_bar=...)``); ``False``: neither; ``True``: both.

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
        order: Literal["time", "dims", "dc_dims"] = "time",
        rounding: Literal["nearest", "token_aware"] = "nearest",
        tune_max_action_tokens: int | None = None,
        tune_quantile: float = 0.99,
        min_frequency: int = 2,
        max_token_length: int | None = 10000,
        total_chunks: int = DEFAULT_TOTAL_CHUNKS,
        max_fit_chunks: int | None = DEFAULT_MAX_FIT_CHUNKS,
        heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
        max_action_tokens: int | None = DEFAULT_MAX_ACTION_TOKENS,
        seed: int = 0,
        workers: int = 0,
        normalization: Literal["min_max", "mean_std", "quantile", "quantile10", "identity"] = "min_max",
        stats_source: Literal["stored", "data"] | None = None,
        zero_range: Literal["center", "legacy"] = "center",
        eps: float = 1e-6,
        on_dataset_error: Literal["raise", "skip"] = "raise",
        head_grouping: Literal["robot_control", "global", "dataset"] | None = None,
        transform: ActionTransform | None = None,
        layout: Literal["padded", "native"] | None = None,
        convention: str | dict[str, Any] | None = None,
        on_mismatch: Literal["error", "refit"] = "error",
        attribute: str = "action_tokenizer",
        normalize_attribute: str | None = None,
        preflight: bool = True,
        strict: bool = False,
        progress: bool | None = None,
    ) -> None:
        super().__init__()
        check_arguments(tokenizer_dir, on_mismatch, attribute, normalize_attribute)
        self._settings = callback_settings(
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
            head_grouping=head_grouping,
            stats_source=stats_source,
            transform=transform,
            order=order,
            rounding=rounding,
            layout=layout or "padded",
            convention=convention,
        )
        self._tune = TuneRequest.of(tune_max_action_tokens, tune_quantile)
        self._scale: float | None = None  # the tuned scale, once known

        self.tokenizer_dir = Path(tokenizer_dir).expanduser()
        self.layout = layout
        self.on_mismatch = on_mismatch
        self.attribute = attribute
        self.normalize_attribute = normalize_attribute
        self.preflight = preflight
        self.strict = strict
        self.progress = progress
        self._bars = False

        self._prepared: PreparedTokenizer | None = None
        self._normalize: Normalize | None = None
        self._resume = ResumeGuard(self.state_key, on_mismatch, self.tokenizer_dir)

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
        """The :class:`~fasttok_plugin.fit.FitSettings` this callback fits with for ``source``."""
        settings = callback_fit_settings(self._settings, source, chunk_size_of(source), self.layout)
        return settings if self._scale is None else dataclasses.replace(settings, scale=self._scale)

    def _fingerprint(
        self, source: TokenizerSource, settings: FitSettings, *, data_identity: bool = True
    ) -> str:
        return fit_fingerprint(
            source.norm_heads, settings, source.chunk_sampler.settings(), data_identity=data_identity
        )

    # -- hooks ----------------------------------------------------------------------------------------------

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        source = source_of(trainer)
        if self._prepared is None or self._prepared.heads is not source.norm_heads:
            self._bars = bars_wanted(self.progress, trainer.progress_bar_callback is not None)
            self._prepared = self._prepare(trainer, source)
            self._normalize = None
            prepared = self._prepared
            if trainer.is_global_zero:
                # The summary goes with the bars: progress=False keeps the console quiet.
                log_prepared(
                    trainer, prepared, self._settings, self.tokenizer_dir, self.progress is not False
                )
        self._attach(pl_module, source)
        self._resume.watch(pl_module, self._prepared.fingerprint, self._prepared.heads.fingerprint)

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._resume.unwatch()

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Strategies that restore checkpoints after setup call load_state_dict late: check again here.
        self._resume.check()

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._resume.check()

    @override
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._resume.check()

    @override
    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._resume.check()

    @override
    def state_dict(self) -> dict[str, Any]:
        if self._prepared is None:
            return {}
        return checkpoint_state(
            self._prepared.fingerprint, self._prepared.heads.fingerprint, self.tokenizer_dir
        )

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume.restore(state_dict)

    # -- setup steps ----------------------------------------------------------------------------------------

    def _prepare(self, trainer: pl.Trainer, source: TokenizerSource) -> PreparedTokenizer:
        """Rank 0 decides (preflight, fingerprint, load or fit); every rank then loads the same bytes."""
        loaded: list[FastTokenizer] = []
        with rank_channel(trainer) as channel:
            decision = decide_on_rank_zero(channel, lambda: self._decide_and_fit(source, channel))
            share_folder(
                channel,
                self.tokenizer_dir,
                decision.files,
                check=lambda needs_write: self._check_rank(channel.rank, source, decision, needs_write),
            )
            on_every_rank(
                channel,
                lambda: loaded.append(load_matching(self.tokenizer_dir, decision.fingerprint)),
            )
        if trainer.is_global_zero:
            log.info(
                "%s FAST tokenizer %s (fingerprint %s, vocab %d)",
                "fit" if decision.fitted else "loaded cached",
                self.tokenizer_dir,
                decision.fingerprint[:12],
                loaded[0].vocab_size,
            )
        return prepared(source.norm_heads, decision, loaded[0], self.tokenizer_dir)

    def _check_rank(
        self, rank: int, source: TokenizerSource, decision: RankZeroDecision, needs_write: bool
    ) -> None:
        """A rank but 0: same fingerprint as rank 0, and a folder that may take rank 0's bytes."""
        self._scale = scale_from_files(decision.files, self._tune)
        settings = self.fit_settings(source)
        # Heads and settings must agree; the data files' identities may differ (node-local copies).
        portable = self._fingerprint(source, settings, data_identity=False)
        check_same_fingerprint(rank, portable, decision.portable, self.tokenizer_dir)
        if needs_write:
            # Rank 0's folder rules apply to this rank's own folder: a foreign folder is never replaced,
            # another fit's tokenizer only under on_mismatch="refit".
            self._existing_matches(source, settings, decision.fingerprint)

    def _decide_and_fit(self, source: TokenizerSource, channel: RankChannel) -> RankZeroDecision:
        """Rank 0: preflight, then load-or-fit; the folder's bytes go to the other ranks."""
        fingerprint, fitted = self._load_or_fit(source)
        if channel.world_size == 1:
            return RankZeroDecision(fingerprint, fitted)
        portable = self._fingerprint(source, self.fit_settings(source), data_identity=False)
        return RankZeroDecision(fingerprint, fitted, read_folder(self.tokenizer_dir), portable)

    def _load_or_fit(self, source: TokenizerSource) -> tuple[str, bool]:
        if self.preflight:
            preflight_source(source, strict=self.strict)
        self._scale = recorded_scale(self.tokenizer_dir, self._tune)  # a folder tuned for this request
        settings = self.fit_settings(source)
        fingerprint = self._fingerprint(source, settings)
        if self._existing_matches(source, settings, fingerprint):
            return fingerprint, False
        if self._tune is not None:
            self._scale = tune_into(self.tokenizer_dir, source, settings, self._tune, progress=self._bars)
            return self._fingerprint(source, self.fit_settings(source)), True
        fit_into(self.tokenizer_dir, source, settings, fingerprint, progress=self._bars)
        return fingerprint, True

    def _existing_matches(self, source: TokenizerSource, settings: FitSettings, fingerprint: str) -> bool:
        """Whether ``tokenizer_dir`` holds a tokenizer with ``fingerprint``; raises or warns on a mismatch."""
        found = existing_matches(
            self.tokenizer_dir,
            fingerprint,
            on_mismatch=self.on_mismatch,
            explain=explainer(source, settings),
        )
        if not found or self._scale is not None:
            return found
        return untuned(self.tokenizer_dir, self._tune, fingerprint, self.on_mismatch)

    def _attach(self, pl_module: pl.LightningModule, source: TokenizerSource) -> None:
        assert self._prepared is not None
        self._normalize = attach(pl_module, self._prepared.tokenizer, self._normalize, self, source)
