"""The full fasttok demo: generate a mixture -> preflight it -> train twice with the callback -> print the fit
report.

    python examples/demo.py                      # work in runs/demo
    python examples/demo.py --workdir /tmp/demo --fresh

1. Writes a small multi-robot LeRobot mixture (v2.1 and v3.0 datasets, several heads, one fallback entry).
2. Runs the preflight on it (the same checks `fasttok-preflight` runs) and prints the findings.
3. Trains the tiny token policy of `examples/train.py` for a few steps with `FastTokenizerCallback`. The first
   run fits the tokenizer (global rank 0, written atomically); the second run finds a tokenizer with the same
   fingerprint in the folder and loads it without sampling or fitting.
4. Prints the fit report kept in the tokenizer folder.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/train.py sits next to this file

CHUNK_SIZE = 16
MAX_ACTION_DIM = 16
VOCAB_SIZE = 256
MAX_ACTION_TOKENS = 128


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir", type=Path, default=Path("runs/demo"), help="output folder (default: %(default)s)"
    )
    parser.add_argument("--steps", type=int, default=8, help="training steps per run (default: %(default)s)")
    parser.add_argument(
        "--n-datasets", type=int, default=6, help="datasets in the mixture (default: %(default)s)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="delete --workdir first (the first run then fits)"
    )
    return parser.parse_args(argv)


def train_once(workdir: Path, mixture: Path, steps: int, run: int) -> dict[str, Any]:
    """One training run with the callback; returns what happened."""
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger
    from train import TinyActionPolicy

    from fasttok_plugin.lightning import FastTokenizerCallback, MixtureDataModule

    pl.seed_everything(run, verbose=False)
    datamodule = MixtureDataModule(
        mixture,
        chunk_size=CHUNK_SIZE,
        max_action_dim=MAX_ACTION_DIM,
        batch_size=16,
        batches_per_epoch=steps,
        eval_batches=1,
        round_chunks=256,
    )
    callback = FastTokenizerCallback(
        workdir / "tokenizer",
        vocab_size=VOCAB_SIZE,
        total_chunks=1500,
        max_action_tokens=MAX_ACTION_TOKENS,
        normalize_attribute="normalize",
    )
    model = TinyActionPolicy(d_model=32, num_layers=1, num_heads=2, max_action_tokens=MAX_ACTION_TOKENS)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        logger=CSVLogger(workdir / "logs", name=f"run{run}"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    return {
        "fitted": callback.fitted,
        "fingerprint": callback.fingerprint,
        "seconds": time.perf_counter() - started,
        "loss": float(trainer.callback_metrics.get("train/loss", float("nan"))),
        "steps": trainer.global_step,
    }


def print_report(tokenizer_dir: Path) -> None:
    """Print the fit report kept next to the tokenizer (held-out token lengths, truncation, round-trip)."""
    from fasttok_plugin.fitting import FitReport

    report = FitReport.load(tokenizer_dir)
    lengths = report.token_lengths
    print(f"\n== 4. fit report ({tokenizer_dir / 'fit_report.json'}) ==")
    print(f"  fingerprint      {report.fit_fingerprint}")
    print(f"  chunks           {report.sampled} sampled, {report.fit} fit, {report.heldout} held out")
    print(f"  chunk            {report.chunk_size} steps x {report.action_dim} dims, {report.normalization}")
    if lengths is not None:
        print(
            f"  tokens / chunk   mean {lengths.mean:.1f}, p50 {lengths.p50:.0f}, p99 {lengths.p99:.0f}, "
            f"max {lengths.max} (held-out)"
        )
    print(
        f"  truncation rate  {_fmt(report.truncation_rate)} against "
        f"max_action_tokens={report.max_action_tokens}"
    )
    print(f"  round-trip MSE   {_fmt(report.roundtrip_mse)} (normalized units)")
    print(f"  compression      {_fmt(report.compression_ratio)} values per token")
    print(f"  {'head':<24} {'dim':>3} {'fit':>5} {'mean tok':>8} {'p99 tok':>7} {'trunc':>6} {'rt MSE':>9}")
    for head in report.heads:
        mean = head.token_lengths.mean if head.token_lengths else float("nan")
        p99 = head.token_lengths.p99 if head.token_lengths else float("nan")
        print(
            f"  {head.key:<24} {head.native_dim:>3} {head.fit:>5} {mean:>8.1f} {p99:>7.0f} "
            f"{_fmt(head.truncation_rate):>6} {_fmt(head.roundtrip_mse):>9}"
        )


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.steps < 1 or args.n_datasets < 1:
        print("error: --steps and --n-datasets must be at least 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import pytorch_lightning  # noqa: F401  (sets its logger to INFO on import; quiet it afterwards)

    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # keep the demo's own output readable
    for noise in (".*does not have many workers.*", ".*IterableDataset.*__len__.*", ".*LeafSpec.*"):
        warnings.filterwarnings("ignore", message=noise)
    workdir: Path = args.workdir
    if args.fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    from fasttok_plugin.preflight import run_preflight
    from fasttok_plugin.preflight.formats import render_text
    from fasttok_plugin.testing import make_example_mixture

    print(f"== 1. generate: {args.n_datasets} LeRobot datasets ==")
    mixture = make_example_mixture(workdir / "data", n_datasets=args.n_datasets, seed=0)
    print(f"  wrote {mixture}")

    print("\n== 2. preflight ==")
    result = run_preflight(mixture, max_action_dim=MAX_ACTION_DIM, chunk_size=CHUNK_SIZE)
    print(render_text([result]), end="")
    if not result.ok:
        print("preflight failed: fix the errors above first", file=sys.stderr)
        return 1

    outcomes = []
    for run in (1, 2):
        print(f"\n== 3.{run} train run {run}: {args.steps} steps with FastTokenizerCallback ==")
        outcome = train_once(workdir, mixture, args.steps, run)
        action = (
            "fit a new tokenizer"
            if outcome["fitted"]
            else "loaded the cached tokenizer (no sampling, no fit)"
        )
        print(
            f"  {action}: fingerprint {outcome['fingerprint'][:16]}..., {outcome['steps']} steps, "
            f"last loss {outcome['loss']:.3f}, {outcome['seconds']:.1f} s"
        )
        if run == 1 and not outcome["fitted"]:
            print(
                "  (the tokenizer folder already held a matching tokenizer from an earlier demo; --fresh "
                "refits)"
            )
        outcomes.append(outcome)
    if outcomes[0]["fingerprint"] != outcomes[1]["fingerprint"] or outcomes[1]["fitted"]:
        print("error: the second run should have loaded the first run's tokenizer", file=sys.stderr)
        return 1

    print_report(workdir / "tokenizer")
    print(f"\ntokenizer: {workdir / 'tokenizer'}  logs: {workdir / 'logs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
