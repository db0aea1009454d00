"""Transforms through Lightning: datamodule batches are transform(raw), and a real Trainer.fit with the
callback loads the offline fit and normalizes exactly as it did (issue #11, item 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lightning_support import CHUNK_SIZE, MAX_ACTION_DIM, TokenModel, make_trainer, small_callback_kwargs

from fasttok_plugin.errors import FitError
from fasttok_plugin.fit import FitSettings, fit_tokenizer
from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule
from fasttok_plugin.normalize import Normalize
from fasttok_plugin.transforms import ActionTransform

TRANSFORM = {"encoded_dims": "0:2", "relative_dims": [0, 1, 2], "relative_exclude": [2]}


def _datamodule(path: Path, **kwargs) -> MixtureDataModule:
    options = {
        "chunk_size": CHUNK_SIZE,
        "max_action_dim": MAX_ACTION_DIM,
        "batch_size": 4,
        "round_chunks": 16,
    }
    return MixtureDataModule(path, **{**options, **kwargs})


def _all_transformed_chunks(dataset) -> np.ndarray:
    """Every chunk the sampler can draw at native fps, minus the state at its start on dims 0, 1 (openpi
    DeltaActions, src/openpi/transforms.py: ``actions[..., :dims] -= state[..., :dims]`` where masked),
    then columns 0:2. The state is the test writer's ``observation.state`` (``0.5 * action + 0.1``)."""
    out = []
    for actions in dataset.actions:
        state = (actions * 0.5 + 0.1).astype(np.float32)
        for start in range(actions.shape[0] - CHUNK_SIZE + 1):
            chunk = actions[start : start + CHUNK_SIZE].copy()
            chunk[:, :2] -= state[start, :2]
            out.append(chunk[:, :2])
    return np.stack(out)


def test_datamodule_batches_are_the_transformed_raw_actions(tmp_path, make_mixture, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))
    mixture = make_mixture(("arm", "gripper"), **TRANSFORM)
    dm = _datamodule(mixture.path, batches_per_epoch=3)
    dm.setup("fit")
    assert dm.stats_source == "data"  # transforms default to stats from the data
    assert dm.norm_heads.native_dims == (2, 2)
    candidates = {i: _all_transformed_chunks(mixture.datasets[n]) for i, n in enumerate(("arm", "gripper"))}
    for batch in dm.train_dataloader():
        actions = batch["actions"].numpy()
        assert not actions[:, :, 2:].any()
        for chunk, dataset in zip(actions, batch["dataset_index"].tolist(), strict=True):
            exact = (candidates[dataset] == chunk[:, :2]).all(axis=(1, 2))
            assert exact.any(), "every batch chunk is one of the dataset's transformed chunks, bit for bit"


def test_trainer_fit_loads_the_offline_transformed_fit_and_normalizes_like_it(
    tmp_path, make_mixture, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))
    mixture = make_mixture(("arm", "gripper"), **TRANSFORM)
    tokenizer_dir = tmp_path / "offline"
    kwargs = small_callback_kwargs(normalization="quantile")
    settings = FitSettings(chunk_size=CHUNK_SIZE, max_action_dim=MAX_ACTION_DIM, **kwargs)
    _, report = fit_tokenizer(mixture.path, settings, out_dir=tokenizer_dir)
    callback = FastTokenizerCallback(tokenizer_dir, normalize_attribute="normalize", **kwargs)
    datamodule = _datamodule(mixture.path)
    model = TokenModel()
    make_trainer(tmp_path, [callback]).fit(model, datamodule=datamodule)
    assert callback.fitted is False  # the same fingerprint as the offline fit: the same transformed data
    assert datamodule.norm_heads.fingerprint == report.norm_heads_fingerprint
    heads = datamodule.norm_heads
    for h, name in enumerate(("arm", "gripper")):  # per-robot heads: q01/q99 of the transformed chunks
        values = _all_transformed_chunks(mixture.datasets[name]).reshape(-1, 2).astype(np.float64)
        np.testing.assert_array_equal(heads.q01[h, :2], np.quantile(values, 0.01, axis=0, method="linear"))
        np.testing.assert_array_equal(heads.q99[h, :2], np.quantile(values, 0.99, axis=0, method="linear"))
    batch = next(iter(datamodule.train_dataloader()))
    actions, head = batch["actions"], batch["head_index"]
    expected = Normalize(heads, mode="quantile")(actions, head)
    np.testing.assert_array_equal(model.normalize(actions, head).numpy(), expected.numpy())


def test_a_callback_transform_other_than_the_datamodules_names_the_fix(
    tmp_path, make_mixture, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))
    mixture = make_mixture(("arm",), **TRANSFORM)
    callback = FastTokenizerCallback(
        tmp_path / "tok", transform=ActionTransform(action_index=[0]), **small_callback_kwargs()
    )
    with pytest.raises(FitError, match=r"MixtureDataModule\(transform=\.\.\.\)"):
        make_trainer(tmp_path, [callback]).fit(TokenModel(), datamodule=_datamodule(mixture.path))
    assert not (tmp_path / "tok" / "tokenizer.json").exists()


def test_stored_stats_with_a_transform_are_refused_by_the_datamodule(tmp_path, make_mixture) -> None:
    with pytest.raises(ValueError, match=r"no stats\.json holds"):
        _datamodule(tmp_path, transform=ActionTransform(relative_dims=[0]), stats_source="stored")
    mixture = make_mixture(("arm",), **TRANSFORM)
    with pytest.raises(FitError, match="the mixture's transform keys"):
        _datamodule(mixture.path, stats_source="stored").setup("fit")


def test_the_callbacks_preflight_checks_the_datamodules_transform_not_the_mixture_keys(
    tmp_path, make_mixture, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))
    mixture = make_mixture(("arm",), encoded_dims="0:9")  # past arm's 3 dims: FT604 for the mixture's keys
    datamodule = _datamodule(mixture.path, transform=ActionTransform(action_index=[0, 1]))
    callback = FastTokenizerCallback(tmp_path / "tok", **small_callback_kwargs())
    make_trainer(tmp_path, [callback]).fit(TokenModel(), datamodule=datamodule)
    assert callback.fitted is True
    assert callback.fit_report.transforms == ("columns 0:2",)
    broken = _datamodule(mixture.path)
    callback = FastTokenizerCallback(tmp_path / "tok2", **small_callback_kwargs())
    with pytest.raises(Exception, match="FT604"):
        make_trainer(tmp_path, [callback]).fit(TokenModel(), datamodule=broken)
