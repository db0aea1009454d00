"""Features combined through a real ``Trainer.fit``: convention x layout x order, transforms with tokens in
the DataLoader workers, the tuner with a native layout, a resumed run with a convention. Each checks the
product promise: what the fit normalized and measured is what the policy normalizes and tokenizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from lightning_support import CHUNK_SIZE, MAX_ACTION_DIM, TokenModel, make_trainer, small_callback_kwargs
from pytorch_lightning.callbacks import ModelCheckpoint

from fasttok_plugin.decode import ActionDecoder
from fasttok_plugin.errors import PreflightError
from fasttok_plugin.fit import FitSettings, fit_tokenizer
from fasttok_plugin.fit import pipeline as fitting
from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule
from fasttok_plugin.normalize import Normalize, Unnormalize
from fasttok_plugin.transforms import ActionTransform

ROBOT_CONTROL = "robot_control"
LEROBOT_PER_ROBOT = {"name": "lerobot", "head_grouping": ROBOT_CONTROL}
OPENPI_PER_ROBOT = {"name": "openpi", "head_grouping": ROBOT_CONTROL}
RELATIVE_SELECTED = ActionTransform(action_index=[0, 1], relative_dims=[0, 1])


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The `FitPlan` of every fit the callback runs (the real fit, with ``on_plan`` recording it)."""
    recorded: list[Any] = []
    real = fitting.fit_tokenizer

    def recording(*args: Any, **kwargs: Any) -> Any:
        kwargs["on_plan"] = recorded.append
        return real(*args, **kwargs)

    monkeypatch.setattr(fitting, "fit_tokenizer", recording)
    return recorded


def _datamodule(path: Path, **kwargs: Any) -> MixtureDataModule:
    options: dict[str, Any] = {
        "chunk_size": CHUNK_SIZE,
        "max_action_dim": MAX_ACTION_DIM,
        "batch_size": 4,
        "round_chunks": 16,
    }
    options.update({k: v for k, v in kwargs.items() if v is not None})
    return MixtureDataModule(path, **options)


def _train(
    tmp_path: Path, datamodule: MixtureDataModule, **callback: Any
) -> tuple[FastTokenizerCallback, Any]:
    cb = FastTokenizerCallback(
        tmp_path / "tok", normalize_attribute="normalize", **small_callback_kwargs(**callback)
    )
    model = TokenModel()
    make_trainer(tmp_path, [cb]).fit(model, datamodule=datamodule)
    return cb, model


def _widths(batch: dict[str, torch.Tensor]) -> np.ndarray | None:
    return batch["action_dim"].numpy() if "action_dim" in batch else None


def _assert_report_is_what_training_tokenizes(plan: Any, report: Any, tokenizer: Any, normalize: Any) -> None:
    """The held-out chunks the report measured, normalized by the policy's module and tokenized as the
    policy does (at each chunk's native width for ``native``), give the report's per-head token lengths."""
    lengths: dict[int, list[np.ndarray]] = {}
    for batch in plan.heldout_batches():
        with torch.no_grad():
            mine = normalize(torch.from_numpy(batch.raw), torch.from_numpy(batch.head_index)).numpy()
        np.testing.assert_array_equal(mine, batch.normalized)  # fit-time == train-time, bit for bit
        encoded = tokenizer.encode_padded(mine, action_dims=batch.action_dims)
        for h in np.unique(batch.head_index):
            lengths.setdefault(int(h), []).append(encoded.lengths[batch.head_index == h])
    assert lengths, "the fit evaluated held-out chunks"
    for h, head in enumerate(report.heads):
        counts = np.concatenate(lengths[h])
        stats = head.token_lengths
        assert (stats.count, stats.max) == (counts.size, int(counts.max()))
        assert stats.mean == pytest.approx(float(counts.mean()), abs=1e-12)


