"""Held-out token lengths and peak memory against fit-corpus size (evidence for ``max_fit_chunks``).

Each size runs `fit_tokenizer` in its own subprocess (so ``ru_maxrss`` is that fit's peak) on the same
generated mixture (default: 400 datasets, several robots, both LeRobot versions), chunks of 30x32, with
the same number of held-out chunks. It prints, per fit-corpus size: held-out mean / p99 / max tokens per
chunk, truncation against ``max_action_tokens``, round-trip MSE, fit time and peak memory.

Usage::

    python benchmarks/bench_fit_scale.py                          # sizes 10k 30k 100k
    python benchmarks/bench_fit_scale.py --sizes 3000 10000 --datasets 50
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_one(args: argparse.Namespace) -> int:
    """Child: one fit, one JSON line on stdout."""
    from fasttok_plugin.fitting import FitSettings, fit_tokenizer

    size, heldout = args.one, args.heldout
    # Sample 15% more than fit + held-out so every dataset's fit-side pool exceeds its stratified quota
    # (the held-out side is a share of the starts, so its size per dataset varies a little).
    total = int((size + heldout) * 1.15)
    settings = FitSettings(
        chunk_size=args.chunk_size,
        max_action_dim=args.max_action_dim,
        vocab_size=args.vocab_size,
        pipeline=args.pipeline,
        total_chunks=total,
        max_fit_chunks=size,
        heldout_fraction=heldout / total,
        max_action_tokens=args.max_action_tokens,
        workers=args.workers,
    )
    start = time.perf_counter()
    _, report = fit_tokenizer(args.mixture, settings)
    lengths = report.token_lengths
    assert lengths is not None
    print(
        json.dumps(
            {
                "fit": report.fit,
                "heldout": report.heldout,
                "mean": lengths.mean,
                "p99": lengths.p99,
                "max": lengths.max,
                "truncation": report.truncation_rate,
                "mse": report.roundtrip_mse,
                "fit_s": report.timings.get("fit", 0.0),
                "total_s": time.perf_counter() - start,
                "peak_mb": report.peak_memory_mb,
                "heads": len(report.heads),
                "worst_head_p99": max(h.token_lengths.p99 for h in report.heads if h.token_lengths),
            }
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000], help="fit-corpus sizes"
    )
    parser.add_argument("--heldout", type=int, default=10_000, help="held-out chunks (same for every size)")
    parser.add_argument("--datasets", type=int, default=400)
    parser.add_argument("--episode-lengths", type=int, nargs="+", default=[300] * 4)
    parser.add_argument("--chunk-size", type=int, default=30)
    parser.add_argument("--max-action-dim", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--pipeline", choices=("char", "reference"), default="char")
    parser.add_argument("--max-action-tokens", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument(
        "--data", type=Path, help="reuse/create the generated mixture here (default: temp dir)"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode: fit one size
    parser.add_argument("--mixture", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        return run_one(args)

    from fasttok_plugin.testing import make_example_mixture

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or Path(tmp)
        mixture = root / "mixture.json"
        if not mixture.exists():
            t = time.perf_counter()
            make_example_mixture(root, n_datasets=args.datasets, episode_lengths=args.episode_lengths)
            print(f"generated {args.datasets} datasets in {time.perf_counter() - t:.1f} s ({root})")
        print(
            f"chunks {args.chunk_size}x{args.max_action_dim}, vocab {args.vocab_size}, "
            f"pipeline {args.pipeline}, "
            f"{args.heldout} held-out chunks, max_action_tokens {args.max_action_tokens}"
        )
        header = f"{'fit chunks':>10} {'mean':>7} {'p99':>6} {'max':>5} {'worst head p99':>15} {'trunc':>7} "
        header += f"{'mse':>9} {'fit s':>7} {'total s':>8} {'peak MB':>8}"
        print(header)
        passthrough = [
            "--heldout", str(args.heldout), "--chunk-size", str(args.chunk_size),
            "--max-action-dim", str(args.max_action_dim), "--vocab-size", str(args.vocab_size),
            "--pipeline", args.pipeline, "--max-action-tokens", str(args.max_action_tokens),
            "--workers", str(args.workers), "--mixture", str(mixture),
        ]  # fmt: skip
        for size in args.sizes:
            child = subprocess.run(
                [sys.executable, __file__, "--one", str(size), *passthrough], capture_output=True, text=True
            )
            if child.returncode != 0:
                print(f"{size:>10} FAILED (exit {child.returncode}): {child.stderr.strip()[-500:]}")
                continue
            r = json.loads(child.stdout.strip().splitlines()[-1])
            print(
                f"{r['fit']:>10} {r['mean']:>7.2f} {r['p99']:>6.1f} {r['max']:>5} "
                f"{r['worst_head_p99']:>15.1f} "
                f"{100 * r['truncation']:>6.2f}% {r['mse']:>9.2e} {r['fit_s']:>7.1f} {r['total_s']:>8.1f} "
                f"{r['peak_mb']:>8.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
