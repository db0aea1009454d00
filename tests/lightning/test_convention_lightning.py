"""The datamodule and the callback take the convention (issue #12 item 1), with a real ``Trainer.fit``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning_support import CHUNK_SIZE, MAX_ACTION_DIM, TokenModel, make_trainer, small_callback_kwargs

from fasttok_plugin import fitting
from fasttok_plugin.conventions import resolve_convention
from fasttok_plugin.errors import FitError
from fasttok_plugin.fit.settings import FitSettings
from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule
from fasttok_plugin.normalize import Normalize


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))


def _datamodule(path: Path, **kwargs: object) -> MixtureDataModule:
    options: dict[str, object] = {
        "chunk_size": CHUNK_SIZE,
        "max_action_dim": MAX_ACTION_DIM,
        "batch_size": 4,
        "round_chunks": 16,
    }
    options.update(kwargs)
    return MixtureDataModule(path, **options)  # type: ignore[arg-type]


def test_the_callback_fits_with_the_datamodules_convention(tmp_path: Path, make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    datamodule = _datamodule(mixture.path, convention="openpi")
    callback = FastTokenizerCallback(
        tmp_path / "tok", normalize_attribute="normalize", **small_callback_kwargs()
    )
    model = TokenModel()
    make_trainer(tmp_path, [callback]).fit(model, datamodule=datamodule)
    # openpi: one global head with stats from the data, quantile normalization, openpi's formula.
    assert datamodule.norm_heads.grouping == "global"
    assert datamodule.stats_source == "data"
    assert callback.fit_report.normalization == "quantile"
    assert model.normalize.formula == "openpi"
    batch = next(iter(datamodule.train_dataloader()))
    actions, head = batch["actions"], batch["head_index"]
    heads = datamodule.norm_heads
    # openpi's formula (src/openpi/transforms.py, Normalize._normalize_quantile) in float64, padded after.
    x = actions.numpy().astype(np.float64)
    q01, q99 = heads.q01[head.numpy()][:, None], heads.q99[head.numpy()][:, None]
    expected = (x - q01) / (q99 - q01 + 1e-6) * 2.0 - 1.0
    dims = np.asarray(heads.native_dims)[head.numpy()]
    expected = np.where(np.arange(MAX_ACTION_DIM)[None, None, :] >= dims[:, None, None], 0.0, expected)
    np.testing.assert_array_equal(model.normalize(actions, head).numpy(), expected.astype(np.float32))
    # The offline fit with the same convention is the same tokenizer (same fingerprint): loaded, not refit.
    again = FastTokenizerCallback(tmp_path / "tok", **small_callback_kwargs())
    make_trainer(tmp_path, [again]).fit(
        TokenModel(), datamodule=_datamodule(mixture.path, convention="openpi")
    )
    assert again.fitted is False
    assert again.fingerprint == callback.fingerprint
    loaded = Normalize.from_tokenizer_dir(tmp_path / "tok")
    assert torch.equal(loaded(actions, head), model.normalize(actions, head))


def test_a_callback_convention_must_fit_the_datamodules_heads(tmp_path: Path, make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    callback = FastTokenizerCallback(tmp_path / "tok", convention="openpi", **small_callback_kwargs())
    with pytest.raises(
        FitError, match=r"needs stats_source='data'.*pass stats_source='data' to the datamodule"
    ):
        make_trainer(tmp_path, [callback]).fit(TokenModel(), datamodule=_datamodule(mixture.path))
    assert not (tmp_path / "tok").exists()


def test_the_callback_convention_matches_an_offline_fit(tmp_path: Path, make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    convention = resolve_convention("lerobot", layout="padded")
    settings = FitSettings(
        chunk_size=CHUNK_SIZE, max_action_dim=MAX_ACTION_DIM, convention=convention, **small_callback_kwargs()
    )
    _, report = fitting.fit_tokenizer(mixture.path, settings, out_dir=tmp_path / "tok")
    callback = FastTokenizerCallback(
        tmp_path / "tok", convention=convention.to_dict(), **small_callback_kwargs()
    )
    datamodule = _datamodule(mixture.path, head_grouping="global")
    make_trainer(tmp_path, [callback]).fit(TokenModel(), datamodule=datamodule)
    assert callback.fitted is False
    assert callback.fit_report.fit_fingerprint == report.fit_fingerprint


def test_the_datamodule_refuses_an_unknown_convention(tmp_path: Path, make_mixture) -> None:
    mixture = make_mixture(("arm",))
    with pytest.raises(ValueError, match="MixtureDataModule: unknown convention 'pi0'"):
        _datamodule(mixture.path, convention="pi0")
