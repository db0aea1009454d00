"""Helpers of the Lightning tests (imported by conftest and the tests): mixtures, a tiny model, spies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from fasttok_plugin.sampling import ChunkSampler
from fasttok_plugin.testing import SyntheticDataset, write_lerobot_dataset, write_mixture

CHUNK_SIZE = 8
MAX_ACTION_DIM = 4

# (name, robot_type, control_mode, action_dim, version, episode lengths)
ROBOTS: dict[str, tuple[str | None, str | None, int, str, tuple[int, ...]]] = {
    "arm": ("arm", "joint_pos", 3, "v3.0", (30, 40)),
    "base": ("base", "velocity", 2, "v2.1", (30, 36)),
    "gripper": ("gripper", "joint_pos", 4, "v3.0", (32, 32)),
    "untagged": (None, None, 2, "v2.1", (30, 30)),
}


@dataclass
class Mixture:
    """A mixture file with the datasets it lists."""

    path: Path
    datasets: dict[str, SyntheticDataset]
    weights: tuple[float, ...]


def mixture_factory(tmp_path: Path) -> Callable[..., Mixture]:
    """Factory ``make_mixture(robots=("arm", "base"), weights=None, name="mixture.json", **top_level)``.

    Datasets are written once per robot name under ``tmp_path/datasets`` (shared between mixtures, so two
    mixtures that list the same robot read the same files).
    """
    written: dict[str, SyntheticDataset] = {}

    def factory(
        robots: Sequence[str] = ("arm", "base"),
        weights: Sequence[float] | None = None,
        name: str = "mixture.json",
        seed: int = 0,
        **top_level: Any,
    ) -> Mixture:
        entries = []
        for robot in robots:
            robot_type, control_mode, dim, version, lengths = ROBOTS[robot]
            if robot not in written:
                written[robot] = write_lerobot_dataset(
                    tmp_path / "datasets" / robot,
                    version=version,
                    robot_type=robot_type,
                    control_mode=control_mode,
                    action_dim=dim,
                    episode_lengths=lengths,
                    seed=seed + len(written),
                )
            entries.append({"repo_id": f"test/{robot}", "root": f"datasets/{robot}"})
        weights = tuple(float(w) for w in weights) if weights is not None else (1.0,) * len(robots)
        document = {"datasets": entries, "weights": list(weights), **top_level}
        path = write_mixture(tmp_path / name, document)
        return Mixture(path=path, datasets={r: written[r] for r in robots}, weights=weights)

    return factory


@dataclass
class Spy:
    """Counts calls of the fit function and of the chunk sampler."""

    fits: int = 0
    samples: int = 0
    fit_calls: list[dict[str, Any]] = field(default_factory=list)


def install_spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    """Wrap ``fitting.fit_tokenizer`` and ``ChunkSampler.sample`` with counters (behaviour unchanged)."""
    from fasttok_plugin.fit import pipeline as fitting

    counters = Spy()
    real_fit = fitting.fit_tokenizer
    real_sample = ChunkSampler.sample

    def counting_fit(*args: Any, **kwargs: Any) -> Any:
        counters.fits += 1
        counters.fit_calls.append(kwargs)
        return real_fit(*args, **kwargs)

    def counting_sample(self: ChunkSampler, *args: Any, **kwargs: Any) -> Any:
        counters.samples += 1
        return real_sample(self, *args, **kwargs)

    monkeypatch.setattr(fitting, "fit_tokenizer", counting_fit)
    monkeypatch.setattr(ChunkSampler, "sample", counting_sample)
    return counters


class TokenModel(pl.LightningModule):
    """A tiny model whose loss goes through the attached tokenizer; records what each stage saw.

    Attributes:
        seen: ``stage -> list of (tokenizer object, Normalize object or None)`` per step.
        samples_before_fit_start: Sampler calls counted (by the spy) when ``on_fit_start`` ran, i.e. the
            calls the callback made before any loader existed.
    """

    def __init__(self, spy: Spy | None = None, max_tokens: int = 64) -> None:
        super().__init__()
        self.spy = spy
        self.max_tokens = max_tokens
        self.action_tokenizer: Any = None
        self.embedding = nn.Embedding(1024, 8)
        self.out = nn.Linear(8, 1)
        self.seen: dict[str, list[tuple[Any, Any]]] = {}
        self.samples_before_fit_start: int | None = None
        self.steps = 0

    def on_fit_start(self) -> None:
        if self.spy is not None:
            self.samples_before_fit_start = self.spy.samples

    def _record(self, stage: str) -> None:
        self.seen.setdefault(stage, []).append((self.action_tokenizer, getattr(self, "normalize", None)))

    def _loss(self, batch: dict[str, Tensor]) -> Tensor:
        normalize = getattr(self, "normalize", None)
        actions = batch["actions"]
        normalized = (
            normalize(actions, batch["head_index"]) if normalize is not None else actions.clamp(-1, 1)
        )
        encoded = self.action_tokenizer.encode_padded(normalized.numpy(), max_length=self.max_tokens)
        ids = torch.as_tensor(encoded.ids).clamp_max(1023)
        mask = torch.as_tensor(encoded.attention_mask).float()
        pooled = (self.embedding(ids) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return self.out(pooled).pow(2).mean()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self._record("fit")
        self.steps += 1
        return self._loss(batch)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._record("validate")
        self.log("val_loss", self._loss(batch))

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._record("test")
        self.log("test_loss", self._loss(batch))

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self._record("predict")
        return self._loss(batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def small_callback_kwargs(**overrides: Any) -> dict[str, Any]:
    """Callback arguments for a fit that takes well under a second."""
    kwargs: dict[str, Any] = {"vocab_size": 256, "total_chunks": 200, "max_action_tokens": 64}
    kwargs.update(overrides)
    return kwargs


def make_trainer(
    tmp_path: Path, callbacks: list[pl.Callback], *, max_steps: int = 2, **kwargs: Any
) -> pl.Trainer:
    """A quiet CPU trainer for a couple of steps."""
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": max_steps,
        "limit_val_batches": 1,
        "num_sanity_val_steps": 0,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": tmp_path,
        "callbacks": callbacks,
    }
    options.update(kwargs)
    return pl.Trainer(**options)