def _assert_folder_rebuilds_the_policy(
    tokenizer_dir: Path, normalize: Any, batch: dict[str, Any], *, tolerance: float = 0.35
) -> None:
    """``Normalize.from_tokenizer_dir`` is the attached module; ``ActionDecoder.from_tokenizer_dir`` decodes
    the batch's tokens to the tokenizer's decode, unnormalized with the training stats, at native width."""
    loaded = Normalize.from_tokenizer_dir(tokenizer_dir)
    for name in ("min", "max", "mean", "std"):
        assert torch.equal(getattr(loaded, name), getattr(normalize, name)), name
    assert (loaded.mode, loaded.formula, loaded.eps, loaded.zero_range) == (
        normalize.mode,
        normalize.formula,
        normalize.eps,
        normalize.zero_range,
    )
    actions, head = batch["actions"], batch["head_index"]
    with torch.no_grad():
        normalized = normalize(actions, head)
    assert torch.equal(loaded(actions, head), normalized)
    decoder = ActionDecoder.from_tokenizer_dir(tokenizer_dir)
    widths = _widths(batch)
    encoded = decoder.tokenizer.encode_padded(normalized.numpy(), action_dims=widths)
    # A zero state: the decoder adds the state back on relative dims (test_decode_relative.py checks
    # that with the dataset's state); with zeros it returns the unnormalized values compared here.
    zero_state = np.zeros((len(encoded.ids), 64), np.float32)
    out = decoder.decode(encoded.ids, head, lengths=encoded.lengths, strict=True, state=zero_state)
    dims = np.asarray(decoder.head_dims)[head.numpy()]
    assert out.valid.all()
    if widths is not None:
        np.testing.assert_array_equal(widths, dims)
    decoded = decoder.tokenizer.decode(encoded, action_dim=widths if widths is not None else None)
    padded = np.zeros(actions.shape, np.float32)
    padded[:, :, : decoded.actions.shape[2]] = decoded.actions
    unnormalize = Unnormalize(
        loaded_heads(tokenizer_dir),
        mode=normalize.mode,
        zero_range=normalize.zero_range,
        eps=normalize.eps,
        formula=normalize.formula,
        dtype=normalize.dtype_name,
    )
    with torch.no_grad():
        raw = unnormalize(torch.from_numpy(padded), head).numpy()
    raw = np.where(np.arange(raw.shape[2])[None, None, :] >= dims[:, None, None], np.float32(0.0), raw)
    np.testing.assert_array_equal(out.actions, raw)
    # The round trip lands near the raw actions: within the codec's error on the normalized chunk (it
    # grows as the scale shrinks: a tuned tokenizer quantizes more coarsely).
    with torch.no_grad():
        again = normalize(torch.from_numpy(out.actions), head).numpy()
    assert np.abs(again - normalized.numpy()).max() < tolerance


def loaded_heads(tokenizer_dir: Path) -> Any:
    from fasttok_plugin.norm_stats import read_norm_stats

    return read_norm_stats(tokenizer_dir).heads


COMBINATIONS = [
    # (convention, datamodule layout, flatten order, robots)
    (None, "native", "dc_dims", ("arm", "base", "gripper")),
    ("opentau", "padded", "time", ("arm", "base")),
    ("opentau", "native", "dims", ("arm", "base", "gripper")),
    (LEROBOT_PER_ROBOT, None, "dc_dims", ("arm", "base", "gripper")),  # the convention's native layout
    (LEROBOT_PER_ROBOT, "padded", "time", ("arm", "base")),
    ({"name": "lerobot", "head_grouping": "dataset"}, None, "time", ("arm", "base")),
    ("lerobot", "padded", "dims", ("arm", "base")),  # one global head over mixed widths: padded only
    ("openpi", None, "dc_dims", ("arm", "base")),
    (OPENPI_PER_ROBOT, "native", "dims", ("arm", "base", "gripper")),
]


