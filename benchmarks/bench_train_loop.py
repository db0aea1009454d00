"""Training-loop throughput: tokenizing in the step vs in the DataLoader workers, side by side in one run.

Both loops train `examples/train.py`'s ``TinyActionPolicy`` (its own ``loss``: forward, backward, AdamW step)
on batches of the same `MixtureDataModule` (same mixture, seed and worker count). ``in-step`` serves raw
chunks and the model normalizes and encodes them in its step, on the main process; ``workers`` uses
``tokenize=True``, so the DataLoader workers add ``action_tokens`` and the step only embeds them. Printed
per batch size: steps/s, and the main process's time inside ``TinyActionPolicy.tokenize`` per step (target:
about zero for ``workers``).

Usage::

    python benchmarks/bench_train_loop.py                         # batch 32 and 256, 2 workers
    python benchmarks/bench_train_loop.py --steps 10 --batch-sizes 32 --workers 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from train import TinyActionPolicy

from fasttok_plugin.codec import FastTokenizer
from fasttok_plugin.lightning import MixtureDataModule
from fasttok_plugin.normalize import Normalize
from fasttok_plugin.testing import make_example_mixture


def fit_tokenizer(mixture: Path, chunk_size: int, max_action_dim: int) -> tuple[FastTokenizer, Normalize]:
    """A tokenizer fit on the mixture's normalized chunks (what the callback would fit)."""
    dm = MixtureDataModule(mixture, chunk_size=chunk_size, max_action_dim=max_action_dim)
    dm.setup("fit")
    normalize = Normalize(dm.norm_heads)
    chunks = [
        normalize(torch.from_numpy(b.actions), torch.from_numpy(b.head_index.astype(np.int64))).numpy()
        for b in dm.chunk_sampler.sample(2000, seed=0)
    ]
    return FastTokenizer.fit(np.concatenate(chunks), vocab_size=512), normalize


def run(mode: str, args: argparse.Namespace, batch_size: int, mixture: Path, fitted: Any) -> dict[str, float]:
    """Train ``args.steps`` timed steps (after ``args.warmup``) and return steps/s and tokenizing time."""
    tokenizer, normalize = fitted
    dm = MixtureDataModule(
        mixture,
        chunk_size=args.chunk_size,
        max_action_dim=args.max_action_dim,
        batch_size=batch_size,
        batches_per_epoch=args.warmup + args.steps,
        round_chunks=max(4096, 4 * batch_size),
        num_workers=args.workers,
        tokenize=mode == "workers",
        max_action_tokens=args.max_action_tokens,
        seed=1,
    )
    dm.setup("fit")
    dm.set_tokenization(tokenizer, normalize)
    torch.manual_seed(0)
    model = TinyActionPolicy(d_model=64, num_layers=2, num_heads=4, max_action_tokens=args.max_action_tokens)
    model.action_tokenizer, model.normalize = tokenizer, normalize
    model._build(int(tokenizer.vocab_size) + 2, int(normalize.num_heads))
    optimizer = model.configure_optimizers()
    spent = [0.0]
    real_tokenize = model.tokenize

    def timed_tokenize(batch: dict[str, torch.Tensor]) -> Any:
        start = time.perf_counter()
        try:
            return real_tokenize(batch)
        finally:
            spent[0] += time.perf_counter() - start

    model.tokenize = timed_tokenize  # type: ignore[method-assign]
    start = 0.0
    for step, batch in enumerate(dm.train_dataloader()):
        if step == args.warmup:  # worker start-up and the first rounds are not the steady state
            start, spent[0] = time.perf_counter(), 0.0
        loss, _ = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    elapsed = time.perf_counter() - start
    dm.teardown("fit")
    return {"steps_per_s": args.steps / elapsed, "tokenize_ms_per_step": 1000 * spent[0] / args.steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of both loops")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--max-action-dim", type=int, default=32)
    parser.add_argument("--max-action-tokens", type=int, default=128)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        mixture = make_example_mixture(Path(tmp) / "data", n_datasets=6, episode_lengths=(120, 160))
        fitted = fit_tokenizer(mixture, args.chunk_size, args.max_action_dim)
        for batch_size in args.batch_sizes:
            results[str(batch_size)] = {
                m: run(m, args, batch_size, mixture, fitted) for m in ("in-step", "workers")
            }
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{args.steps} timed steps, {args.workers} DataLoader workers, {args.threads} main torch thread(s)")
    print(f"{'batch':>6} {'loop':>8} {'steps/s':>9} {'main tokenize ms/step':>22}")
    for batch_size, loops in results.items():
        for mode, r in loops.items():
            print(f"{batch_size:>6} {mode:>8} {r['steps_per_s']:>9.2f} {r['tokenize_ms_per_step']:>22.2f}")
        speedup = loops["workers"]["steps_per_s"] / loops["in-step"]["steps_per_s"]
        print(f"{batch_size:>6} {'ratio':>8} {speedup:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
