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
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from typing_extensions import override

from fasttok_plugin.defaults import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_ACTION_DIM
from fasttok_plugin.mixture import MixtureConfig  # at runtime: LightningCLI reads the annotations

if TYPE_CHECKING:
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.resolve import ResolvedMixture
    from fasttok_plugin.sampling import ChunkSampler

__all__ = ["ChunkStream", "MixtureDataModule"]

log = logging.getLogger(__name__)

# Stage codes feed the seed derivation so train / val / test / predict streams never share draws.
_STAGE_CODES = {"train": 0, "val": 1, "test": 2, "predict": 3}


class ChunkStream(IterableDataset):
    """A per-epoch stream of ``{"actions", "head_index", "dataset_index"}`` batches from a ChunkSampler.

    Every ``(stage, rank, dataloader worker, iteration)`` draws from its own seed, so DDP ranks and DataLoader
    workers draw independent streams instead of copies of one, and a new epoch (a new ``iter()``) draws new
    chunks. Each
    iteration yields exactly ``num_batches`` batches in total across the workers of one rank, so every DDP
    rank runs the same number of steps (unequal counts would hang the collective ops).

    Chunks are drawn in rounds of ``round_chunks`` (split over the mixture by its weights by the sampler),
    shuffled, and cut into batches of exactly ``batch_size``.

    Args:
        sampler: The chunk sampler (its weights, chunk size and fps settings apply).
        batch_size: Chunks per batch.
        num_batches: Batches per iteration (per rank, summed over the DataLoader workers).
        round_chunks: Chunks drawn per sampler call; larger mixes datasets better within a batch.
        seed: Base seed.
        stage: One of ``"train"``, ``"val"``, ``"test"``, ``"predict"``.
        rank: Global rank of this process.
        fixed: Draw the same chunks on every iteration (evaluation loaders) instead of new ones per epoch.
    """

    def __init__(
        self,
        sampler: ChunkSampler,
        *,
        batch_size: int,
        num_batches: int,
        round_chunks: int,
        seed: int,
        stage: str,
        rank: int = 0,
        fixed: bool = False,
    ) -> None:
        super().__init__()
        if stage not in _STAGE_CODES:
            raise ValueError(f"ChunkStream: stage must be one of {sorted(_STAGE_CODES)}, got {stage!r}")
        for name, value, minimum in (("batch_size", batch_size, 1), ("num_batches", num_batches, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"ChunkStream: {name} must be an integer >= {minimum}, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"ChunkStream: seed must be an integer >= 0, got {seed!r}")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.num_batches = int(num_batches)
        self.round_chunks = max(int(round_chunks), self.batch_size)
        self.seed = int(seed)
        self.stage = stage
        self.rank = int(rank)
        self.fixed = fixed
        # Counted in the process that iterates (main process or a persistent worker): each epoch differs.
        self._iterations = 0

    def __len__(self) -> int:
        return self.num_batches

    def _worker(self) -> tuple[int, int]:
        info = get_worker_info()
        if info is None:
            return 0, 1
        return int(info.id), int(info.num_workers)

    def _round_seed(self, worker: int, iteration: int, round_index: int) -> int:
        sequence = np.random.SeedSequence(
            entropy=self.seed,
            spawn_key=(_STAGE_CODES[self.stage], self.rank, worker, iteration, round_index),
        )
        return int(sequence.generate_state(1, dtype=np.uint32)[0])

    def _draw(self, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        actions, heads, datasets = [], [], []
        for batch in self.sampler.sample(self.round_chunks, seed=seed, batch_size=self.round_chunks):
            actions.append(batch.actions)
            heads.append(batch.head_index)
            datasets.append(batch.dataset_index)
        if not actions or sum(len(a) for a in actions) == 0:
            problems = [
                f"{r.name}: {r.error}"
                for r in getattr(self.sampler, "report", ())
                if getattr(r, "error", None)
            ]
            detail = "; ".join(problems) if problems else "every dataset returned zero chunks"
            raise RuntimeError(
                f"the chunk sampler produced no chunks for the {self.stage} stream ({detail}); "
                "run `fasttok-preflight` on the mixture to find the dataset at fault"
            )
        return (
            np.concatenate(actions, axis=0),
            np.concatenate(heads, axis=0),
            np.concatenate(datasets, axis=0),
        )

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker, num_workers = self._worker()
        iteration = 0 if self.fixed else self._iterations
        self._iterations += 1
        # Split the rank's batches over its workers; the counts sum to num_batches exactly.
        share = self.num_batches // num_workers + (1 if worker < self.num_batches % num_workers else 0)
        if share == 0:
            return
        # The shuffle gets its own spawn key (no sampler round uses 2**31 - 1).
        rng = np.random.default_rng(self._round_seed(worker, iteration, 2**31 - 1))
        buffered: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        buffered_count = 0
        emitted = 0
        round_index = 0
        while emitted < share:
            while buffered_count < self.batch_size:
                drawn = self._draw(self._round_seed(worker, iteration, round_index))
                round_index += 1
                buffered.append(drawn)
                buffered_count += len(drawn[0])
            actions = np.concatenate([b[0] for b in buffered], axis=0)
            heads = np.concatenate([b[1] for b in buffered], axis=0)
            datasets = np.concatenate([b[2] for b in buffered], axis=0)
            # The sampler groups chunks by dataset; shuffle so every batch mixes the datasets.
            order = rng.permutation(len(actions))
            actions, heads, datasets = actions[order], heads[order], datasets[order]
            start = 0
            while emitted < share and len(actions) - start >= self.batch_size:
                stop = start + self.batch_size
                yield {
                    "actions": torch.from_numpy(np.ascontiguousarray(actions[start:stop], dtype=np.float32)),
                    "head_index": torch.from_numpy(heads[start:stop].astype(np.int64)),
                    "dataset_index": torch.from_numpy(datasets[start:stop].astype(np.int64)),
                }
                emitted += 1
                start = stop
            buffered = [(actions[start:], heads[start:], datasets[start:])]
            buffered_count = len(actions) - start


class MixtureDataModule(pl.LightningDataModule):
    """Batches of raw action chunks from a LeRobot mixture, plus the norm heads and sampler they come from.

    ``setup()`` resolves the mixture (metadata only) and builds the norm heads and the chunk sampler once;
    later calls (one per stage) reuse them. These three attributes are the protocol
    :class:`~fasttok_plugin.lightning.FastTokenizerCallback` reads (see
    :class:`~fasttok_plugin.lightning.TokenizerSource`); any datamodule exposing them works with the callback.

    Every loader yields ``{"actions": (B, T, D) float32 raw zero-padded, "head_index": (B,) long,
    "dataset_index": (B,) long}`` with chunks drawn by the mixture weights. Normalize them in the model with
    the same :class:`~fasttok_plugin.normalize.Normalize` the tokenizer was fit with (the callback can
    attach it).

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
    ) -> None:
        super().__init__()
        for name, value, minimum in (
            ("chunk_size", chunk_size, 1),
            ("max_action_dim", max_action_dim, 1),
            ("batch_size", batch_size, 1),
            ("batches_per_epoch", batches_per_epoch, 1),
            ("eval_batches", eval_batches, 0),
            ("round_chunks", round_chunks, 1),
            ("num_workers", num_workers, 0),
            ("sampler_workers", sampler_workers, 0),
            ("seed", seed, 0),
        ):
            if value is None and name in ("chunk_size", "max_action_dim"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"MixtureDataModule: {name} must be an integer >= {minimum}, got {value!r}")
        self.mixture = mixture
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
        from fasttok_plugin.heads import build_norm_heads
        from fasttok_plugin.mixture import load_mixture
        from fasttok_plugin.resolve import resolve_mixture
        from fasttok_plugin.sampling import ChunkSampler

        config = self.mixture if isinstance(self.mixture, MixtureConfig) else load_mixture(Path(self.mixture))
        max_action_dim = self._max_action_dim_arg or config.max_action_dim or DEFAULT_MAX_ACTION_DIM
        chunk_size = self._chunk_size_arg or config.chunk_size or DEFAULT_CHUNK_SIZE
        resolved = resolve_mixture(config)
        heads = build_norm_heads(resolved, max_action_dim)
        # The sampler keeps its default seed: the loaders pass their own seeds, and the sampler's settings
        # enter the tokenizer fingerprint, so a new training seed must not invalidate a cached tokenizer.
        sampler = ChunkSampler(resolved, heads, chunk_size=chunk_size, workers=self.sampler_workers)
        self._resolved, self._norm_heads, self._sampler, self._chunk_size = (
            resolved,
            heads,
            sampler,
            chunk_size,
        )
        log.info(
            "mixture %s: %d datasets, %d norm heads, chunk_size=%d, max_action_dim=%d",
            config.path or "<in memory>",
            len(resolved.entries),
            len(heads.keys),
            chunk_size,
            max_action_dim,
        )

    def _rank(self) -> int:
        trainer = self.trainer
        return int(trainer.global_rank) if trainer is not None else 0

    def _loader(self, stage: str, num_batches: int) -> DataLoader:
        # Training on heads with errors would silently mis-normalize: refuse, listing every error.
        self.norm_heads.raise_for_errors()
        self._warn_starved_entries()
        stream = ChunkStream(
            self.chunk_sampler,
            batch_size=self.batch_size,
            num_batches=num_batches,
            round_chunks=self.round_chunks,
            seed=self.seed,
            stage=stage,
            rank=self._rank(),
            fixed=stage != "train",
        )
        workers = min(self.num_workers, max(num_batches, 1))
        return DataLoader(
            stream,
            batch_size=None,  # the stream already yields whole batches
            num_workers=workers,
            persistent_workers=workers > 0,  # keeps the per-worker iteration counter (new chunks every epoch)
            pin_memory=self.pin_memory,
        )

    def _warn_starved_entries(self) -> None:
        round_chunks = max(self.round_chunks, self.batch_size)
        budgets = self.chunk_sampler.budgets(round_chunks)
        weights = self.resolved_mixture.config.weights
        starved = [
            entry.name
            for position, entry in enumerate(self.resolved_mixture.entries)
            if budgets[position] == 0
            and self.norm_heads.dataset_to_head[position] >= 0
            and isinstance(weights[position], (int, float))
            and weights[position] > 0
        ]
        if starved:
            rank_zero_warn(
                f"MixtureDataModule: round_chunks={round_chunks} gives {len(starved)} dataset(s) a share "
                "below one chunk, so they are never drawn "
                f"({', '.join(starved[:5])}{', ...' if len(starved) > 5 else ''}); raise round_chunks"
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
