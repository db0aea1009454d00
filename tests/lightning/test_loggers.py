"""What loggers and the console get from the callback in a real ``Trainer.fit``: merged hyperparameters,
metric names every logger accepts, the printed summary, and progress bars that follow the trainer."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightning_support import CHUNK_SIZE, MAX_ACTION_DIM, TokenModel, make_trainer, small_callback_kwargs
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule
from fasttok_plugin.lightning._metrics import head_metric_names

# mlflow/utils/validation.py (mlflow/mlflow): _VALID_PARAM_AND_METRIC_NAMES = re.compile(r"^[/\w.\- ]*$"),
# and the path rules of _validate_metric_name: no leading or trailing "/", no "//", no "." or ".." part.
MLFLOW_NAME = re.compile(r"^[/\w.\- ]*$")
# pytorch_lightning/loggers/mlflow.py: MLFlowLogger.log_metrics deletes re.sub("[^a-zA-Z0-9_/. -]+", "", k).
LIGHTNING_MLFLOW_DROPS = re.compile(r"[^a-zA-Z0-9_/. -]+")
# docs.wandb.ai "Metric naming constraints": /^[_a-zA-Z][_a-zA-Z0-9]*$/ (per "/"-separated section).
WANDB_PART = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
# tensorboard/summary: tags are cleaned with re.sub(r"[^-/\w\.]", "_", name).
TENSORBOARD_UNSAFE = re.compile(r"[^-/\w\.]")


def _assert_safe_everywhere(name: str) -> None:
    assert MLFLOW_NAME.match(name), name
    assert not name.startswith("/"), name
    assert not name.endswith("/"), name
    assert "//" not in name, name
    assert not ({".", ".."} & set(name.split("/"))), name
    assert LIGHTNING_MLFLOW_DROPS.sub("", name) == name, name
    assert all(WANDB_PART.match(part) for part in name.split("/")), name
    assert not TENSORBOARD_UNSAFE.search(name), name
    assert not set(',"\n') & set(name), name  # a CSV column header


class HparamModel(TokenModel):
    """TokenModel with hyperparameters of its own, one of them named like the callback's."""

    def __init__(self, lr: float = 0.05, hidden: int = 8, **extra: Any) -> None:
        super().__init__()
        self.save_hyperparameters()


def _datamodule(path: Path) -> MixtureDataModule:
    return MixtureDataModule(
        path, chunk_size=CHUNK_SIZE, max_action_dim=MAX_ACTION_DIM, batch_size=4, round_chunks=16
    )


def test_head_metric_names_are_safe_and_unique() -> None:
    keys = ["panda::joint_pos", "panda__joint_pos", "PANDA::joint_pos", "7dof arm::eef-delta", "", "a.b::c"]
    names = head_metric_names(keys)
    assert names == [
        "panda__joint_pos",
        "panda__joint_pos_1",
        "PANDA__joint_pos_2",  # W&B compares names case-insensitively
        "_7dof_arm__eef_delta",
        "head_4",
        "a_b__c",
    ]
    for name in names:
        _assert_safe_everywhere(f"fasttok/head/{name}/tokens_mean")


