r"""
Chunk stream
============

The :class:`~torch.utils.data.IterableDataset` behind every loader of
:class:`~fasttok_plugin.lightning.MixtureDataModule`: batches of raw action chunks drawn by the mixture
weights, with a seed per stage, rank, DataLoader worker and epoch.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from fasttok_plugin.errors import SamplingError
from fasttok_plugin.sampling.report import unsampled

if TYPE_CHECKING:
    from fasttok_plugin.sampling import ChunkSampler

__all__ = ["ChunkStream"]

# Stage codes feed the seed derivation so train / val / test / predict streams never share draws.
_STAGE_CODES = {"train": 0, "val": 1, "test": 2, "predict": 3}


class ChunkStream(IterableDataset):
    """A per-epoch stream of ``{"actions", "head_index", "dataset_index"}`` batches from a ChunkSampler.

    With ``entry_widths`` (the ``native`` layout) every batch also carries ``"action_dim"``: ``(B,)`` int64,
    the native width of each chunk (``actions`` stays ``(B, T, D)`` zero-padded), so a policy can
    tokenize ``actions[i, :, :action_dim[i]]`` as the tokenizer was fit.

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
        on_dataset_error: ``"raise"`` (default): a dataset of the mixture that cannot be read (or has no
            valid chunk start) stops training with a `SamplingError` naming the entry, the file and the fix,
            since skipping it would silently change the mixture. ``"skip"``: draw from the others; each
            skipped dataset is warned about once per process and counted in `skipped`.
        entry_widths: ``native`` layout: the chunk width of every entry, indexed by entry index
            (`fasttok_plugin.fit.plan.entry_widths`); None (``padded``): no ``"action_dim"`` key.

    Attributes:
        skipped: ``entry index -> (name, error, rounds skipped)`` of the datasets skipped under
            ``on_dataset_error="skip"`` in this process.
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
        on_dataset_error: Literal["raise", "skip"] = "raise",
        entry_widths: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        if stage not in _STAGE_CODES:
            raise ValueError(f"ChunkStream: stage must be one of {sorted(_STAGE_CODES)}, got {stage!r}")
        for name, value, minimum in (("batch_size", batch_size, 1), ("num_batches", num_batches, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"ChunkStream: {name} must be an integer >= {minimum}, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"ChunkStream: seed must be an integer >= 0, got {seed!r}")
        if on_dataset_error not in ("raise", "skip"):
            raise ValueError(
                f"ChunkStream: on_dataset_error must be 'raise' or 'skip', got {on_dataset_error!r}"
            )
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.num_batches = int(num_batches)
        self.round_chunks = max(int(round_chunks), self.batch_size)
        self.seed = int(seed)
        self.stage = stage
        self.rank = int(rank)
        self.fixed = fixed
        self.on_dataset_error = on_dataset_error
        self.entry_widths = None if entry_widths is None else np.asarray(entry_widths, dtype=np.int64)
        self.skipped: dict[int, tuple[str, str, int]] = {}
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
        self._check_unread(getattr(self.sampler, "report", ()))
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

    def _check_unread(self, reports: Sequence[Any]) -> None:
        """Raise (or, under ``"skip"``, count and warn) for the datasets the last round could not read."""
        failed, lines = unsampled(reports)
        if not failed:
            return
        if self.on_dataset_error == "raise":
            raise SamplingError(
                f"the {self.stage} stream could not sample {len(failed)} dataset(s) of the mixture; "
                f"training without them would silently change the mixture:\n{lines}\nFix: repair or "
                "remove them (run `fasttok-preflight` on the mixture), or pass on_dataset_error='skip' to "
                "MixtureDataModule to train on the other datasets"
            )
        new = [r for r in failed if int(r.entry) not in self.skipped]
        for r in failed:
            rounds = self.skipped.get(int(r.entry), ("", "", 0))[2]
            self.skipped[int(r.entry)] = (str(r.name), str(r.error), rounds + 1)
        if new:
            warnings.warn(
                f"MixtureDataModule: the {self.stage} stream skips {len(new)} dataset(s) it could not "
                f"sample ({len(self.skipped)} skipped so far in this process; on_dataset_error='skip'):\n"
                + "\n".join(f"  - entry {r.entry} ({r.name}): {r.error}" for r in new),
                UserWarning,
                stacklevel=2,
            )

    def _batch(self, actions: np.ndarray, heads: np.ndarray, datasets: np.ndarray) -> dict[str, torch.Tensor]:
        batch = {
            "actions": torch.from_numpy(np.ascontiguousarray(actions, dtype=np.float32)),
            "head_index": torch.from_numpy(heads.astype(np.int64)),
            "dataset_index": torch.from_numpy(datasets.astype(np.int64)),
        }
        if self.entry_widths is not None:
            batch["action_dim"] = torch.from_numpy(self.entry_widths[datasets.astype(np.int64)])
        return batch

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
                yield self._batch(actions[start:stop], heads[start:stop], datasets[start:stop])
                emitted += 1
                start = stop
            buffered = [(actions[start:], heads[start:], datasets[start:])]
            buffered_count = len(actions) - start
