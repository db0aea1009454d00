"""Run by test_ddp.py: a 2-process CPU DDP fit with FastTokenizerCallback and an empty tokenizer folder.

Usage: python ddp_script.py MIXTURE TOKENIZER_DIR OUT_DIR

Lightning's "ddp" strategy re-runs this script for rank 1, so everything here runs once per rank. Rank 0's
fit appends a line to OUT_DIR/fits.log; every rank writes OUT_DIR/rank<r>.json with the tokenizer it loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_support import CHUNK_SIZE, MAX_ACTION_DIM, TokenModel, small_callback_kwargs

from fasttok_plugin.fit import pipeline as fitting
from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule


def main() -> None:
    mixture, tokenizer_dir, out_dir = (Path(a) for a in sys.argv[1:4])
    real_fit = fitting.fit_tokenizer

    def logged_fit(*args: Any, **kwargs: Any) -> Any:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else -1
        with open(out_dir / "fits.log", "a", encoding="utf-8") as handle:
            handle.write(f"rank={rank} pid={os.getpid()}\n")
        return real_fit(*args, **kwargs)

    fitting.fit_tokenizer = logged_fit  # the callback calls fitting.fit_tokenizer through the module

    class RecordingModel(TokenModel):
        def on_train_end(self) -> None:
            tokenizer = self.action_tokenizer
            chunk = np.linspace(-1, 1, CHUNK_SIZE * MAX_ACTION_DIM, dtype=np.float32).reshape(
                1, CHUNK_SIZE, -1
            )
            record = {
                "rank": self.global_rank,
                "world_size": self.trainer.world_size,
                "fingerprint": tokenizer.metadata["fit_fingerprint"],
                "tokenizer_sha256": hashlib.sha256(tokenizer.tokenizer.to_str().encode()).hexdigest(),
                "ids": tokenizer.encode(chunk)[0],
                "steps": self.steps,
                "global_step": self.trainer.global_step,
            }
            (out_dir / f"rank{self.global_rank}.json").write_text(json.dumps(record))

    callback = FastTokenizerCallback(tokenizer_dir, **small_callback_kwargs())
    datamodule = MixtureDataModule(
        mixture, chunk_size=CHUNK_SIZE, max_action_dim=MAX_ACTION_DIM, batch_size=4, round_chunks=16
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=3,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out_dir,
        callbacks=[callback],
    )
    trainer.fit(RecordingModel(), datamodule=datamodule)


if __name__ == "__main__":
    main()