def test_tensorboard_hparams_hold_the_models_own_and_metric_names_are_safe(
    tmp_path: Path, make_mixture, caplog: pytest.LogCaptureFixture
) -> None:
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    mixture = make_mixture(("arm", "base"))
    callback = FastTokenizerCallback(tmp_path / "tokenizer", **small_callback_kwargs())
    tensorboard = TensorBoardLogger(tmp_path / "tb", name="run")
    csv = CSVLogger(tmp_path / "csv", name="run")
    model = HparamModel(lr=0.05, hidden=8, **{"fasttok/num_heads": 99})
    with caplog.at_level(logging.WARNING, logger="fasttok_plugin"):
        make_trainer(tmp_path, [callback], logger=[tensorboard, csv]).fit(
            model, datamodule=_datamodule(mixture.path)
        )

    # What TensorBoard's HParams tab reads: the run's first session_start_info (the event reader keeps a
    # tag's metadata from its first occurrence).
    (events,) = Path(tensorboard.log_dir).glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    content = accumulator.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    shown = metadata.parse_session_start_info_plugin_data(content).hparams
    assert shown["lr"].number_value == pytest.approx(0.05)
    assert shown["hidden"].number_value == 8
    assert shown["fasttok/fingerprint"].string_value == callback.fingerprint
    assert shown["fasttok/num_heads"].number_value == 99  # the model's own value is never replaced
    assert "'fasttok/num_heads' keeps the run's own value 99; the tokenizer's 2 is not logged" in caplog.text

    scalar_tags = set(accumulator.PluginTagToContent("scalars"))
    assert "fasttok/head/arm__joint_pos/tokens_mean" in scalar_tags
    assert "fasttok/head/base__velocity/truncation_rate" in scalar_tags
    for tag in scalar_tags:
        _assert_safe_everywhere(tag)

    hparams = yaml.safe_load((Path(csv.log_dir) / "hparams.yaml").read_text())
    assert hparams["lr"] == 0.05
    assert hparams["fasttok/num_heads"] == 99
    assert hparams["fasttok/vocab_size"] == 256
    header = (Path(csv.log_dir) / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "fasttok/head/arm__joint_pos/tokens_p99" in header
    for column in header:
        _assert_safe_everywhere(column)


def test_summary_table_is_printed_after_a_fit_and_not_after_a_cached_load(
    tmp_path: Path, make_mixture, capsys: pytest.CaptureFixture[str]
) -> None:
    mixture = make_mixture(("arm", "base"))
    callback = FastTokenizerCallback(tmp_path / "tokenizer", **small_callback_kwargs())
    make_trainer(tmp_path, [callback]).fit(TokenModel(), datamodule=_datamodule(mixture.path))
    out = capsys.readouterr().out
    assert "FAST tokenizer fit report" in out
    assert f"Fingerprint fit {callback.fingerprint[:16]}" in out
    assert "Heads (2), token lengths on held-out chunks" in out
    assert re.search(r"^\s+0\s+arm::joint_pos\s+3\s", out, re.MULTILINE)
    assert "Datasets (" not in out  # compact: the per-dataset table stays in `fasttok inspect`

    again = FastTokenizerCallback(tmp_path / "tokenizer", **small_callback_kwargs())
    make_trainer(tmp_path, [again]).fit(TokenModel(), datamodule=_datamodule(mixture.path))
    assert again.fitted is False
    assert "FAST tokenizer fit report" not in capsys.readouterr().out


def test_progress_false_prints_no_summary(tmp_path: Path, make_mixture, capsys) -> None:
    mixture = make_mixture(("arm",))
    callback = FastTokenizerCallback(tmp_path / "tokenizer", progress=False, **small_callback_kwargs())
    make_trainer(tmp_path, [callback]).fit(TokenModel(), datamodule=_datamodule(mixture.path))
    assert callback.fitted is True
    captured = capsys.readouterr()
    assert "FAST tokenizer fit report" not in captured.out
    assert "sample + normalize" not in captured.err


@pytest.mark.parametrize(
    ("tty", "trainer_bars", "progress", "expected"),
    [
        (True, True, None, True),
        (True, False, None, False),  # Trainer(enable_progress_bar=False)
        (False, True, None, False),  # stderr is a log file
        (False, False, True, True),  # asked for explicitly
        (True, True, False, False),
    ],
)
def test_bars_follow_the_trainer_and_the_terminal(
    tmp_path: Path,
    make_mixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tty: bool,
    trainer_bars: bool,
    progress: bool | None,
    expected: bool,
) -> None:
    mixture = make_mixture(("arm",))
    callback = FastTokenizerCallback(tmp_path / "tokenizer", progress=progress, **small_callback_kwargs())
    trainer = make_trainer(tmp_path, [callback], enable_progress_bar=trainer_bars)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    trainer.fit(TokenModel(), datamodule=_datamodule(mixture.path))
    err = capsys.readouterr().err
    assert ("sample + normalize" in err) is expected
    # The BPE phase shows its elapsed time, not a 0/1 step bar.
    assert bool(re.search(r"BPE fit: \d\d:\d\d elapsed", err)) is expected
    assert not re.search(r"BPE fit:[^\r\n]*\d/1 ", err)
