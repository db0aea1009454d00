"""examples/train.py and examples/predict.py: bf16 runs, a meta-device step, checkpoint -> raw actions."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from lightning_support import small_callback_kwargs
from pytorch_lightning.callbacks import ModelCheckpoint

from fasttok_plugin.codec import FastTokenizer
from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule
from fasttok_plugin.normalize import Normalize
from fasttok_plugin.testing import make_example_mixture

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))
from predict import load_decoder  # noqa: E402
from train import TinyActionPolicy  # noqa: E402

T, D, MAX_TOKENS = 8, 16, 96


@pytest.fixture(scope="module")
def mixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_example_mixture(tmp_path_factory.mktemp("example"), n_datasets=3)


def _datamodule(mixture: Path, **kwargs: Any) -> MixtureDataModule:
    options = {"batch_size": 8, "round_chunks": 64, "batches_per_epoch": 3, "eval_batches": 1, **kwargs}
    return MixtureDataModule(mixture, chunk_size=T, max_action_dim=D, **options)


def _train(tmp_path: Path, mixture: Path, *, precision: str = "32-true", **dm_kwargs: Any) -> pl.Trainer:
    callback = FastTokenizerCallback(
        tmp_path / "tokenizer",
        normalize_attribute="normalize",
        **small_callback_kwargs(max_action_tokens=MAX_TOKENS),
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=2,
        precision=precision,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        callbacks=[callback, ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    model = TinyActionPolicy(d_model=16, num_layers=1, num_heads=2, max_action_tokens=MAX_TOKENS)
    trainer.fit(model, datamodule=_datamodule(mixture, **dm_kwargs))
    return trainer


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
@pytest.mark.parametrize("tokenize", [True, False])
def test_the_example_policy_trains_under_bf16(tmp_path, mixture, precision, tokenize) -> None:
    # Before issue 14 the in-step path raised "Got unsupported ScalarType BFloat16" under bf16-true.
    trainer = _train(tmp_path, mixture, precision=precision, tokenize=tokenize)
    model = trainer.lightning_module
    assert trainer.global_step == 2
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert model.normalize.min.dtype == torch.float32  # the stats were not rounded to bf16
    if precision == "bf16-true":
        assert model.lm_head.weight.dtype == torch.bfloat16


def test_the_worker_path_runs_on_a_device_without_host_copies(tmp_path, mixture) -> None:
    # The meta device holds no values: any .numpy() or host round trip of a device tensor would fail.
    trainer = _train(tmp_path, mixture, tokenize=True)
    model = trainer.lightning_module.to("meta")
    batch = next(iter(trainer.datamodule.train_dataloader()))
    on_device = {k: v.to("meta") for k, v in batch.items()}
    loss, _ = model.loss(on_device)
    assert loss.device.type == "meta"


def _encoded(trainer: pl.Trainer) -> tuple[np.ndarray, np.ndarray, Any, FastTokenizer]:
    dm = trainer.datamodule
    batch = next(iter(dm.chunk_sampler.sample(40, seed=11, batch_size=40)))
    raw, heads = batch.actions, batch.head_index.astype(np.int64)
    tokenizer = FastTokenizer.load(trainer.callbacks[0].tokenizer_dir)
    normalized = Normalize(dm.norm_heads)(torch.from_numpy(raw), torch.from_numpy(heads))
    return raw, heads, tokenizer.encode_padded(normalized), tokenizer


def _bound(trainer: pl.Trainer, heads: np.ndarray, scale: float) -> np.ndarray:
    # Per value: 0.5/scale per DCT coefficient through the orthonormal IDCT (<= 0.5/scale * sqrt(2T)),
    # scaled by LeRobot's MIN_MAX inverse (x + 1) / 2 * (max - min) + min
    # (src/lerobot/processor/normalize_processor.py).
    norm_heads = trainer.datamodule.norm_heads
    span = (norm_heads.max - norm_heads.min)[heads].astype(np.float64)
    return 0.5 / scale * math.sqrt(2 * T) * span[:, None, :] / 2 + 1e-5


def test_a_checkpoint_loads_without_a_datamodule_and_decodes_the_raw_chunks(tmp_path, mixture) -> None:
    trainer = _train(tmp_path, mixture, tokenize=True)
    raw, heads, encoded, tokenizer = _encoded(trainer)
    checkpoint = tmp_path / "ckpt" / "last.ckpt"
    model, decoder = load_decoder(checkpoint, trainer.callbacks[0].tokenizer_dir)  # no datamodule
    trained = trainer.lightning_module
    for name, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    out = decoder.decode(encoded.ids, heads, lengths=encoded.lengths)
    assert out.valid.all()
    dims = np.asarray(trainer.datamodule.norm_heads.native_dims)[heads]
    error = np.abs(out.actions.astype(np.float64) - raw)
    bound = _bound(trainer, heads, tokenizer.scale)
    for row, d in enumerate(dims):
        assert (error[row, :, :d] <= bound[row, :, :d]).all(), row
    # The loaded model scores the chunk's tokens (its layers came from the checkpoint, not a datamodule).
    batch = {
        "action_tokens": torch.from_numpy(encoded.ids),
        "action_token_mask": torch.from_numpy(encoded.attention_mask),
        "action_tokens_truncated": torch.tensor(0),
        "head_index": torch.from_numpy(heads),
    }
    with torch.no_grad():
        assert math.isfinite(float(model.loss(batch)[0]))


@pytest.mark.slow
def test_predict_script_decodes_from_a_checkpoint_in_a_subprocess(tmp_path, mixture) -> None:
    trainer = _train(tmp_path, mixture, tokenize=True)
    raw, heads, encoded, tokenizer = _encoded(trainer)
    keys = np.asarray([trainer.datamodule.norm_heads.keys[h] for h in heads])  # heads by key
    np.savez(tmp_path / "predicted.npz", ids=encoded.ids, lengths=encoded.lengths, heads=keys)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    arguments = ["--checkpoint", str(tmp_path / "ckpt" / "last.ckpt"), "--tokenizer"]
    arguments += [str(trainer.callbacks[0].tokenizer_dir), "--ids", str(tmp_path / "predicted.npz")]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "predict.py"), *arguments, "--out", str(tmp_path / "actions.npz")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"decoded {len(raw)} of {len(raw)} chunk(s)" in result.stdout
    with np.load(tmp_path / "actions.npz") as saved:
        error = np.abs(saved["actions"].astype(np.float64) - raw)
        bound = _bound(trainer, heads, tokenizer.scale)
        for row, d in enumerate(saved["action_dims"]):
            assert (error[row, :, :d] <= bound[row, :, :d]).all(), row
    missing = subprocess.run(
        [sys.executable, str(EXAMPLES / "predict.py"), *arguments[:3], "nope", "--ids", "x", "--out", "y"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr


def test_a_checkpoint_of_a_relative_action_run_keeps_the_transform(tmp_path, mixture) -> None:
    # examples/train.py saves the datamodule's transforms in the decoder state: predicting from the
    # checkpoint adds the chunk-start state back, as the tokenizer folder's own decoder does.
    from fasttok_plugin.decode import ActionDecoder
    from fasttok_plugin.transforms import ActionTransform

    trainer = _train(tmp_path, mixture, transform=ActionTransform(relative_dims="0:3"))
    raw, heads, encoded, _ = _encoded(trainer)
    _, decoder = load_decoder(tmp_path / "ckpt" / "last.ckpt", trainer.callbacks[0].tokenizer_dir)
    folder = ActionDecoder.from_tokenizer_dir(trainer.callbacks[0].tokenizer_dir)
    assert [t.key for t in decoder.transforms] == [t.key for t in folder.transforms]
    assert all(t.relative == (0, 1, 2) for t in decoder.transforms)
    with pytest.raises(ValueError, match=r"pass state=.*'observation\.state'"):
        decoder.decode(encoded.ids, heads, lengths=encoded.lengths)
    state = np.random.default_rng(0).normal(size=(len(raw), 3)).astype(np.float32)
    relative = decoder.decode(encoded.ids, heads, lengths=encoded.lengths, state=np.zeros_like(state))
    absolute = decoder.decode(encoded.ids, heads, lengths=encoded.lengths, state=state)
    np.testing.assert_allclose(
        absolute.actions[..., :3], relative.actions[..., :3] + state[:, None, :], atol=1e-6
    )
    np.testing.assert_array_equal(absolute.actions[..., 3:], relative.actions[..., 3:])
    # predict.py reads the state from the .npz (and without it stops with one line, exit 2).
    from predict import main as predict_main

    arguments = ["--checkpoint", str(tmp_path / "ckpt" / "last.ckpt")]
    arguments += ["--tokenizer", str(trainer.callbacks[0].tokenizer_dir), "--out", str(tmp_path / "out.npz")]
    np.savez(tmp_path / "p.npz", ids=encoded.ids, lengths=encoded.lengths, heads=heads, state=state)
    assert predict_main([*arguments, "--ids", str(tmp_path / "p.npz")]) == 0
    with np.load(tmp_path / "out.npz") as saved:
        np.testing.assert_array_equal(saved["actions"], absolute.actions)
    np.savez(tmp_path / "nostate.npz", ids=encoded.ids, lengths=encoded.lengths, heads=heads)
    assert predict_main([*arguments, "--ids", str(tmp_path / "nostate.npz")]) == 2
