"""Resuming a checkpoint: the normalization stats are derived (never restored), a checkpoint fit for other
heads is a TokenizerMismatchError before any weight loads, refit really refits, and a checkpoint loads for
inference without the datamodule (issue #10, DESIGN §14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning_support import (
    CHUNK_SIZE,
    MAX_ACTION_DIM,
    ROBOTS,
    TokenModel,
    make_trainer,
    small_callback_kwargs,
)
from pytorch_lightning.callbacks import ModelCheckpoint

from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule, TokenizerMismatchError
from fasttok_plugin.testing import write_lerobot_dataset, write_mixture


def _datamodule(path: Path) -> MixtureDataModule:
    return MixtureDataModule(
        path, chunk_size=CHUNK_SIZE, max_action_dim=MAX_ACTION_DIM, batch_size=4, round_chunks=16
    )


def _callback(tokenizer_dir: Path, **kwargs) -> FastTokenizerCallback:
    return FastTokenizerCallback(
        tokenizer_dir, **small_callback_kwargs(normalize_attribute="normalize", **kwargs)
    )


def _train_and_checkpoint(tmp_path: Path, mixture: Path, tokenizer_dir: Path) -> tuple[Path, TokenModel, str]:
    callback = _callback(tokenizer_dir)
    model = TokenModel()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    make_trainer(tmp_path, [callback, checkpoint], enable_checkpointing=True, max_steps=2).fit(
        model, datamodule=_datamodule(mixture)
    )
    return tmp_path / "ckpt" / "last.ckpt", model, callback.fingerprint


def _scaled_base_mixture(tmp_path: Path, scale: float) -> Path:
    """Mixture (arm, base) whose base actions are sines of amplitude ``scale``: same heads, other stats."""
    robot_type, control_mode, dim, version, lengths = ROBOTS["base"]
    t = np.linspace(0.0, 1.0, max(lengths), dtype=np.float32)
    actions = [
        np.stack([scale * np.sin(2 * np.pi * t[:n] + k) for k in range(dim)], axis=1).astype(np.float32)
        for n in lengths
    ]
    write_lerobot_dataset(
        tmp_path / "datasets" / "base_scaled",
        version=version,
        robot_type=robot_type,
        control_mode=control_mode,
        action_dim=dim,
        episode_lengths=lengths,
        actions=actions,
    )
    document = {
        "datasets": [
            {"repo_id": "test/arm", "root": "datasets/arm"},
            {"repo_id": "test/base", "root": "datasets/base_scaled"},
        ],
        "weights": [1.0, 1.0],
    }
    return write_mixture(tmp_path / "scaled.json", document)


def test_checkpoints_hold_no_normalize_stats_and_load_for_inference(tmp_path, make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    ckpt, trained, _ = _train_and_checkpoint(tmp_path, mixture.path, tmp_path / "tokenizer")
    state = torch.load(ckpt, weights_only=False)["state_dict"]
    assert not [key for key in state if key.startswith("normalize.")], sorted(state)
    # Inference: no datamodule, no callback, no Normalize attribute on the fresh model.
    loaded = TokenModel.load_from_checkpoint(ckpt)
    assert getattr(loaded, "normalize", None) is None
    for name, tensor in trained.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)


def test_resume_under_refit_trains_with_the_new_stats(tmp_path, make_mixture) -> None:
    original = make_mixture(("arm", "base"))
    tokenizer_dir = tmp_path / "tokenizer"
    ckpt, _, old_fingerprint = _train_and_checkpoint(tmp_path, original.path, tokenizer_dir)
    changed = _scaled_base_mixture(tmp_path, scale=6.0)
    callback = _callback(tokenizer_dir, on_mismatch="refit")
    model = TokenModel()
    datamodule = _datamodule(changed)
    with pytest.warns(UserWarning, match="continuing because on_mismatch='refit'"):
        make_trainer(tmp_path, [callback], max_steps=4).fit(model, datamodule=datamodule, ckpt_path=ckpt)
    assert model.steps == 2
    assert callback.fitted is True
    assert callback.fingerprint != old_fingerprint
    heads = datamodule.norm_heads
    # Before issue #10 the checkpoint's stats overwrote these (max[1, 0] 1.4378 instead of 6.4378).
    assert float(heads.max[1, 0]) > 5.0
    np.testing.assert_array_equal(model.normalize.max.numpy(), heads.max.astype(np.float32))
    np.testing.assert_array_equal(model.normalize.min.numpy(), heads.min.astype(np.float32))
    assert model.normalize.fingerprint == heads.fingerprint == callback.fit_report.norm_heads_fingerprint
    # Every step normalized with the new heads' module.
    assert {id(normalize) for _, normalize in model.seen["fit"]} == {id(model.normalize)}


def test_resume_with_other_heads_is_a_mismatch_before_any_weight_loads(tmp_path, make_mixture) -> None:
    ckpt, trained, old_fingerprint = _train_and_checkpoint(
        tmp_path, make_mixture(("arm", "base")).path, tmp_path / "tokenizer"
    )
    three_heads = make_mixture(("arm", "base", "gripper"), name="three.json")
    model = TokenModel()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    assert not torch.equal(before["out.weight"], trained.state_dict()["out.weight"])
    callback = _callback(tmp_path / "tokenizer3")  # a new folder: only the checkpoint reveals the change
    with pytest.raises(TokenizerMismatchError) as excinfo:
        make_trainer(tmp_path, [callback], max_steps=4).fit(
            model, datamodule=_datamodule(three_heads.path), ckpt_path=ckpt
        )
    message = str(excinfo.value)
    assert old_fingerprint in message
    assert callback.fingerprint in message
    assert "norm heads changed" in message
    assert "Fix:" in message
    assert "size mismatch" not in message
    assert excinfo.value.found == old_fingerprint
    assert excinfo.value.expected == callback.fingerprint
    # Raised before Lightning copied a single weight of the checkpoint into the model.
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert model.steps == 0


def test_resume_with_other_heads_under_refit_trains_with_the_new_heads(tmp_path, make_mixture) -> None:
    ckpt, _trained, _ = _train_and_checkpoint(
        tmp_path, make_mixture(("arm", "base")).path, tmp_path / "tokenizer"
    )
    three_heads = make_mixture(("arm", "base", "gripper"), name="three.json")
    callback = _callback(tmp_path / "tokenizer", on_mismatch="refit")
    model = TokenModel()
    datamodule = _datamodule(three_heads.path)
    with pytest.warns(UserWarning, match="continuing because on_mismatch='refit'"):
        make_trainer(tmp_path, [callback], max_steps=4).fit(model, datamodule=datamodule, ckpt_path=ckpt)
    assert model.steps == 2
    assert callback.fitted is True
    assert model.normalize.num_heads == 3
    np.testing.assert_array_equal(model.normalize.max.numpy(), datamodule.norm_heads.max.astype(np.float32))


def test_a_checkpoint_that_still_holds_normalize_stats_resumes_with_the_current_ones(
    tmp_path, make_mixture
) -> None:
    mixture = make_mixture(("arm", "base"))
    ckpt, _, _ = _train_and_checkpoint(tmp_path, mixture.path, tmp_path / "tokenizer")
    # A checkpoint written while the buffers were persistent (stale, and of another head count).
    checkpoint = torch.load(ckpt, weights_only=False)
    for name in ("min", "max", "mean", "std"):
        checkpoint["state_dict"][f"normalize.{name}"] = torch.full((5, MAX_ACTION_DIM), 9.0)
    legacy = tmp_path / "legacy.ckpt"
    torch.save(checkpoint, legacy)
    model = TokenModel()
    datamodule = _datamodule(mixture.path)
    make_trainer(tmp_path, [_callback(tmp_path / "tokenizer")], max_steps=4).fit(
        model, datamodule=datamodule, ckpt_path=legacy
    )
    assert model.steps == 2
    np.testing.assert_array_equal(model.normalize.max.numpy(), datamodule.norm_heads.max.astype(np.float32))
