"""Run by test_ddp.py: a 2-process CPU DDP fit with FastTokenizerCallback.

Usage: python ddp_script.py MIXTURE TOKENIZER_DIR OUT_DIR [PG_TIMEOUT_S FIT_DELAY_S]

Lightning's "ddp" strategy re-runs this script for rank 1, so everything here runs once per rank. Rank 0's
fit appends a line to OUT_DIR/fits.log; every rank writes OUT_DIR/rank<r>.json with the tokenizer it loaded,
or OUT_DIR/error<r>.json with the error its callback setup raised. ``{rank}`` in MIXTURE or TOKENIZER_DIR
gives each rank its own file or folder (a node-local disk). PG_TIMEOUT_S sets the job's collective timeout
during the callback's setup and FIT_DELAY_S makes rank 0's fit that much slower. The environment variable
FASTTOK_TEST_TUNE=N runs the callback with ``tune_max_action_tokens=N, order="dims"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_support import CHUNK_SIZE, MAX_ACTION_DIM, TokenModel, small_callback_kwargs
from torch.distributed.distributed_c10d import _set_pg_timeout

from fasttok_plugin.fit import pipeline as fitting
from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule


def main() -> None:
    out_dir = Path(sys.argv[3])
    # Lightning's launcher sets LOCAL_RANK for the processes it starts (rank 0 is this script itself).
    this_rank = int(os.environ.get("LOCAL_RANK", "0"))
    mixture = Path(sys.argv[1].format(rank=this_rank))
    tokenizer_dir = Path(sys.argv[2].format(rank=this_rank))
    pg_timeout, fit_delay = (float(a) for a in sys.argv[4:6]) if len(sys.argv) > 4 else (None, 0.0)
    real_fit = fitting.fit_tokenizer

    def logged_fit(*args: Any, **kwargs: Any) -> Any:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else -1
        with open(out_dir / "fits.log", "a", encoding="utf-8") as handle:
            handle.write(f"rank={rank} pid={os.getpid()}\n")
        time.sleep(fit_delay)  # a fit longer than the process-group timeout
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
                "scale": tokenizer.scale,
                "global_step": self.trainer.global_step,
            }
            (out_dir / f"rank{self.global_rank}.json").write_text(json.dumps(record))

    class RecordingCallback(FastTokenizerCallback):
        def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
            if pg_timeout:
                # The job's collectives time out after pg_timeout while the callback sets up (set here,
                # not at init, so that a slow start of rank 1 does not trip the rendezvous).
                _set_pg_timeout(timedelta(seconds=pg_timeout))
            try:
                super().setup(trainer, pl_module, stage)
                if pg_timeout:
                    _set_pg_timeout(timedelta(minutes=30))
            except Exception as exc:
                record = {"rank": trainer.global_rank, "type": type(exc).__name__, "message": str(exc)}
                (out_dir / f"error{trainer.global_rank}.json").write_text(json.dumps(record))
                raise

    tune = os.environ.get("FASTTOK_TEST_TUNE")
    extra = {"tune_max_action_tokens": int(tune), "order": "dims"} if tune else {}
    callback = RecordingCallback(tokenizer_dir, **small_callback_kwargs(**extra))
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
    # PyTorch's shutdown rule: without it gloo's worker threads can abort the process at interpreter exit
    # ("terminate called without an active exception", pytorch/pytorch#190489), a flaky -6 exit status.
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
