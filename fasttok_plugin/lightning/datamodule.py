r"""
Mixture data module
===================

A :class:`~pytorch_lightning.core.LightningDataModule` over a LeRobot mixture file. It resolves the mixture
and builds the :class:`~fasttok_plugin.heads.NormHeads` exactly once, serves training batches sampled by the
mixture weights, and exposes the :class:`~fasttok_plugin.sampling.ChunkSampler` that
:class:`~fasttok_plugin.lightning.FastTokenizerCallback` draws its fit chunks from, so fit-time and train-time
normalization read the very same objects.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytorch_lightning as pl
from torch.utils.data import DataLoader
from typing_extensions import override

from fasttok_plugin.conventions import Convention
from fasttok_plugin.defaults import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_ACTION_DIM,
    resolve_setting,
)
from fasttok_plugin.lightning._dm_arguments import check_datamodule_arguments
from fasttok_plugin.lightning._dm_setup import build_heads_and_sampler, warn_starved_entries
from fasttok_plugin.lightning._tokenize import TokenizeBatch, quiet_tokenizers_fork
from fasttok_plugin.lightning.stream import ChunkStream
from fasttok_plugin.mixture import MixtureConfig  # at runtime: LightningCLI reads the annotations
from fasttok_plugin.transforms import ActionTransform  # likewise

if TYPE_CHECKING:
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.normalize import Normalize
    from fasttok_plugin.resolve import ResolvedMixture
    from fasttok_plugin.sampling import ChunkSampler

__all__ = ["ChunkStream", "MixtureDataModule"]  # ChunkStream lives in lightning.stream

log = logging.getLogger(__name__)


class MixtureDataModule(pl.LightningDataModule):
    """Batches of raw action chunks from a LeRobot mixture, plus the norm heads and sampler they come from.

    ``setup()`` resolves the mixture (metadata only) and builds the norm heads and the chunk sampler once;
    later calls (one per stage) reuse them. These three attributes are the protocol
    :class:`~fasttok_plugin.lightning.FastTokenizerCallback` reads (see
    :class:`~fasttok_plugin.lightning.TokenizerSource`); any datamodule exposing them works with the callback.

    Every loader yields ``{"actions": (B, T, D) float32 raw zero-padded, "head_index": (B,) long,
    "dataset_index": (B,) long}`` with chunks drawn by the mixture weights. Normalize them in the model with
    the same :class:`~fasttok_plugin.normalize.Normalize` the tokenizer was fit with (the callback can
    attach it), or pass ``tokenize=True``: the DataLoader workers then add the normalized actions and the
    padded FAST ids (:class:`~fasttok_plugin.lightning.TokenizeBatch`) with the tokenizer and `Normalize`
    that :class:`~fasttok_plugin.lightning.FastTokenizerCallback` hands over in its ``setup``.
    attach it). With ``layout="native"`` each batch also holds ``"action_dim": (B,) long``, the native
    width of every chunk: tokenize ``normalized[i, :, :action_dim[i]]`` (``encode(..., action_dims=)``).

    Args:
        mixture: Path of a mixture file (``mixture.json``) or an already parsed
            :class:`~fasttok_plugin.mixture.MixtureConfig`.
        chunk_size: Frames per chunk ``T``. ``None``: the mixture's ``chunk_size``, else
            ``DEFAULT_CHUNK_SIZE`` (50).
        max_action_dim: Padded action dimension ``D``. ``None``: the mixture's ``max_action_dim``, else
            ``DEFAULT_MAX_ACTION_DIM`` (32).
        batch_size: Chunks per batch.
        batches_per_epoch: Training batches per epoch and rank.
        eval_batches: Batches served by each of the validation, test and predict loaders (the same chunks
            every time, so evaluations are comparable).
        round_chunks: Chunks drawn per sampler call, split over the datasets exactly by the weights (largest
            remainder), then shuffled into batches. A dataset whose share of a round is below one chunk is
            never drawn: keep ``round_chunks`` well above ``sum(weights) / min(weight)``. Each call reads
            every dataset's action column once, so larger rounds amortize the reads.
        num_workers: DataLoader worker processes (each draws from its own seed).
        sampler_workers: Threads the :class:`~fasttok_plugin.sampling.ChunkSampler` uses to read parquet.
        seed: Base seed of the loaders' streams (the tokenizer fit has its own seed, on the callback).
        pin_memory: Passed to the DataLoaders.
        on_dataset_error: ``"raise"`` (default): a dataset whose frames cannot be read at train time stops
            the run with a `SamplingError` naming the entry, the file and the fix (skipping it would
            silently change the mixture). ``"skip"``: train on the other datasets; each skipped dataset is
            warned about and counted (`ChunkStream.skipped`).
        head_grouping: How entries share norm heads: ``"robot_control"`` (one head per
            ``(robot_type, control_mode)``), ``"global"`` (one head over the mixture) or ``"dataset"`` (one
            head per entry). ``None``: the mixture's ``head_grouping``, else ``"robot_control"``.
        stats_source: ``"stored"`` (the datasets' stats.json) or ``"data"``: the stats of the frames each
            head trains on (`compute_head_stats`, cached), required by the quantile normalization modes
            and by transforms. ``None``: ``"data"`` when the actions are transformed, else ``"stored"``.
        transform: An `ActionTransform` for every entry (None: the mixture's transform keys). Batches
            carry the transformed actions (selected columns, relative dims minus the state at the chunk's
            first frame), so the policy's Normalize sees the values the tokenizer is fit on.
        tokenize: Add ``normalized_actions``, ``action_tokens``, ``action_token_mask``,
            ``action_token_lengths``, ``action_tokens_truncated`` and ``action_values_clamped`` to every
            batch, computed in the DataLoader workers (needs `set_tokenization`, which the callback calls).
        max_action_tokens: Padded token length ``L`` of ``tokenize=True`` batches; ``None``: the callback's
            ``max_action_tokens`` (the budget its fit report measures truncation against).
        multiprocessing_context: Start method of the DataLoader workers (``"fork"``, ``"forkserver"``,
            ``"spawn"``); ``None``: torch's default.
        layout: ``"padded"`` or ``"native"`` (batches carry ``"action_dim"``; the callback fits a native
            tokenizer). ``None``: the mixture's ``layout``, else ``"padded"``.
        convention: A normalization convention (``"opentau"``, ``"lerobot"``, ``"openpi"``, a `Convention`
            or ``{"name": ..., <field>: <override>}``). ``None``: the mixture's ``convention``, else none.
            It supplies the head grouping and the stats source when those are not given; the callback
            fits with it (`convention` holds the resolved one after :meth:`setup`).

    Raises:
        ValueError: If a numeric argument is out of range.

    Example::

        from pytorch_lightning import Trainer
        from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule

        datamodule = MixtureDataModule("mixture.json", chunk_size=50, max_action_dim=32, batch_size=64)
        trainer = Trainer(max_steps=1000, callbacks=[FastTokenizerCallback("runs/tokenizer")])
        trainer.fit(model, datamodule=datamodule)
    """

    def __init__(
        self,
        mixture: str | os.PathLike | MixtureConfig,
        chunk_size: int | None = None,
        max_action_dim: int | None = None,
        batch_size: int = 32,
        *,
        batches_per_epoch: int = 100,
        eval_batches: int = 4,
        round_chunks: int = 4096,
        num_workers: int = 0,
        sampler_workers: int = 0,
        seed: int = 0,
        pin_memory: bool = False,
        on_dataset_error: Literal["raise", "skip"] = "raise",
        head_grouping: Literal["robot_control", "global", "dataset"] | None = None,
        stats_source: Literal["stored", "data"] | None = None,
        transform: ActionTransform | None = None,
        tokenize: bool = False,
        max_action_tokens: int | None = None,
        multiprocessing_context: Literal["fork", "forkserver", "spawn"] | None = None,
        layout: Literal["padded", "native"] | None = None,
        convention: str | dict[str, Any] | None = None,  # or a Convention (LightningCLI: name or object)
    ) -> None:
        super().__init__()
        given = check_datamodule_arguments(
            ints={
                "chunk_size": chunk_size,
                "max_action_dim": max_action_dim,
                "batch_size": batch_size,
                "batches_per_epoch": batches_per_epoch,
                "eval_batches": eval_batches,
                "round_chunks": round_chunks,
                "num_workers": num_workers,
                "sampler_workers": sampler_workers,
                "seed": seed,
                "max_action_tokens": max_action_tokens,
            },
            on_dataset_error=on_dataset_error,
            head_grouping=head_grouping,
            stats_source=stats_source,
            transform=transform,
            tokenize=tokenize,
            multiprocessing_context=multiprocessing_context,
            layout=layout,
            convention=convention,
        )
        self.stats_source = stats_source or "stored"  # "data" once setup() sees transformed actions
        self._stats_source_arg = stats_source
        self.transform = transform
        self.tokenize = tokenize
        self.max_action_tokens = max_action_tokens
        self.multiprocessing_context = multiprocessing_context
        self._tokenize_batch: TokenizeBatch | None = None
        self._layout_arg = layout
        self._layout: str | None = None
        self._convention_arg = given
        #: The resolved convention (argument, else the mixture's, with this datamodule's grouping and stats
        #: source) after :meth:`setup`; None: no convention.
        self.convention: Convention | None = given
        self.mixture = mixture
        self._head_grouping_arg = head_grouping
        self.on_dataset_error = on_dataset_error
        self._chunk_size_arg = chunk_size
        self._max_action_dim_arg = max_action_dim
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.eval_batches = eval_batches
        self.round_chunks = round_chunks
        self.num_workers = num_workers
        self.sampler_workers = sampler_workers
        self.seed = int(seed)
        self.pin_memory = pin_memory
        self._resolved: ResolvedMixture | None = None
        self._norm_heads: NormHeads | None = None
        self._sampler: ChunkSampler | None = None
        self._chunk_size: int | None = None

    # -- the protocol ---------------------------------------------------------------------------------------

    @property
    def resolved_mixture(self) -> ResolvedMixture:
        """The resolved mixture (entries with their LeRobot metadata); built by :meth:`setup`."""
        self._require_setup()
        assert self._resolved is not None
        return self._resolved

    @property
    def norm_heads(self) -> NormHeads:
        """The norm heads of the mixture, the single source of normalization stats; built by :meth:`setup`."""
        self._require_setup()
        assert self._norm_heads is not None
        return self._norm_heads

    @property
    def chunk_sampler(self) -> ChunkSampler:
        """The weighted chunk sampler the loaders and the tokenizer fit draw from; built by :meth:`setup`."""
        self._require_setup()
        assert self._sampler is not None
        return self._sampler

    @property
    def chunk_size(self) -> int:
        """Frames per chunk (argument, else the mixture's ``chunk_size``, else the default)."""
        self._require_setup()
        assert self._chunk_size is not None
        return self._chunk_size

    @property
    def max_action_dim(self) -> int:
        """Padded action dimension of every batch (``norm_heads.max_action_dim``)."""
        return self.norm_heads.max_action_dim

    def set_tokenization(
        self, tokenizer: FastTokenizer, normalize: Normalize, *, max_action_tokens: int | None = None
    ) -> None:
        """Give the loaders the tokenizer and `Normalize` of ``tokenize=True`` (no-op otherwise).

        :class:`~fasttok_plugin.lightning.FastTokenizerCallback` calls it in ``setup``, before Lightning
        builds any loader; call it yourself to tokenize without the callback. A CPU float32 copy of
        ``normalize`` is taken now (see :class:`~fasttok_plugin.lightning.TokenizeBatch`).

        Args:
            tokenizer: The fitted tokenizer.
            normalize: The `Normalize` the policy holds (same heads, mode, zero_range and eps as the fit).
            max_action_tokens: Used when the datamodule's own ``max_action_tokens`` is ``None``.
        """
        if not self.tokenize:
            return
        length = self.max_action_tokens if self.max_action_tokens is not None else max_action_tokens
        self._tokenize_batch = TokenizeBatch(tokenizer, normalize, max_action_tokens=length)

    @property
    def layout(self) -> str:
        """``"padded"`` or ``"native"``: the argument, else (after ``setup``) the mixture's, else padded."""
        return self._layout or self._layout_arg or "padded"

    def _require_setup(self) -> None:
        if self._norm_heads is None:
            raise RuntimeError(
                "MixtureDataModule.setup() has not run yet: the Trainer calls it before any loader or "
                "callback setup; outside a Trainer call `datamodule.setup('fit')` first"
            )

    # -- LightningDataModule hooks --------------------------------------------------------------------------

    @override
    def setup(self, stage: str | None = None) -> None:
        """Resolve the mixture and build the norm heads and the sampler (once; later calls reuse them).

        Problems a preflight reports (missing tags under ``require_non_empty_*``, dim overflow, bad stats) do
        not raise here, so :class:`~fasttok_plugin.lightning.FastTokenizerCallback` can list them all at once;
        the loaders refuse to serve batches from heads with errors.
        """
        if self._norm_heads is not None:
            return
        from fasttok_plugin.mixture import load_mixture
        from fasttok_plugin.resolve import resolve_mixture

        config = self.mixture if isinstance(self.mixture, MixtureConfig) else load_mixture(Path(self.mixture))
        max_action_dim = resolve_setting(
            self._max_action_dim_arg, config.max_action_dim, DEFAULT_MAX_ACTION_DIM
        )
        chunk_size = resolve_setting(self._chunk_size_arg, config.chunk_size, DEFAULT_CHUNK_SIZE)
        resolved = resolve_mixture(config)
        heads, sampler, grouping = build_heads_and_sampler(self, config, resolved, max_action_dim, chunk_size)
        self._resolved, self._norm_heads, self._sampler, self._chunk_size = (
            resolved,
            heads,
            sampler,
            chunk_size,
        )
        log.info(
            "mixture %s: %d datasets, %d norm heads (%s), chunk_size=%d, max_action_dim=%d",
            config.path or "<in memory>",
            len(resolved.entries),
            len(heads.keys),
            grouping,
            chunk_size,
            max_action_dim,
        )

    def _rank(self) -> int:
        trainer = self.trainer
        return int(trainer.global_rank) if trainer is not None else 0

    def _loader(self, stage: str, num_batches: int) -> DataLoader:
        # Training on heads with errors would silently mis-normalize: refuse, listing every error.
        self.norm_heads.raise_for_errors()
        warn_starved_entries(self)
        from fasttok_plugin.fit.plan import entry_widths  # the fit's own widths: one rule for both

        stream = ChunkStream(
            self.chunk_sampler,
            batch_size=self.batch_size,
            num_batches=num_batches,
            round_chunks=self.round_chunks,
            seed=self.seed,
            stage=stage,
            rank=self._rank(),
            fixed=stage != "train",
            on_dataset_error=self.on_dataset_error,
            entry_widths=entry_widths(self.chunk_sampler) if self.layout == "native" else None,
        )
        workers = min(self.num_workers, max(num_batches, 1))
        collate: dict[str, Any] = {}
        if self.tokenize:
            if self._tokenize_batch is None:
                raise RuntimeError(
                    "MixtureDataModule(tokenize=True) has no tokenizer: add FastTokenizerCallback to the "
                    "Trainer's callbacks, or call datamodule.set_tokenization(tokenizer, normalize) first"
                )
            if workers > 0:
                quiet_tokenizers_fork()
            # With batch_size=None the collate_fn runs on every yielded batch, inside the worker.
            collate["collate_fn"] = self._tokenize_batch
        # A sampler pool lives as long as the datamodule (closed in teardown), not one per round.
        self.chunk_sampler.keep_pool()
        return DataLoader(
            stream,
            batch_size=None,  # the stream already yields whole batches
            num_workers=workers,
            persistent_workers=workers > 0,  # keeps the per-worker iteration counter (new chunks every epoch)
            pin_memory=self.pin_memory,
            multiprocessing_context=self.multiprocessing_context if workers > 0 else None,
            **collate,
        )

    @override
    def train_dataloader(self) -> DataLoader:
        """Training batches drawn by the mixture weights; new chunks every epoch."""
        return self._loader("train", self.batches_per_epoch)

    @override
    def val_dataloader(self) -> DataLoader:
        """``eval_batches`` fixed validation batches."""
        return self._loader("val", self.eval_batches)

    @override
    def test_dataloader(self) -> DataLoader:
        """``eval_batches`` fixed test batches."""
        return self._loader("test", self.eval_batches)

    @override
    def predict_dataloader(self) -> DataLoader:
        """``eval_batches`` fixed predict batches."""
        return self._loader("predict", self.eval_batches)

    @override
    def teardown(self, stage: str) -> None:
        """Stop the sampler's worker pool (a later loader starts a new one)."""
        if self._sampler is not None:
            self._sampler.close_pool()

    @override
    def state_dict(self) -> dict[str, Any]:
        """The norm-heads fingerprint and loader settings, so a checkpoint records what it was trained on."""
        if self._norm_heads is None:
            return {}
        return {
            "norm_heads_fingerprint": self._norm_heads.fingerprint,
            "chunk_size": self._chunk_size,
            "max_action_dim": self._norm_heads.max_action_dim,
            "seed": self.seed,
        }