@pytest.mark.parametrize(("convention", "layout", "order", "robots"), COMBINATIONS)
def test_fit_and_training_normalize_and_tokenize_alike(
    tmp_path: Path, make_mixture, plans, convention, layout, order, robots
) -> None:
    mixture = make_mixture(robots)
    datamodule = _datamodule(mixture.path, convention=convention, layout=layout)
    callback, model = _train(tmp_path, datamodule, order=order)
    tokenizer, report = model.action_tokenizer, callback.fit_report
    assert (tokenizer.order, tokenizer.layout, report.layout) == (order, datamodule.layout, datamodule.layout)
    if convention is not None:
        assert model.normalize.formula == datamodule.convention.formula
        assert report.head_grouping == datamodule.norm_heads.grouping
    assert len(plans) == 1
    _assert_report_is_what_training_tokenizes(plans[0], report, tokenizer, model.normalize)
    batch = next(iter(datamodule.train_dataloader()))
    assert torch.equal(
        plans[0].normalize(batch["actions"], batch["head_index"]),
        model.normalize(batch["actions"], batch["head_index"]),
    )
    _assert_folder_rebuilds_the_policy(tmp_path / "tok", model.normalize, batch)


@pytest.mark.parametrize(
    ("convention", "layout", "num_workers", "rounding"),
    [
        ("opentau", "padded", 1, "nearest"),
        # every head 2 wide after the selection: a native fit of one width
        (OPENPI_PER_ROBOT, "native", 1, "nearest"),
        (LEROBOT_PER_ROBOT, None, 0, "nearest"),
        # LeRobot's own global native head is valid once the selection gives every entry the same width.
        ("lerobot", None, 0, "nearest"),
        # token-aware ids in the worker process are the callback's tokenizer's own (the folder's rounding)
        (LEROBOT_PER_ROBOT, "native", 1, "token_aware"),
    ],
)
def test_transforms_with_a_convention_and_tokens_in_the_workers(
    tmp_path: Path, make_mixture, plans, convention, layout, num_workers, rounding
) -> None:
    mixture = make_mixture(("arm", "base", "gripper"))
    datamodule = _datamodule(
        mixture.path,
        convention=convention,
        layout=layout,
        transform=RELATIVE_SELECTED,
        tokenize=True,
        num_workers=num_workers,
    )
    callback, model = _train(tmp_path, datamodule, order="dc_dims", rounding=rounding)
    report = callback.fit_report
    assert model.action_tokenizer.rounding == rounding
    assert report.transforms == ("columns 0:2 | relative 0:2 - observation.state[chunk start]",) * 3
    assert report.stats_source == "data"
    assert set(datamodule.norm_heads.native_dims) == {2}
    _assert_report_is_what_training_tokenizes(plans[0], report, model.action_tokenizer, model.normalize)
    batch = next(iter(datamodule.train_dataloader()))  # tokenized in the worker process
    actions, head = batch["actions"], batch["head_index"]
    assert not actions[:, :, 2:].any()
    with torch.no_grad():
        normalized = model.normalize(actions, head)
    assert torch.equal(batch["normalized_actions"], normalized)
    widths = _widths(batch)
    encoded = model.action_tokenizer.encode_padded(
        normalized.numpy(), action_dims=widths, max_length=batch["action_tokens"].shape[1]
    )
    np.testing.assert_array_equal(batch["action_tokens"].numpy(), encoded.ids)
    np.testing.assert_array_equal(batch["action_token_lengths"].numpy(), encoded.lengths)
    _assert_folder_rebuilds_the_policy(tmp_path / "tok", model.normalize, batch)


