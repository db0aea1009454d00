"""FastTokenizerCallback: preflight -> fingerprint -> load or fit (atomically) -> attach; stages; resumes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from lightning_support import CHUNK_SIZE, MAX_ACTION_DIM, TokenModel, make_trainer, small_callback_kwargs
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader

from fasttok_plugin.codec import FastTokenizer
from fasttok_plugin.fit import pipeline as fitting
from fasttok_plugin.fitting import FitReport
from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.lightning import (
    ChunkStream,
    FastTokenizerCallback,
    MixtureDataModule,
    TokenizerMismatchError,
    TokenizerSource,
)
from fasttok_plugin.mixture import load_mixture
from fasttok_plugin.normalize import Normalize
from fasttok_plugin.preflight import PreflightError
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.sampling import ChunkSampler


def _datamodule(path: Path, **kwargs) -> MixtureDataModule:
    options = {
        "chunk_size": CHUNK_SIZE,
        "max_action_dim": MAX_ACTION_DIM,
        "batch_size": 4,
        "round_chunks": 16,
    }
    options.update(kwargs)
    return MixtureDataModule(path, **options)


def _run(tmp_path: Path, mixture_path: Path, tokenizer_dir: Path, *, model=None, spy=None, **callback_kwargs):
    callback = FastTokenizerCallback(tokenizer_dir, **small_callback_kwargs(**callback_kwargs))
    model = model if model is not None else TokenModel(spy)
    trainer = make_trainer(tmp_path, [callback])
    trainer.fit(model, datamodule=_datamodule(mixture_path))
    return callback, model, trainer


def _sidecar_fingerprint(tokenizer_dir: Path) -> str:
    return json.loads((tokenizer_dir / "fasttok.json").read_text())["metadata"]["fit_fingerprint"]


# -- load or fit ---------------------------------------------------------------------------------------------


def test_first_run_fits_and_second_run_loads_without_sampling_or_fitting(tmp_path, make_mixture, spy) -> None:
    mixture = make_mixture(("arm", "base"))
    tokenizer_dir = tmp_path / "tokenizer"

    first, model, _ = _run(tmp_path, mixture.path, tokenizer_dir, spy=spy)
    assert spy.fits == 1
    assert model.samples_before_fit_start > 0  # the fit sampled chunks before training started
    assert first.fitted is True
    assert isinstance(model.action_tokenizer, FastTokenizer)
    assert model.steps == 2
    assert (tokenizer_dir / "fit_report.json").is_file()
    assert _sidecar_fingerprint(tokenizer_dir) == first.fingerprint

    samples_before = spy.samples
    second, model2, _ = _run(tmp_path, mixture.path, tokenizer_dir, spy=spy)
    assert spy.fits == 1, "a matching tokenizer must be loaded, not refit"
    assert model2.samples_before_fit_start == samples_before, "loading must not sample a single chunk"
    assert second.fitted is False
    assert second.fingerprint == first.fingerprint
    # The very same tokenizer: identical ids on the same chunks.
    chunks = np.random.default_rng(0).uniform(-1, 1, (5, CHUNK_SIZE, MAX_ACTION_DIM)).astype(np.float32)
    assert model.action_tokenizer.encode(chunks) == model2.action_tokenizer.encode(chunks)
    assert second.fit_report is not None
    assert second.fit_report.fit_fingerprint == first.fingerprint


def test_a_new_training_seed_keeps_the_cached_tokenizer(tmp_path, make_mixture, spy) -> None:
    mixture = make_mixture(("arm", "base"))
    tokenizer_dir = tmp_path / "tokenizer"
    for seed in (0, 7):
        callback = FastTokenizerCallback(tokenizer_dir, **small_callback_kwargs())
        make_trainer(tmp_path, [callback]).fit(TokenModel(), datamodule=_datamodule(mixture.path, seed=seed))
    assert spy.fits == 1


def test_changed_mixture_is_a_mismatch_error_naming_both_fingerprints(tmp_path, make_mixture, spy) -> None:
    tokenizer_dir = tmp_path / "tokenizer"
    first, _, _ = _run(tmp_path, make_mixture(("arm", "base")).path, tokenizer_dir)
    changed = make_mixture(("arm", "gripper"), name="changed.json")
    model = TokenModel(spy)
    with pytest.raises(TokenizerMismatchError) as excinfo:
        _run(tmp_path, changed.path, tokenizer_dir, model=model)
    message = str(excinfo.value)
    assert first.fingerprint in message
    assert excinfo.value.found == first.fingerprint
    assert excinfo.value.expected in message
    assert excinfo.value.expected != first.fingerprint
    assert "norm heads differ" in message
    assert "on_mismatch='refit'" in message
    assert spy.fits == 1
    assert model.steps == 0
    assert _sidecar_fingerprint(tokenizer_dir) == first.fingerprint, (
        "the existing tokenizer is left untouched"
    )


def test_changed_settings_are_named_in_the_mismatch(tmp_path, make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    tokenizer_dir = tmp_path / "tokenizer"
    _run(tmp_path, mixture.path, tokenizer_dir)
    with pytest.raises(TokenizerMismatchError, match=r"same norm heads; changed: scale 10\.0 -> 5\.0"):
        _run(tmp_path, mixture.path, tokenizer_dir, scale=5.0)


def test_token_aware_rounding_is_fit_attached_and_another_rounding_is_a_mismatch(
    tmp_path, make_mixture, spy
) -> None:
    mixture = make_mixture(("arm", "base"))
    tokenizer_dir = tmp_path / "tokenizer"
    aware, model, _ = _run(tmp_path, mixture.path, tokenizer_dir, rounding="token_aware")
    tok = model.action_tokenizer
    assert (aware.fitted, tok.rounding) == (True, "token_aware")
    assert aware.fit_report is not None
    assert aware.fit_report.settings["rounding"] == "token_aware"
    # The attached tokenizer is the folder's: the same token-aware ids as the tokenizer loaded from it.
    chunks = np.random.default_rng(0).uniform(-1, 1, (16, CHUNK_SIZE, MAX_ACTION_DIM)).astype(np.float32)
    assert tok.encode(chunks) == FastTokenizer.load(tokenizer_dir).encode(chunks)
    fits = spy.fits
    with pytest.raises(TokenizerMismatchError, match="changed: rounding 'token_aware' -> 'nearest'"):
        _run(tmp_path, mixture.path, tokenizer_dir)
    assert spy.fits == fits
    with pytest.warns(UserWarning, match="refitting"):
        near, model2, _ = _run(tmp_path, mixture.path, tokenizer_dir, on_mismatch="refit")
    assert (near.fitted, model2.action_tokenizer.rounding) == (True, "nearest")
    assert near.fingerprint != aware.fingerprint
    # Same BPE, nearest rounding: never shorter than token-aware on the same chunks.
    lengths = model2.action_tokenizer.encode_padded(chunks).lengths
    assert (tok.encode_padded(chunks).lengths <= lengths).all()


def test_refit_replaces_a_tokenizer_fit_for_another_mixture(tmp_path, make_mixture, spy) -> None:
    tokenizer_dir = tmp_path / "tokenizer"
    first, _, _ = _run(tmp_path, make_mixture(("arm", "base")).path, tokenizer_dir)
    changed = make_mixture(("arm", "gripper"), name="changed.json")
    with pytest.warns(UserWarning, match="refitting"):
        second, model, _ = _run(tmp_path, changed.path, tokenizer_dir, on_mismatch="refit")
    assert spy.fits == 2
    assert second.fitted is True
    assert model.steps == 2
    assert second.fingerprint != first.fingerprint
    assert _sidecar_fingerprint(tokenizer_dir) == second.fingerprint
    assert FitReport.load(tokenizer_dir).fit_fingerprint == second.fingerprint
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tokenizer")], "no staging folder left"


def test_a_folder_that_is_not_a_tokenizer_is_never_overwritten(tmp_path, make_mixture, spy) -> None:
    tokenizer_dir = tmp_path / "tokenizer"
    tokenizer_dir.mkdir()
    (tokenizer_dir / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"not empty but holds no tokenizer \(found notes.txt\)"):
        _run(tmp_path, make_mixture(("arm",)).path, tokenizer_dir, on_mismatch="refit")
    assert spy.fits == 0
    assert (tokenizer_dir / "notes.txt").read_text() == "mine"


def test_an_existing_empty_folder_receives_the_fit(tmp_path, make_mixture, spy) -> None:
    tokenizer_dir = tmp_path / "tokenizer"
    tokenizer_dir.mkdir()
    callback, _, _ = _run(tmp_path, make_mixture(("arm",)).path, tokenizer_dir)
    assert spy.fits == 1
    assert _sidecar_fingerprint(tokenizer_dir) == callback.fingerprint


# -- preflight -----------------------------------------------------------------------------------------------


def test_preflight_error_stops_the_run_before_any_sampling_fit_or_step(tmp_path, make_mixture, spy) -> None:
    mixture = make_mixture(("arm", "untagged", "base"), require_non_empty_robot_type=True, max_action_dim=2)
    model = TokenModel(spy)
    callback = FastTokenizerCallback(tmp_path / "tokenizer", **small_callback_kwargs())
    trainer = make_trainer(tmp_path, [callback])
    with pytest.raises(PreflightError) as excinfo:
        trainer.fit(model, datamodule=MixtureDataModule(mixture.path, batch_size=4))
    message = str(excinfo.value)
    # Every finding is listed: the missing tag of "untagged", the arm's 3 dims overflowing max_action_dim=2.
    assert "test/untagged" in message
    assert "robot_type" in message
    assert "test/arm" in message
    assert "max_action_dim" in message
    assert len(excinfo.value.result.errors) >= 2
    assert spy.samples == 0
    assert spy.fits == 0
    assert model.steps == 0
    assert not (tmp_path / "tokenizer").exists()


def test_preflight_strict_turns_warnings_into_errors(tmp_path, make_mixture, spy) -> None:
    # The same untagged repo listed twice: a duplicate-fallback warning, an error under strict.
    mixture = make_mixture(("arm", "untagged", "untagged"))
    callback, _, _ = _run(tmp_path, mixture.path, tmp_path / "lenient")
    assert callback.fitted is True
    with pytest.raises(PreflightError, match=r"FT103.*test/untagged#1"):
        _run(tmp_path, mixture.path, tmp_path / "strict", strict=True)
    assert spy.fits == 1


# -- stages, attributes, protocol ---------------------------------------------------------------------------


def test_tokenizer_is_attached_for_fit_validate_test_and_predict(tmp_path, make_mixture, spy) -> None:
    mixture = make_mixture(("arm", "base"))
    callback = FastTokenizerCallback(
        tmp_path / "tokenizer", **small_callback_kwargs(normalize_attribute="normalize")
    )
    trainer = make_trainer(tmp_path, [callback], limit_test_batches=1, limit_predict_batches=1)
    datamodule = _datamodule(mixture.path, eval_batches=1)
    model = TokenModel(spy)
    trainer.fit(model, datamodule=datamodule)
    trainer.validate(model, datamodule=datamodule)
    trainer.test(model, datamodule=datamodule)
    predictions = trainer.predict(model, datamodule=datamodule)
    assert set(model.seen) == {"fit", "validate", "test", "predict"}
    seen = [pair for pairs in model.seen.values() for pair in pairs]
    assert all(tok is callback.tokenizer for tok, _ in seen)
    assert all(isinstance(norm, Normalize) for _, norm in seen)
    assert len(predictions) == 1
    assert torch.isfinite(predictions[0])
    assert spy.fits == 1, "setup is idempotent across stages"

    # A fresh module evaluated alone gets the tokenizer too.
    other = TokenModel()
    make_trainer(tmp_path, [callback], limit_test_batches=1).test(other, datamodule=datamodule)
    assert other.seen["test"][0][0] is callback.tokenizer


def test_normalize_attribute_is_built_from_the_datamodule_heads(tmp_path, make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    datamodule = _datamodule(mixture.path)
    callback = FastTokenizerCallback(
        tmp_path / "tokenizer",
        **small_callback_kwargs(normalize_attribute="normalize", normalization="mean_std"),
    )
    model = TokenModel()
    make_trainer(tmp_path, [callback]).fit(model, datamodule=datamodule)
    heads = datamodule.norm_heads
    assert model.normalize.fingerprint == heads.fingerprint
    assert model.normalize.mode.value == "mean_std"
    np.testing.assert_allclose(model.normalize.mean.numpy(), heads.mean.astype(np.float32))
    # Issue #10 changed this: the stats are derived, not trained state, so checkpoints do not hold them.
    assert not [key for key in model.state_dict() if key.startswith("normalize.")]
    # The module the model normalizes with is built from the very heads the tokenizer was fit on.
    assert callback.fit_report.norm_heads_fingerprint == model.normalize.fingerprint


class ProtocolOnlyDataModule(pl.LightningDataModule):
    """A user datamodule: builds the three protocol attributes itself and serves its own loader."""

    def __init__(self, mixture: Path) -> None:
        super().__init__()
        self.mixture = mixture
        self.norm_heads = None
        self.chunk_sampler = None
        self.resolved_mixture = None

    def setup(self, stage: str) -> None:
        if self.norm_heads is None:
            self.resolved_mixture = resolve_mixture(load_mixture(self.mixture))
            self.norm_heads = build_norm_heads(self.resolved_mixture, MAX_ACTION_DIM)
            self.chunk_sampler = ChunkSampler(self.resolved_mixture, self.norm_heads, chunk_size=CHUNK_SIZE)

    def train_dataloader(self) -> DataLoader:
        stream = ChunkStream(
            self.chunk_sampler, batch_size=4, num_batches=3, round_chunks=16, seed=1, stage="train"
        )
        return DataLoader(stream, batch_size=None)


def test_works_with_a_user_datamodule_that_only_implements_the_protocol(tmp_path, make_mixture, spy) -> None:
    mixture = make_mixture(("arm", "base"))
    datamodule = ProtocolOnlyDataModule(mixture.path)
    callback = FastTokenizerCallback(tmp_path / "tokenizer", **small_callback_kwargs())
    model = TokenModel()
    make_trainer(tmp_path, [callback]).fit(model, datamodule=datamodule)
    assert isinstance(datamodule, TokenizerSource)
    assert spy.fits == 1
    assert model.steps == 2
    assert model.action_tokenizer is callback.tokenizer
    # Same heads and settings as MixtureDataModule -> the same fingerprint: the cache is shared.
    again, _, _ = _run(tmp_path, mixture.path, tmp_path / "tokenizer")
    assert again.fitted is False
    assert again.fingerprint == callback.fingerprint


def test_clear_error_without_a_datamodule(tmp_path) -> None:
    callback = FastTokenizerCallback(tmp_path / "tokenizer", **small_callback_kwargs())
    model = TokenModel()
    loader = DataLoader([{"actions": torch.zeros(1, 2, 2)}], batch_size=None)
    with pytest.raises(MisconfigurationException, match="needs a datamodule"):
        make_trainer(tmp_path, [callback]).fit(model, train_dataloaders=loader)


def test_clear_error_when_the_datamodule_lacks_the_protocol(tmp_path) -> None:
    class Plain(pl.LightningDataModule):
        norm_heads = None

        def train_dataloader(self) -> DataLoader:
            return DataLoader([0])

    callback = FastTokenizerCallback(tmp_path / "tokenizer", **small_callback_kwargs())
    with pytest.raises(MisconfigurationException, match="Plain lacks chunk_sampler, resolved_mixture"):
        make_trainer(tmp_path, [callback]).fit(TokenModel(), datamodule=Plain())


# -- crash safety --------------------------------------------------------------------------------------------


def test_a_crash_while_saving_leaves_no_tokenizer_a_later_run_would_load(
    tmp_path, make_mixture, spy, monkeypatch
) -> None:
    mixture = make_mixture(("arm", "base"))
    tokenizer_dir = tmp_path / "tokenizer"
    from fasttok_plugin.codec import files

    real_fill = files.fill_directory

    def crashing_save(tok, directory):
        # Write part of the files, then die: what a kill -9 or a full disk mid-save looks like.
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "processor_config.json").write_text('{"scale": 10')
        raise OSError("simulated crash while saving")

    # The fit writes the tokenizer's files into its staging folder with fill_directory.
    monkeypatch.setattr("fasttok_plugin.codec.files.fill_directory", crashing_save)
    model = TokenModel()
    with pytest.raises(OSError, match="simulated crash"):
        _run(tmp_path, mixture.path, tokenizer_dir, model=model)
    assert spy.fits == 1
    assert model.steps == 0
    assert not tokenizer_dir.exists(), "nothing may appear under tokenizer_dir before the save completed"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging folders are cleaned up"

    monkeypatch.setattr("fasttok_plugin.codec.files.fill_directory", real_fill)
    callback, model, _ = _run(tmp_path, mixture.path, tokenizer_dir)
    assert spy.fits == 2
    assert callback.fitted is True
    assert model.steps == 2


def test_a_crash_during_a_refit_keeps_the_previous_tokenizer(tmp_path, make_mixture, monkeypatch) -> None:
    tokenizer_dir = tmp_path / "tokenizer"
    first, _, _ = _run(tmp_path, make_mixture(("arm", "base")).path, tokenizer_dir)

    def crashing_save(tok, directory):
        raise OSError("simulated crash while saving")

    monkeypatch.setattr("fasttok_plugin.codec.files.fill_directory", crashing_save)
    changed = make_mixture(("arm", "gripper"), name="changed.json")
    with pytest.warns(UserWarning, match="refitting"), pytest.raises(OSError, match="simulated crash"):
        _run(tmp_path, changed.path, tokenizer_dir, on_mismatch="refit")
    assert _sidecar_fingerprint(tokenizer_dir) == first.fingerprint
    assert FastTokenizer.load(tokenizer_dir).metadata["fit_fingerprint"] == first.fingerprint


def test_an_unreadable_tokenizer_is_reported_not_loaded(tmp_path, make_mixture) -> None:
    tokenizer_dir = tmp_path / "tokenizer"
    _run(tmp_path, make_mixture(("arm",)).path, tokenizer_dir)
    (tokenizer_dir / "tokenizer.json").write_text("{ truncated")
    with pytest.raises(TokenizerMismatchError, match="unreadable tokenizer"):
        _run(tmp_path, make_mixture(("arm",), name="same.json").path, tokenizer_dir)
    with pytest.warns(UserWarning, match="replacing the unreadable tokenizer"):
        callback, _, _ = _run(
            tmp_path, make_mixture(("arm",), name="same2.json").path, tokenizer_dir, on_mismatch="refit"
        )
    assert callback.fitted is True


# -- checkpoints and resume ----------------------------------------------------------------------------------


def _fit_with_checkpoint(tmp_path: Path, mixture_path: Path, tokenizer_dir: Path) -> tuple[Path, str]:
    callback = FastTokenizerCallback(tokenizer_dir, **small_callback_kwargs())
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = make_trainer(tmp_path, [callback, checkpoint], enable_checkpointing=True, max_steps=2)
    trainer.fit(TokenModel(), datamodule=_datamodule(mixture_path))
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["callbacks"]
    assert state[callback.state_key]["fingerprint"] == callback.fingerprint
    return tmp_path / "ckpt" / "last.ckpt", callback.fingerprint


def test_resuming_with_the_same_mixture_continues(tmp_path, make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    ckpt, _ = _fit_with_checkpoint(tmp_path, mixture.path, tmp_path / "tokenizer")
    callback = FastTokenizerCallback(tmp_path / "tokenizer", **small_callback_kwargs())
    model = TokenModel()
    trainer = make_trainer(tmp_path, [callback], max_steps=4)
    trainer.fit(model, datamodule=_datamodule(mixture.path), ckpt_path=ckpt)
    assert trainer.global_step == 4
    assert model.steps == 2


def test_resuming_after_the_mixture_changed_is_detected(tmp_path, make_mixture) -> None:
    ckpt, old = _fit_with_checkpoint(tmp_path, make_mixture(("arm", "base")).path, tmp_path / "tokenizer")
    changed = make_mixture(("arm", "gripper"), name="changed.json")
    # A new tokenizer folder, so only the checkpoint can reveal the change.
    callback = FastTokenizerCallback(tmp_path / "tokenizer2", **small_callback_kwargs())
    model = TokenModel()
    with pytest.raises(TokenizerMismatchError, match="checkpoint being resumed") as excinfo:
        make_trainer(tmp_path, [callback], max_steps=4).fit(
            model, datamodule=_datamodule(changed.path), ckpt_path=ckpt
        )
    assert excinfo.value.found == old
    assert "norm heads changed" in str(excinfo.value)
    assert model.steps == 0


def test_resuming_after_the_mixture_changed_warns_under_refit(tmp_path, make_mixture) -> None:
    ckpt, _ = _fit_with_checkpoint(tmp_path, make_mixture(("arm", "base")).path, tmp_path / "tokenizer")
    changed = make_mixture(("arm", "gripper"), name="changed.json")
    callback = FastTokenizerCallback(tmp_path / "tokenizer2", **small_callback_kwargs(on_mismatch="refit"))
    model = TokenModel()
    with pytest.warns(UserWarning, match="continuing because on_mismatch='refit'"):
        make_trainer(tmp_path, [callback], max_steps=4).fit(
            model, datamodule=_datamodule(changed.path), ckpt_path=ckpt
        )
    assert model.steps == 2


# -- logging -------------------------------------------------------------------------------------------------


def test_fit_report_is_logged_as_hyperparameters_and_metrics(tmp_path, make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    callback = FastTokenizerCallback(tmp_path / "tokenizer", **small_callback_kwargs(max_action_tokens=6))
    logger = CSVLogger(tmp_path / "logs", name="run")
    make_trainer(tmp_path, [callback], logger=logger).fit(TokenModel(), datamodule=_datamodule(mixture.path))
    hparams = (Path(logger.log_dir) / "hparams.yaml").read_text()
    assert callback.fingerprint in hparams
    assert "fasttok/max_action_tokens: 6" in hparams
    header, *rows = (Path(logger.log_dir) / "metrics.csv").read_text().splitlines()
    columns = header.split(",")
    for name in (
        "fasttok/tokens_mean",
        "fasttok/tokens_p99",
        "fasttok/truncation_rate",
        "fasttok/roundtrip_mse",
    ):
        assert name in columns
    assert "fasttok/head/arm__joint_pos/tokens_mean" in columns
    values = dict(zip(columns, rows[0].split(","), strict=True))
    report = callback.fit_report
    assert float(values["fasttok/tokens_mean"]) == pytest.approx(report.token_lengths.mean)
    assert float(values["fasttok/truncation_rate"]) == pytest.approx(report.truncation_rate)
    assert report.max_action_tokens == 6
    assert report.truncation_rate > 0


# -- arguments -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocab_size": 1}, "vocab_size must be an integer >= 2, got 1"),
        ({"scale": -1.0}, "scale must be a positive number, got -1.0"),
        ({"heldout_fraction": 1.5}, r"heldout_fraction must be in \(0, 1\), got 1.5"),
        ({"pipeline": "bytes"}, "pipeline must be 'char' or 'reference', got 'bytes'"),
        ({"on_mismatch": "ignore"}, "on_mismatch must be one of 'error', 'refit', got 'ignore'"),
        (
            {"attribute": "not an identifier"},
            "attribute must be a Python identifier, got 'not an identifier'",
        ),
        ({"normalize_attribute": "action_tokenizer"}, "must differ, both are 'action_tokenizer'"),
    ],
)
def test_rejects_bad_arguments_naming_the_value(tmp_path, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        FastTokenizerCallback(tmp_path / "tokenizer", **kwargs)


def test_rejects_an_empty_tokenizer_dir() -> None:
    with pytest.raises(ValueError, match="tokenizer_dir must be a folder path, got ''"):
        FastTokenizerCallback("")


def test_a_tokenizer_fit_from_the_mixture_file_is_reused_by_the_callback(tmp_path, make_mixture, spy) -> None:
    # `fasttok fit mixture.json --out DIR` and the callback compute the same fingerprint for the same
    # mixture and settings, so a tokenizer fit offline is picked up by training without a refit.
    mixture = make_mixture(("arm", "base"))
    tokenizer_dir = tmp_path / "offline"
    callback = FastTokenizerCallback(tokenizer_dir, **small_callback_kwargs())
    settings = dataclasses.replace(callback.settings, chunk_size=CHUNK_SIZE, max_action_dim=MAX_ACTION_DIM)
    fitting.fit_tokenizer(mixture.path, settings, out_dir=tokenizer_dir)  # what `fasttok fit` runs
    assert spy.fits == 1
    make_trainer(tmp_path, [callback]).fit(TokenModel(), datamodule=_datamodule(mixture.path))
    assert spy.fits == 1
    assert callback.fitted is False


# -- head grouping (issue #11) -------------------------------------------------------------------------------


def test_the_callback_fits_on_the_datamodules_grouping_and_reports_it(tmp_path, make_mixture) -> None:
    mixture = make_mixture(("arm", "base"), head_grouping="global")
    tokenizer_dir = tmp_path / "tokenizer"
    callback, _, _ = _run(tmp_path, mixture.path, tokenizer_dir)
    assert callback.fit_report is not None
    assert callback.fit_report.head_grouping == "global"
    assert [h.key for h in callback.fit_report.heads] == ["global"]
    assert (
        json.loads((tokenizer_dir / "fit_report.json").read_text())["settings"]["head_grouping"] == "global"
    )
    # An explicit matching argument is the same fit: the tokenizer is loaded, not refit.
    again, _, _ = _run(tmp_path, mixture.path, tokenizer_dir, head_grouping="global")
    assert again.fitted is False
    assert again.fingerprint == callback.fingerprint


def test_a_callback_grouping_other_than_the_datamodules_is_an_error_naming_the_fix(
    tmp_path, make_mixture
) -> None:
    from fasttok_plugin.errors import FitError

    mixture = make_mixture(("arm", "base"))
    with pytest.raises(
        FitError, match=r"head_grouping='dataset'.*grouped by 'robot_control'.*to the datamodule"
    ):
        _run(tmp_path, mixture.path, tmp_path / "tokenizer", head_grouping="dataset")
    assert not (tmp_path / "tokenizer" / "tokenizer.json").exists()


def test_the_callback_refuses_an_unknown_head_grouping(tmp_path) -> None:
    with pytest.raises(ValueError, match="head_grouping must be one of"):
        FastTokenizerCallback(tmp_path / "tok", head_grouping="robot")


# -- quantile modes and stats from the data (issue #11) ------------------------------------------------------


def test_a_quantile_run_normalizes_with_the_fits_data_stats_bit_for_bit(
    tmp_path, make_mixture, monkeypatch
) -> None:
    from fasttok_plugin.fit.source import heads_with_data_stats
    from fasttok_plugin.fitting import FitSettings

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))
    mixture = make_mixture(("arm", "base", "gripper"))
    tokenizer_dir = tmp_path / "offline"
    # What `fasttok fit --normalization quantile10` runs; the callback must then load it, not refit.
    kwargs = small_callback_kwargs(normalization="quantile10")
    settings = FitSettings(chunk_size=CHUNK_SIZE, max_action_dim=MAX_ACTION_DIM, **kwargs)
    _, report = fitting.fit_tokenizer(mixture.path, settings, out_dir=tokenizer_dir)
    assert report.settings["stats_source"] == "data"
    callback = FastTokenizerCallback(tokenizer_dir, normalize_attribute="normalize", **kwargs)
    datamodule = _datamodule(mixture.path, stats_source="data")
    model = TokenModel()
    make_trainer(tmp_path, [callback]).fit(model, datamodule=datamodule)
    assert callback.fitted is False  # same fingerprint as the offline fit
    assert callback.fit_report.norm_heads_fingerprint == datamodule.norm_heads.fingerprint
    assert datamodule.norm_heads.fingerprint == report.norm_heads_fingerprint
    resolved = resolve_mixture(mixture.path)
    fit_heads = heads_with_data_stats(resolved, build_norm_heads(resolved, MAX_ACTION_DIM))
    batch = next(iter(datamodule.train_dataloader()))
    actions, head = batch["actions"], batch["head_index"]
    trained = model.normalize(actions, head)
    np.testing.assert_array_equal(
        trained.numpy(), Normalize(fit_heads, mode="quantile10")(actions, head).numpy()
    )
    assert not torch.equal(trained, Normalize(fit_heads, mode="min_max")(actions, head))


def test_a_quantile_callback_on_stored_heads_names_the_datamodule_fix(tmp_path, make_mixture) -> None:
    from fasttok_plugin.errors import FitError

    mixture = make_mixture(("arm", "base"))
    with pytest.raises(
        FitError, match=r"needs stats_source='data'.*pass stats_source='data' to the datamodule"
    ):
        _run(tmp_path, mixture.path, tmp_path / "tokenizer", normalization="quantile")
    assert not (tmp_path / "tokenizer" / "tokenizer.json").exists()
