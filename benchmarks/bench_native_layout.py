"""Held-out tokens per head, padded vs native layout, on the generated example mixture.

Three numbers per head, all on held-out chunks (mean / p99 tokens per chunk):

* **padded report**: what a ``layout="padded"`` fit reports (chunks zero-padded to ``--max-action-dim``).
* **padded at native**: that same padded tokenizer, loaded with
  ``AutoProcessor.from_pretrained(dir, trust_remote_code=True)`` and fed each held-out chunk at its
  native width, as LeRobot ``pi0_fast`` and openpi tokenize: what the policy really pays.
* **native report**: a ``layout="native"`` fit (one tokenizer over the mixed native widths), whose report
  measures every head at that width.

Usage::

    python benchmarks/bench_native_layout.py                    # ~15 s here
    python benchmarks/bench_native_layout.py --total-chunks 100000 --chunk-size 16 --max-action-dim 32
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-chunks", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--max-action-dim", type=int, default=32)
    parser.add_argument("--n-datasets", type=int, default=6)
    parser.add_argument("--episode-lengths", type=int, nargs="+", default=[200, 240, 280])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from transformers import AutoProcessor

    from fasttok_plugin.fit import FitSettings, fit_tokenizer
    from fasttok_plugin.testing import make_example_mixture

    args = _parse(argv)
    with tempfile.TemporaryDirectory() as tmp:
        mixture = make_example_mixture(
            Path(tmp) / "data", n_datasets=args.n_datasets, episode_lengths=args.episode_lengths
        )
        results, seconds = {}, {}
        for layout in ("padded", "native"):
            plans: list = []
            settings = FitSettings(
                chunk_size=args.chunk_size,
                max_action_dim=args.max_action_dim,
                total_chunks=args.total_chunks,
                layout=layout,
            )
            start = time.perf_counter()
            _, report = fit_tokenizer(mixture, settings, out_dir=Path(tmp) / layout, on_plan=plans.append)
            seconds[layout] = time.perf_counter() - start
            results[layout] = (report, plans[0])
        padded_report, padded_plan = results["padded"]
        native_report = results["native"][0]
        processor = AutoProcessor.from_pretrained(Path(tmp) / "padded", trust_remote_code=True)
        widths = np.array(padded_plan.sampler.heads.native_dims)
        at_native: dict[int, list[int]] = {}
        for batch in padded_plan.heldout_batches():  # the padded report's own held-out chunks
            for h in np.unique(batch.head_index):
                rows = batch.normalized[batch.head_index == h][:, :, : widths[h]]
                at_native.setdefault(int(h), []).extend(len(ids) for ids in processor(rows))
    print(
        f"example mixture ({args.n_datasets} entries), chunk {args.chunk_size}, max_action_dim "
        f"{args.max_action_dim}, {args.total_chunks} chunks; fit {seconds['padded']:.1f} s padded, "
        f"{seconds['native']:.1f} s native"
    )
    columns = ("padded report", "padded at native", "native report")
    print("| head | native dim | " + " | ".join(f"{c} mean / p99" for c in columns) + " |")
    print("|---|---:|---:|---:|---:|")
    for p, n in zip(padded_report.heads, native_report.heads, strict=True):
        got = np.array(at_native.get(p.head, [0]), dtype=np.float64)
        print(
            f"| {p.key} | {p.native_dim} | {p.token_lengths.mean:.1f} / {p.token_lengths.p99:.0f} | "
            f"{got.mean():.1f} / {np.percentile(got, 99):.0f} | "
            f"{n.token_lengths.mean:.1f} / {n.token_lengths.p99:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