@pytest.mark.parametrize(
    ("convention", "layout", "order"),
    [
        (None, None, "time"),
        (None, "native", "dc_dims"),
        ("opentau", "native", "dims"),
        (LEROBOT_PER_ROBOT, None, "time"),
        ("openpi", None, "dc_dims"),
    ],
)
def test_tuning_with_a_native_layout_and_an_order(
    tmp_path: Path, make_mixture, spy, convention, layout, order
) -> None:
    mixture = make_mixture(("arm", "base", "gripper"))
    budget = 6

    def run() -> tuple[FastTokenizerCallback, Any, MixtureDataModule]:
        datamodule = _datamodule(mixture.path, convention=convention, layout=layout)
        callback, model = _train(tmp_path, datamodule, order=order, tune_max_action_tokens=budget)
        return callback, model, datamodule

    first, model, datamodule = run()
    tokenizer = model.action_tokenizer
    tune = json.loads((tmp_path / "tok" / "fit_report.json").read_text())["settings"]["tune"]
    assert (tokenizer.layout, tokenizer.order, tokenizer.scale) == (datamodule.layout, order, tune["scale"])
    if datamodule.layout == "native":
        assert tokenizer.action_dims == (2, 3, 4)
    chosen = [step for step in tune["steps"] if step["scale"] == tune["scale"]]
    assert chosen[0]["ok"]
    assert chosen[0]["tokens_quantile"] <= budget
    # The walk measured the chunks the final fit measures (same corpus, normalized and laid out alike), so
    # the chosen step's lengths are the folder's report: no head is over the budget it was tuned for.
    lengths = first.fit_report.token_lengths
    assert (chosen[0]["max_tokens"], chosen[0]["mean_tokens"]) == (lengths.max, pytest.approx(lengths.mean))
    assert first.fit_report.layout == datamodule.layout
    batch = next(iter(datamodule.train_dataloader()))
    _assert_folder_rebuilds_the_policy(
        tmp_path / "tok", model.normalize, batch, tolerance=1.0 / tokenizer.scale
    )
    fits = spy.fits
    second, model2, _ = run()
    assert second.fitted is False
    assert spy.fits == fits
    assert second.fingerprint == first.fingerprint
    assert model2.action_tokenizer.scale == tokenizer.scale


@pytest.mark.parametrize(
    ("convention", "layout"), [("openpi", None), (LEROBOT_PER_ROBOT, None), ("opentau", "native")]
)
def test_a_resumed_run_with_a_convention_loads_the_same_tokenizer(
    tmp_path: Path, make_mixture, spy, convention, layout
) -> None:
    mixture = make_mixture(("arm", "base"))

    def run(max_steps: int, ckpt: Path | None = None) -> tuple[FastTokenizerCallback, TokenModel]:
        callback = FastTokenizerCallback(
            tmp_path / "tok", normalize_attribute="normalize", **small_callback_kwargs()
        )
        model = TokenModel()
        checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
        trainer = make_trainer(
            tmp_path, [callback, checkpoint], enable_checkpointing=True, max_steps=max_steps
        )
        datamodule = _datamodule(mixture.path, convention=convention, layout=layout)
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt)
        return callback, model

    first, trained = run(2)
    fits = spy.fits
    resumed, model = run(4, tmp_path / "ckpt" / "last.ckpt")
    assert first.fitted is True
    assert resumed.fitted is False
    assert spy.fits == fits, "a resumed run loads the tokenizer, never refits"
    assert resumed.fingerprint == first.fingerprint
    assert model.steps == 2  # steps 3 and 4 only: the run continued from the checkpoint
    assert model.normalize.formula == trained.normalize.formula != "fasttok"
    for name in ("min", "max", "mean", "std"):
        assert torch.equal(getattr(model.normalize, name), getattr(trained.normalize, name))


@pytest.mark.parametrize(("convention", "layout"), [("lerobot", None), ("openpi", "native")])
def test_a_native_global_head_over_mixed_widths_fails_before_sampling(
    tmp_path: Path, make_mixture, spy, convention, layout
) -> None:
    mixture = make_mixture(("arm", "base"))
    datamodule = _datamodule(mixture.path, convention=convention, layout=layout)
    with pytest.raises(
        PreflightError, match=r"FT612.*test/arm: 3, test/base: 2.*\"head_grouping\": \"robot_control\""
    ):
        _train(tmp_path, datamodule)
    assert spy.samples == 0
    assert not (tmp_path / "tok").exists()


