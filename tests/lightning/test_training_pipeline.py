"""Issue 14: tokens made in the DataLoader workers, bf16-safe; a sampler pool living with the datamodule."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from lightning_support import CHUNK_SIZE, MAX_ACTION_DIM, make_trainer, small_callback_kwargs
from torch import Tensor, nn

from fasttok_plugin.codec import FastTokenizer
from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule, TokenizeBatch
from fasttok_plugin.lightning._tokenize import TOKEN_KEYS
from fasttok_plugin.normalize import Normalize

MAX_TOKENS = 64


def _datamodule(path: Path, **kwargs: Any) -> MixtureDataModule:
    options: dict[str, Any] = {
        "chunk_size": CHUNK_SIZE,
        "max_action_dim": MAX_ACTION_DIM,
        "batch_size": 6,
        "round_chunks": 24,
        "batches_per_epoch": 4,
        "eval_batches": 1,
    }
    options.update(kwargs)
    return MixtureDataModule(path, **options)


class RecordingPolicy(pl.LightningModule):
    """Trains on the worker-made ``action_tokens``; records them next to the in-step tokenization."""

    def __init__(self) -> None:
        super().__init__()
        self.action_tokenizer: Any = None
        self.normalize: nn.Module | None = None
        self.embedding = nn.Embedding(512, 8)
        self.out = nn.Linear(8, 1)
        self.batches: list[dict[str, Tensor]] = []
        self.in_step: list[Any] = []
        self.buffer_dtypes: set[torch.dtype] = set()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        assert self.normalize is not None
        self.batches.append({k: v.clone() for k, v in batch.items()})
        self.buffer_dtypes.add(self.normalize.min.dtype)
        # The tokenization a policy would run in its step, on float32 raw actions (the recorded ones are
        # cast under bf16-true by Lightning's convert_input; the worker saw them before that cast).
        normalized = self.normalize(batch["actions"], batch["head_index"])
        self.in_step.append(self.action_tokenizer.encode_padded(normalized, max_length=MAX_TOKENS))
        mask = batch["action_token_mask"].to(self.out.weight.dtype)
        hidden = self.embedding(batch["action_tokens"].clamp_max(511)) * mask[..., None]
        return self.out(hidden.sum(1)).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(tmp_path: Path, datamodule: MixtureDataModule, **trainer_kwargs: Any) -> RecordingPolicy:
    callback = FastTokenizerCallback(
        tmp_path / "tokenizer", normalize_attribute="normalize", **small_callback_kwargs()
    )
    model = RecordingPolicy()
    trainer = make_trainer(tmp_path, [callback], max_steps=4, **trainer_kwargs)
    trainer.fit(model, datamodule=datamodule)
    assert len(model.batches) == 4
    return model


@pytest.mark.parametrize("num_workers", [0, 2])
def test_worker_tokens_equal_the_in_step_tokenization_bit_for_bit(
    tmp_path, make_mixture, num_workers
) -> None:
    mixture = make_mixture(("arm", "base"))
    model = _fit(tmp_path, _datamodule(mixture.path, tokenize=True, num_workers=num_workers))
    for batch, encoded in zip(model.batches, model.in_step, strict=True):
        assert set(TOKEN_KEYS) <= set(batch)
        assert batch["action_tokens"].dtype == torch.int64
        assert batch["action_tokens"].shape == (6, MAX_TOKENS)  # padded to the callback's budget
        np.testing.assert_array_equal(batch["action_tokens"].numpy(), encoded.ids)
        np.testing.assert_array_equal(batch["action_token_mask"].numpy(), encoded.attention_mask)
        np.testing.assert_array_equal(batch["action_token_lengths"].numpy(), encoded.lengths)
        assert int(batch["action_tokens_truncated"]) == encoded.truncated_rows
        assert int(batch["action_values_clamped"]) == encoded.clamped_values
        expected = model.normalize(batch["actions"], batch["head_index"])
        assert batch["normalized_actions"].dtype == torch.float32
        assert torch.equal(batch["normalized_actions"], expected)
        assert int(batch["action_token_lengths"].min()) > 0


def test_default_batches_are_unchanged(make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    dm = _datamodule(mixture.path)
    dm.setup("fit")
    assert set(next(iter(dm.train_dataloader()))) == {"actions", "head_index", "dataset_index"}


def _tokenizer_for(dm: MixtureDataModule) -> tuple[FastTokenizer, Normalize]:
    normalize = Normalize(dm.norm_heads)
    chunks = [
        normalize(torch.from_numpy(b.actions), torch.from_numpy(b.head_index.astype(np.int64))).numpy()
        for b in dm.chunk_sampler.sample(200, seed=5)
    ]
    return FastTokenizer.fit(np.concatenate(chunks), vocab_size=256), normalize


def test_set_tokenization_without_a_trainer_is_deterministic_per_seed(make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    runs = []
    for _ in range(2):
        dm = _datamodule(mixture.path, tokenize=True, max_action_tokens=40, num_workers=1)
        dm.setup("fit")
        dm.set_tokenization(*_tokenizer_for(dm))
        runs.append(list(dm.train_dataloader()))
    for a, b in zip(*runs, strict=True):
        assert a["action_tokens"].shape == (6, 40)  # the datamodule's max_action_tokens wins
        assert torch.equal(a["action_tokens"], b["action_tokens"])
        assert torch.equal(a["normalized_actions"], b["normalized_actions"])


def test_tokenize_without_a_tokenizer_names_the_fix(make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    dm = _datamodule(mixture.path, tokenize=True)
    dm.setup("fit")
    with pytest.raises(RuntimeError, match=r"add FastTokenizerCallback .* datamodule.set_tokenization"):
        dm.train_dataloader()


def test_the_callback_hands_over_before_any_loader_exists(tmp_path, make_mixture, monkeypatch) -> None:
    events: list[str] = []
    real_set, real_loader = MixtureDataModule.set_tokenization, MixtureDataModule._loader

    def record_set(self, *args: Any, **kwargs: Any) -> None:
        events.append("set_tokenization")
        real_set(self, *args, **kwargs)

    def record_loader(self, stage: str, num_batches: int) -> Any:
        events.append(f"loader:{stage}")
        return real_loader(self, stage, num_batches)

    monkeypatch.setattr(MixtureDataModule, "set_tokenization", record_set)
    monkeypatch.setattr(MixtureDataModule, "_loader", record_loader)
    mixture = make_mixture(("arm", "base"))
    _fit(tmp_path, _datamodule(mixture.path, tokenize=True))
    assert events[0] == "set_tokenization"
    assert "loader:train" in events


def test_tokenize_batch_keeps_a_cpu_float32_copy_of_normalize(make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    dm = _datamodule(mixture.path)
    dm.setup("fit")
    tokenizer, normalize = _tokenizer_for(dm)
    collate = TokenizeBatch(tokenizer, normalize, max_action_tokens=MAX_TOKENS)
    normalize.to(torch.bfloat16)  # what precision="bf16-true" does to the policy's module later
    batch = next(iter(dm.train_dataloader()))
    out = collate(batch)
    assert collate.normalize is not normalize
    assert collate.normalize.min.dtype == torch.float32
    assert torch.equal(
        out["normalized_actions"], Normalize(dm.norm_heads)(batch["actions"], batch["head_index"])
    )
    assert set(batch) == {"actions", "head_index", "dataset_index"}  # the input batch is not modified


def test_bf16_runs_produce_the_float32_token_ids(tmp_path, make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    runs = {}
    for precision in ("32-true", "bf16-mixed", "bf16-true"):
        dm = _datamodule(mixture.path, tokenize=True)
        runs[precision] = _fit(tmp_path, dm, precision=precision)
    reference = runs["32-true"]
    for precision, model in runs.items():
        assert model.buffer_dtypes == {torch.float32}, precision  # Normalize's stats were never cast
        for ours, theirs in zip(model.batches, reference.batches, strict=True):
            assert torch.equal(ours["action_tokens"], theirs["action_tokens"]), precision
            assert torch.equal(ours["action_token_lengths"], theirs["action_token_lengths"]), precision
    # bf16-mixed leaves the batch in float32: the in-step tokenization matches too.
    for ours, theirs in zip(runs["bf16-mixed"].in_step, reference.in_step, strict=True):
        np.testing.assert_array_equal(ours.ids, theirs.ids)


@pytest.mark.slow
@pytest.mark.parametrize("context", ["spawn", "forkserver"])
def test_persistent_spawned_workers_tokenize_every_epoch(tmp_path, make_mixture, context) -> None:
    mixture = make_mixture(("arm", "base"))
    dm = _datamodule(mixture.path, tokenize=True, num_workers=1, multiprocessing_context=context)
    dm.setup("fit")
    tokenizer, normalize = _tokenizer_for(dm)
    dm.set_tokenization(tokenizer, normalize, max_action_tokens=MAX_TOKENS)
    loader = dm.train_dataloader()
    assert loader.persistent_workers
    epochs = [list(loader), list(loader)]
    assert not torch.equal(epochs[0][0]["actions"], epochs[1][0]["actions"])  # new chunks per epoch
    for batch in epochs[0] + epochs[1]:
        normalized = normalize(batch["actions"], batch["head_index"])
        expected = tokenizer.encode_padded(normalized, max_length=MAX_TOKENS)
        np.testing.assert_array_equal(batch["action_tokens"].numpy(), expected.ids)


def test_the_sampler_pool_lives_as_long_as_the_datamodule(tmp_path, make_mixture, spy) -> None:
    mixture = make_mixture(("arm", "base"))
    dm = _datamodule(mixture.path, sampler_workers=1, batches_per_epoch=6, round_chunks=6)
    dm.setup("fit")
    loader = dm.train_dataloader()
    pool = dm.chunk_sampler.pool
    assert pool is not None
    assert not pool.running  # started on first use
    for _ in range(2):  # two epochs, a sampler round per batch
        assert len(list(loader)) == 6
    assert spy.samples >= 12
    assert pool.started == 1  # one pool for every round of both epochs
    assert pool.running
    dm.teardown("fit")
    assert not pool.running
    assert dm.chunk_sampler.pool is None


def test_native_worker_tokens_are_made_at_each_chunks_width(tmp_path, make_mixture) -> None:
    # arm and base have different native widths: the workers must tokenize each chunk at its own width,
    # as the native fit measured, not at the padded width.
    mixture = make_mixture(("arm", "base"))
    model = _fit(tmp_path, _datamodule(mixture.path, tokenize=True, layout="native"))
    assert model.action_tokenizer.layout == "native"
    seen = set()
    for batch in model.batches:
        widths = batch["action_dim"].numpy()
        seen.update(widths.tolist())
        normalized = model.normalize(batch["actions"], batch["head_index"])
        expected = model.action_tokenizer.encode_padded(normalized, max_length=MAX_TOKENS, action_dims=widths)
        np.testing.assert_array_equal(batch["action_tokens"].numpy(), expected.ids)
        np.testing.assert_array_equal(batch["action_token_lengths"].numpy(), expected.lengths)
    assert len(seen) > 1


@pytest.mark.parametrize(("preset", "expected"), [(None, "false"), ("true", "true")])
def test_workers_quiet_the_tokenizers_fork_warning_unless_the_user_chose(
    make_mixture, monkeypatch, preset, expected
) -> None:
    # HF tokenizers warns in every forked child once the parent used its thread pool (the fit did).
    if preset is None:
        monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    else:
        monkeypatch.setenv("TOKENIZERS_PARALLELISM", preset)
    mixture = make_mixture(("arm", "base"))
    dm = _datamodule(mixture.path, tokenize=True, num_workers=1)
    dm.setup("fit")
    dm.set_tokenization(*_tokenizer_for(dm))  # the fit used the tokenizers thread pool in this process
    batches = list(dm.train_dataloader())
    assert len(batches) == 4
    assert os.environ["TOKENIZERS_PARALLELISM"] == expected
