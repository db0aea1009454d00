"""Chunk sampling throughput: `ChunkSampler` vs the usual ``to_pylist()`` + per-episode ``interp1d`` code.

Both run in the same process on the same generated mixture (default: 400 datasets, several robots, both
LeRobot versions) and produce the same chunks, streamed (neither accumulates the whole corpus; every
``--check-every``-th chunk is kept to compare values): the baseline is given the starts our sampler drew,
reads
each data file with ``pq.read_table(...).to_pylist()``, builds one ``scipy.interpolate.interp1d`` per
episode and evaluates it per chunk, then zero-pads to ``max_action_dim``. The values are compared, then
chunks/s and the speed-up are printed (target: >= 10x).

Usage::

    python benchmarks/bench_sampler.py                      # 400 datasets, 278k chunks of 30x32
    python benchmarks/bench_sampler.py --datasets 50 --chunks 5000 --workers 2
    python benchmarks/bench_sampler.py --action-freq 12.5       # resample 30 Hz data (interpolation)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from scipy.interpolate import interp1d

from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.resolve import ResolvedMixture, resolve_mixture
from fasttok_plugin.sampling import ChunkSampler
from fasttok_plugin.testing import make_example_mixture, write_mixture


def ours(
    sampler: ChunkSampler, total: int, seed: int, keep_every: int
) -> tuple[float, float, dict[str, np.ndarray]]:
    """Stream every chunk; keep the keys of all and the values of every ``keep_every``-th (for checking)."""
    start, cpu = time.perf_counter(), time.process_time()
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    seen = 0
    for batch in sampler.sample(total, seed=seed):
        parts["dataset"].append(batch.dataset_index)
        parts["episode"].append(batch.episode_index)
        parts["start"].append(batch.start_frame)
        rows = np.arange(seen, seen + len(batch))
        parts["kept"].append(batch.actions[rows % keep_every == 0].copy())
        seen += len(batch)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return elapsed, cpu, {k: np.concatenate(v) for k, v in parts.items()}


def baseline(
    resolved: ResolvedMixture,
    chunk_size: int,
    width: int,
    dataset: np.ndarray,
    episode: np.ndarray,
    start_frame: np.ndarray,
    keep_every: int,
) -> tuple[float, float, np.ndarray]:
    """The straightforward implementation: Python rows, one interp1d per episode, one call per chunk.

    Produces the same chunks (given the same starts) and keeps the same subset for the value check.
    """
    t0, cpu = time.perf_counter(), time.process_time()
    wanted: dict[int, list[int]] = defaultdict(list)
    for i, d in enumerate(dataset.tolist()):
        wanted[d].append(i)
    kept: dict[int, np.ndarray] = {}
    freq_of = resolved.config.action_freq
    for entry in resolved.entries:
        rows_for_entry = wanted.get(entry.index)
        if not rows_for_entry:
            continue
        meta = entry.meta
        freq = freq_of or meta.fps
        episodes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for path in sorted({e.data_file for e in meta.episodes}):
            records = pq.read_table(path).to_pylist()
            by_episode: dict[int, list[dict]] = defaultdict(list)
            for record in records:
                by_episode[record["episode_index"]].append(record)
            for ep, frames in by_episode.items():
                ts = np.array([f["timestamp"] for f in frames], dtype=np.float64)
                acts = np.array([f[meta.action_key] for f in frames], dtype=np.float64)
                episodes[ep] = (ts, acts)
        interpolators = {
            ep: (
                ts,
                interp1d(ts, acts, axis=0, kind="linear", bounds_error=False, fill_value=(acts[0], acts[-1])),
            )
            for ep, (ts, acts) in episodes.items()
        }
        for i in rows_for_entry:
            ts, f = interpolators[int(episode[i])]
            times = np.minimum(ts[int(start_frame[i])] + np.arange(chunk_size) / freq, ts[-1])
            values = f(times)
            chunk = np.zeros((chunk_size, width), dtype=np.float32)
            chunk[:, : values.shape[1]] = values
            if i % keep_every == 0:
                kept[i] = chunk
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu
    return elapsed, cpu, np.stack([kept[i] for i in sorted(kept)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", type=int, default=400)
    parser.add_argument("--chunks", type=int, default=278_000, help="chunks to sample (the seed scale)")
    parser.add_argument("--chunk-size", type=int, default=30)
    parser.add_argument("--max-action-dim", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="sampler processes for the extra pooled run")
    parser.add_argument(
        "--episode-lengths", type=int, nargs="+", default=[250] * 6, help="frames per episode"
    )
    parser.add_argument(
        "--data", type=Path, help="reuse/create the generated mixture here (default: temp dir)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--action-freq", type=float, help="override the mixture's action_freq (default 30 Hz = native fps)"
    )
    parser.add_argument("--check-every", type=int, default=25, help="compare the values of every N-th chunk")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or Path(tmp)
        mixture = root / "mixture.json"
        if not mixture.exists():
            t = time.perf_counter()
            make_example_mixture(root, n_datasets=args.datasets, episode_lengths=args.episode_lengths)
            print(f"generated {args.datasets} datasets in {time.perf_counter() - t:.1f} s ({root})")
        if args.action_freq is not None:
            # Same datasets, another resampling rate (a fractional fps ratio exercises interpolation).
            document = json.loads(mixture.read_text())
            document["dataset_mixture"]["action_freq"] = args.action_freq
            mixture = write_mixture(root / f"mixture_{args.action_freq:g}hz.json", document)
        resolved = resolve_mixture(mixture)
        heads = build_norm_heads(resolved, args.max_action_dim)
        print(
            f"mixture: {len(resolved.entries)} datasets, {heads.num_heads} heads, "
            f"{sum(e.meta.total_frames for e in resolved.entries if e.meta)} frames; "
            f"{args.chunks} chunks of {args.chunk_size}x{args.max_action_dim} at "
            f"{resolved.config.action_freq} Hz"
        )
        sampler = ChunkSampler(resolved, heads, chunk_size=args.chunk_size, workers=0)
        # Warm-up: one chunk per dataset reads every file once; both timed runs then hit the page cache.
        ours(sampler, len(resolved.entries), args.seed + 1, args.check_every)
        t_ours, c_ours, got = ours(sampler, args.chunks, args.seed, args.check_every)
        t_base, c_base, expected = baseline(
            resolved,
            args.chunk_size,
            args.max_action_dim,
            got["dataset"],
            got["episode"],
            got["start"],
            args.check_every,
        )
        diff = float(np.abs(got["kept"] - expected).max())
        n = got["dataset"].shape[0]
        print(
            f"ChunkSampler (1 process):        {t_ours:8.3f} s wall {c_ours:8.3f} s CPU  "
            f"{n / t_ours:10,.0f} chunks/s"
        )
        print(
            f"baseline (to_pylist + interp1d): {t_base:8.3f} s wall {c_base:8.3f} s CPU  "
            f"{n / t_base:10,.0f} chunks/s"
        )
        print(f"max |ours - baseline| over {got['kept'].shape[0]} checked chunks = {diff:.2e}")
        ratio = t_base / t_ours
        print(
            f"speed-up: {ratio:.1f}x wall, {c_base / c_ours:.1f}x CPU (target >= 10x) "
            f"{'OK' if ratio >= 10 else 'BELOW TARGET'}"
        )
        if args.workers > 0:
            pooled = ChunkSampler(resolved, heads, chunk_size=args.chunk_size, workers=args.workers)
            t_pool, _, got_pool = ours(pooled, args.chunks, args.seed, args.check_every)
            same = np.array_equal(got_pool["kept"], got["kept"]) and np.array_equal(
                got_pool["start"], got["start"]
            )
            print(
                f"ChunkSampler ({args.workers} workers):       {t_pool:8.3f} s wall  "
                f"{n / t_pool:10,.0f} chunks/s "
                f"(identical to 1 process: {same})"
            )
        if diff > 1e-4:
            print("ERROR: the two implementations disagree", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
