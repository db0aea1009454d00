"""The native layout through Lightning: batches carry each chunk's width, the callback fits natively."""

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
from torch import Tensor

from fasttok_plugin.errors import FitError
from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule
from fasttok_plugin.lightning._metrics import tokenizer_params


def _datamodule(path: Path, **kwargs) -> MixtureDataModule:
    options = {
        "chunk_size": CHUNK_SIZE,
        "max_action_dim": MAX_ACTION_DIM,
        "batch_size": 4,
        "round_chunks": 16,
    }
    options.update(kwargs)
    return MixtureDataModule(path, **options)


class NativeModel(TokenModel):
    """Tokenizes each chunk at its native width, as a LeRobot / openpi policy does."""

    def __init__(self) -> None:
        super().__init__()
        self.widths_seen: list[np.ndarray] = []

    def _loss(self, batch: dict[str, Tensor]) -> Tensor:
        widths = batch["action_dim"].numpy()
        self.widths_seen.append(widths)
        normalized = self.normalize(batch["actions"], batch["head_index"])
        encoded = self.action_tokenizer.encode_padded(normalized.numpy(), action_dims=widths, max_length=64)
        decoded = self.action_tokenizer.decode(encoded, action_dim=widths)
        assert decoded.valid.all()
        ids = torch.as_tensor(encoded.ids).clamp_max(1023)
        mask = torch.as_tensor(encoded.attention_mask).float()
        pooled = (self.embedding(ids) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return self.out(pooled).pow(2).mean()


def test_native_batches_carry_each_chunks_width(make_mixture) -> None:
    mixture = make_mixture(("arm", "base", "gripper"))
    native = _datamodule(mixture.path, layout="native")
    native.setup("fit")
    assert native.layout == "native"
    dims = {i: ROBOTS[r][2] for i, r in enumerate(("arm", "base", "gripper"))}
    batches = list(native.train_dataloader())
    assert batches
    for batch in batches:
        assert batch["actions"].shape == (4, CHUNK_SIZE, MAX_ACTION_DIM)  # still padded
        assert batch["action_dim"].dtype == torch.int64
        expected = [dims[int(i)] for i in batch["dataset_index"]]
        assert batch["action_dim"].tolist() == expected
        for row, width in enumerate(expected):  # the padding really starts at the width
            assert not batch["actions"][row, :, width:].any()
    padded = _datamodule(mixture.path)
    padded.setup("fit")
    assert padded.layout == "padded"
    assert "action_dim" not in next(iter(padded.train_dataloader()))
    with pytest.raises(ValueError, match="layout must be 'padded' or 'native', got 'flat'"):
        _datamodule(mixture.path, layout="flat")


def test_mixture_layout_key_sets_the_datamodules_layout(make_mixture) -> None:
    mixture = make_mixture(("arm", "base"), layout="native")
    datamodule = _datamodule(mixture.path)
    datamodule.setup("fit")
    assert datamodule.layout == "native"
    assert "action_dim" in next(iter(datamodule.train_dataloader()))
    explicit = _datamodule(mixture.path, layout="padded")
    explicit.setup("fit")
    assert explicit.layout == "padded"


def test_callback_fits_a_native_tokenizer_for_a_native_datamodule(tmp_path: Path, make_mixture) -> None:
    mixture = make_mixture(("arm", "base", "gripper"))
    callback = FastTokenizerCallback(
        tmp_path / "tok", normalize_attribute="normalize", **small_callback_kwargs()
    )
    model = NativeModel()
    datamodule = _datamodule(mixture.path, layout="native")
    make_trainer(tmp_path, [callback]).fit(model, datamodule=datamodule)
    assert callback.tokenizer is not None
    assert callback.tokenizer.layout == "native"
    assert callback.tokenizer.action_dims == (2, 3, 4)
    assert callback.fit_report is not None
    assert callback.fit_report.layout == "native"
    assert model.steps == 2
    assert {int(w) for widths in model.widths_seen for w in widths} <= {2, 3, 4}
    params = tokenizer_params(
        fingerprint=str(callback.fingerprint),
        heads=datamodule.norm_heads,
        tokenizer=callback.tokenizer,
        settings=callback.settings,
        tokenizer_dir=str(tmp_path / "tok"),
        fitted=True,
    )
    assert (params["fasttok/layout"], params["fasttok/action_dims"]) == ("native", "2, 3, 4")


def test_callback_layout_must_match_the_datamodules(tmp_path: Path, make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    callback = FastTokenizerCallback(tmp_path / "tok", layout="native", **small_callback_kwargs())
    trainer = make_trainer(tmp_path, [callback])
    with pytest.raises(FitError, match=r"layout='native'\) but the datamodule serves 'padded' chunks"):
        trainer.fit(TokenModel(), datamodule=_datamodule(mixture.path))
    assert not (tmp_path / "tok").exists()
