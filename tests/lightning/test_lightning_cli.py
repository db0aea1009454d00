"""LightningCLI: the callback and the datamodule configure from YAML (class_path / init_args)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lightning_support import CHUNK_SIZE, MAX_ACTION_DIM, TokenModel
from pytorch_lightning.cli import LightningCLI

from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_callback_and_datamodule_configure_from_class_path_yaml(tmp_path, make_mixture, spy) -> None:
    mixture = make_mixture(("arm", "base"))
    config = {
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_steps": 2,
            "limit_val_batches": 0,
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "default_root_dir": str(tmp_path),
            "callbacks": [
                {
                    "class_path": "fasttok_plugin.lightning.FastTokenizerCallback",
                    "init_args": {
                        "tokenizer_dir": str(tmp_path / "tokenizer"),
                        "vocab_size": 256,
                        "total_chunks": 200,
                        "max_action_tokens": 64,
                        "on_mismatch": "refit",
                        "normalize_attribute": "normalize",
                    },
                }
            ],
        },
        "data": {
            "class_path": "fasttok_plugin.lightning.MixtureDataModule",
            "init_args": {
                "mixture": str(mixture.path),
                "chunk_size": CHUNK_SIZE,
                "max_action_dim": MAX_ACTION_DIM,
                "batch_size": 4,
                "round_chunks": 16,
                "seed": 3,
            },
        },
    }
    path = tmp_path / "input" / "config.yaml"  # SaveConfigCallback writes its copy to default_root_dir
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(config))

    cli = LightningCLI(
        TokenModel, MixtureDataModule, subclass_mode_data=True, run=False, args=["--config", str(path)]
    )
    callbacks = [c for c in cli.trainer.callbacks if isinstance(c, FastTokenizerCallback)]
    assert len(callbacks) == 1
    callback = callbacks[0]
    assert callback.tokenizer_dir == tmp_path / "tokenizer"
    assert callback.on_mismatch == "refit"
    assert callback.settings.vocab_size == 256
    assert callback.settings.total_chunks == 200
    assert callback.normalize_attribute == "normalize"
    assert isinstance(cli.datamodule, MixtureDataModule)
    assert cli.datamodule.seed == 3

    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert spy.fits == 1
    assert cli.model.steps == 2
    assert cli.model.action_tokenizer is callback.tokenizer


def test_bad_callback_value_in_yaml_is_rejected_by_the_parser(tmp_path, capsys) -> None:
    config = {
        "trainer": {
            "callbacks": [
                {
                    "class_path": "fasttok_plugin.lightning.FastTokenizerCallback",
                    "init_args": {"tokenizer_dir": "tok", "on_mismatch": "sometimes"},
                }
            ]
        },
        "data": {
            "class_path": "fasttok_plugin.lightning.MixtureDataModule",
            "init_args": {"mixture": "m.json"},
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit):
        LightningCLI(
            TokenModel, MixtureDataModule, subclass_mode_data=True, run=False, args=["--config", str(path)]
        )
    error = capsys.readouterr().err
    assert "on_mismatch" in error
    assert "sometimes" in error


def test_example_train_script_runs_with_the_shipped_config(tmp_path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    generate = subprocess.run(
        [sys.executable, str(EXAMPLES / "make_example_mixture.py"), "--out", "runs/demo/data"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generate.returncode == 0, generate.stderr
    assert (tmp_path / "runs/demo/data/mixture.json").is_file()
    train = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "train.py"),
            "fit",
            "--config",
            str(EXAMPLES / "config.yaml"),
            "--trainer.max_steps",
            "2",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_model_summary",
            "false",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert train.returncode == 0, train.stderr[-4000:]
    tokenizer_dir = tmp_path / "runs/demo/tokenizer"
    assert (tokenizer_dir / "fasttok.json").is_file()
    assert (tokenizer_dir / "fit_report.json").is_file()
    assert "max_steps=2` reached" in train.stderr + train.stdout


def test_make_example_mixture_rejects_bad_arguments_without_a_traceback(tmp_path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "make_example_mixture.py"),
            "--out",
            str(tmp_path),
            "--n-datasets",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert "--n-datasets must be at least 1, got 0" in completed.stderr
    assert "Traceback" not in completed.stderr
