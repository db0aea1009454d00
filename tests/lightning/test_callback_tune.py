"""FastTokenizerCallback(tune_max_action_tokens=N): tunes once, reuses the folder, keeps order, rounding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lightning_support import CHUNK_SIZE, MAX_ACTION_DIM, TokenModel, make_trainer, small_callback_kwargs

from fasttok_plugin.codec import FastTokenizer
from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule, TokenizerMismatchError

BUDGET = 6


def _run(
    tmp_path: Path, mixture: Path, tokenizer_dir: Path, **kwargs
) -> tuple[FastTokenizerCallback, TokenModel]:
    callback = FastTokenizerCallback(tokenizer_dir, **small_callback_kwargs(**kwargs))
    model = TokenModel()
    datamodule = MixtureDataModule(
        mixture, chunk_size=CHUNK_SIZE, max_action_dim=MAX_ACTION_DIM, batch_size=4, round_chunks=16
    )
    make_trainer(tmp_path, [callback]).fit(model, datamodule=datamodule)
    return callback, model


@pytest.mark.parametrize("rounding", ["nearest", "token_aware"])
def test_the_callback_tunes_once_then_reuses_the_tuned_folder(tmp_path, make_mixture, spy, rounding) -> None:
    mixture = make_mixture(("arm", "base", "gripper")).path
    folder = tmp_path / "tokenizer"
    tuned = {"tune_max_action_tokens": BUDGET, "order": "dims", "rounding": rounding}
    first, model = _run(tmp_path, mixture, folder, **tuned)
    assert first.fitted is True
    record = json.loads((folder / "fit_report.json").read_text())["settings"]["tune"]
    tok = model.action_tokenizer
    assert isinstance(tok, FastTokenizer)
    assert (tok.scale, tok.order, tok.rounding) == (record["scale"], "dims", rounding)
    assert record["max_action_tokens"] == BUDGET
    assert record["scale"] < 10.0  # the start scale did not fit this budget
    chosen = [s for s in record["steps"] if s["scale"] == record["scale"]]
    assert chosen[0]["ok"]
    assert chosen[0]["tokens_quantile"] <= BUDGET
    assert first.fingerprint == tok.metadata["fit_fingerprint"]
    fits = spy.fits

    second, model2 = _run(tmp_path, mixture, folder, **tuned)
    assert second.fitted is False
    assert spy.fits == fits, "a folder tuned for the same budget must be loaded, not tuned again"
    assert second.fingerprint == first.fingerprint
    chunks = np.random.default_rng(0).uniform(-1, 1, (5, CHUNK_SIZE, MAX_ACTION_DIM)).astype(np.float32)
    assert model2.action_tokenizer.encode(chunks) == tok.encode(chunks)

    # Another budget is another tokenizer: the folder is not silently replaced.
    with pytest.raises(TokenizerMismatchError, match="holds a tokenizer fit for fingerprint"):
        _run(tmp_path, mixture, folder, **(tuned | {"tune_max_action_tokens": BUDGET + 20}))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tune_max_action_tokens": 0}, "tune_max_action_tokens must be a positive integer or None, got 0"),
        ({"tune_max_action_tokens": 8, "tune_quantile": 0.0}, r"tune_quantile must be in \(0, 1\], got 0.0"),
        ({"order": "spiral"}, "order must be one of 'time', 'dims', 'dc_dims'"),
        ({"order": "dims", "pipeline": "reference"}, "order 'dims' needs pipeline 'char'"),
        ({"rounding": "floor"}, "rounding must be one of 'nearest', 'token_aware', got 'floor'"),
        (
            {"rounding": "token_aware", "pipeline": "reference"},
            "rounding 'token_aware' needs pipeline 'char'",
        ),
    ],
)
def test_bad_tune_and_order_arguments_fail_in_init(tmp_path, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        FastTokenizerCallback(tmp_path / "tok", **kwargs)


def test_an_untuned_folder_with_the_start_fingerprint_is_not_reused_as_tuned(
    tmp_path, make_mixture, spy
) -> None:
    mixture = make_mixture(("arm", "base")).path
    folder = tmp_path / "tokenizer"
    plain, _ = _run(tmp_path, mixture, folder)  # a plain fit at the start scale (10): same fingerprint
    with pytest.raises(TokenizerMismatchError, match="was not tuned for tune_max_action_tokens=6"):
        _run(tmp_path, mixture, folder, tune_max_action_tokens=BUDGET)
    fits = spy.fits
    with pytest.warns(UserWarning, match="tuning"):
        tuned, model = _run(tmp_path, mixture, folder, tune_max_action_tokens=BUDGET, on_mismatch="refit")
    assert tuned.fitted is True
    assert spy.fits > fits
    assert model.action_tokenizer.scale < 10.0
    assert tuned.fingerprint != plain.fingerprint