@pytest.mark.parametrize(
    ("convention", "layout", "in_mixture"),
    [
        ("opentau", "native", False),
        (LEROBOT_PER_ROBOT, None, False),
        ("opentau", None, False),
        ("opentau", None, True),  # the mixture's transform keys instead of transform=
        (LEROBOT_PER_ROBOT, None, True),
    ],
)
def test_an_offline_fit_with_a_convention_and_a_transform_is_loaded_by_the_callback(
    tmp_path: Path, make_mixture, spy, convention, layout, in_mixture
) -> None:
    from fasttok_plugin.conventions import convention_from_dict

    keys = {"action_index": [0, 1], "relative_dims": [0, 1]} if in_mixture else {}
    mixture = make_mixture(("arm", "base", "gripper"), **keys)
    transform = None if in_mixture else RELATIVE_SELECTED
    settings = FitSettings(
        chunk_size=CHUNK_SIZE,
        max_action_dim=MAX_ACTION_DIM,
        convention=convention_from_dict(convention),
        transform=transform,
        layout=layout or "padded",
        order="dc_dims",
        **small_callback_kwargs(),
    )
    _, report = fit_tokenizer(mixture.path, settings, out_dir=tmp_path / "tok")
    assert report.stats_source == "data"  # transformed actions: stats from the data, under any convention
    assert report.transforms == ("columns 0:2 | relative 0:2 - observation.state[chunk start]",) * 3
    fits = spy.fits
    datamodule = _datamodule(mixture.path, convention=convention, layout=layout, transform=transform)
    callback, model = _train(tmp_path, datamodule, order="dc_dims")
    assert callback.fitted is False
    assert spy.fits == fits
    assert callback.fit_report.fit_fingerprint == report.fit_fingerprint
    batch = next(iter(datamodule.train_dataloader()))
    _assert_folder_rebuilds_the_policy(tmp_path / "tok", model.normalize, batch)


@pytest.mark.parametrize(
    ("convention", "layout"),
    [({"name": "lerobot", "head_grouping": "dataset"}, None), ("opentau", "native")],
)
def test_a_tuned_run_tokenizing_in_workers_resumes_without_retuning(
    tmp_path: Path, make_mixture, spy, convention, layout
) -> None:
    mixture = make_mixture(("arm", "base", "gripper"))

    def run(max_steps: int, ckpt: Path | None = None) -> tuple[FastTokenizerCallback, TokenModel, Any]:
        callback = FastTokenizerCallback(
            tmp_path / "tok",
            normalize_attribute="normalize",
            **small_callback_kwargs(tune_max_action_tokens=8),
        )
        model = TokenModel()
        checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
        trainer = make_trainer(
            tmp_path, [callback, checkpoint], enable_checkpointing=True, max_steps=max_steps
        )
        datamodule = _datamodule(
            mixture.path, convention=convention, layout=layout, tokenize=True, num_workers=1
        )
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt)
        return callback, model, datamodule

    first, model, datamodule = run(2)
    assert model.action_tokenizer.scale < 10.0  # tuned down from the start scale for the budget
    batch = next(iter(datamodule.train_dataloader()))  # tokenized in the worker with the tuned tokenizer
    with torch.no_grad():
        normalized = model.normalize(batch["actions"], batch["head_index"])
    encoded = model.action_tokenizer.encode_padded(
        normalized.numpy(), action_dims=_widths(batch), max_length=batch["action_tokens"].shape[1]
    )
    np.testing.assert_array_equal(batch["action_tokens"].numpy(), encoded.ids)
    fits = spy.fits
    resumed, model2, _ = run(4, tmp_path / "ckpt" / "last.ckpt")
    assert (resumed.fitted, spy.fits, resumed.fingerprint) == (False, fits, first.fingerprint)
    assert model2.action_tokenizer.scale == model.action_tokenizer.scale
    _assert_folder_rebuilds_the_policy(
        tmp_path / "tok", model2.normalize, batch, tolerance=1.0 / model.action_tokenizer.scale
    )
