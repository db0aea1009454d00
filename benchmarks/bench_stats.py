"""Stats from the data: `compute_head_stats` vs reading the same frames the way OpenTau's sampler does.

Both run on the same generated mixture (several robots, LeRobot v2.1 and v3.0, zero-padded to
``--max-action-dim``), each in its own child process so each peak RSS is its own:

* **ours**: `compute_head_stats` (two streamed passes per head through `read_frames`, exact quantiles in
  memory independent of the frame count), cache off.
* **baseline**: per data file ``pq.read_table``, per episode ``filter(episode_index == e).to_pylist()`` and
  ``np.array`` of the action lists (OpenTau's per-episode reading), every head's frames kept, then numpy
  ``min/max/mean/std/quantile`` over them (the exact, in-memory way).

Printed: frames/s, wall and CPU time, peak RSS (and the RSS after imports), the Arrow pool's peak, the
speed-up as a ratio, and whether both give the same values (min/max/quantiles bit for bit, mean/std 1e-12).

Usage::

    python benchmarks/bench_stats.py                                   # ~40 s here: 120 datasets, 216k frames
    python benchmarks/bench_stats.py --seed-scale --skip-baseline      # 400 datasets, ~8M frames x 32 dims
    python benchmarks/bench_stats.py --datasets 400 --episode-lengths 2000 2000 2000 2000 --data /tmp/big
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

SEED_SCALE_LENGTHS = [2000] * 10  # 400 datasets x 20k frames = 8M frames


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _setup(mixture: Path, width: int) -> tuple[Any, Any, float]:
    from fasttok_plugin.heads import build_norm_heads
    from fasttok_plugin.resolve import resolve_mixture

    resolved = resolve_mixture(mixture)
    heads = build_norm_heads(resolved, width)
    return resolved, heads, _peak_rss_mb()


def run_ours(mixture: Path, width: int, traced: bool = False) -> dict[str, Any]:
    """`compute_head_stats` with the cache off (``traced``: under tracemalloc, for its Python/numpy peak)."""
    import tracemalloc

    import pyarrow as pa

    from fasttok_plugin.stats import compute_head_stats

    resolved, heads, rss0 = _setup(mixture, width)
    if traced:
        tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    stats = compute_head_stats(resolved, heads, cache=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20 if traced else None
    values = {
        n: getattr(stats, n).tolist()
        for n in ("min", "max", "mean", "std", "q01", "q10", "q50", "q90", "q99")
    }
    return {
        "wall": wall,
        "cpu": cpu,
        "frames": int(stats.counts.sum()),
        "rss_after_imports": rss0,
        "peak_rss": _peak_rss_mb(),
        "arrow_peak": pa.default_memory_pool().max_memory() / 2**20,
        "tracemalloc_peak": traced_peak,
        "values": values,
    }


def run_baseline(mixture: Path, width: int) -> dict[str, Any]:
    """Per-episode ``to_pylist()`` reading and numpy stats over every head's frames held in memory."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    resolved, heads, rss0 = _setup(mixture, width)
    t0, c0 = time.perf_counter(), time.process_time()
    per_head: dict[int, list[np.ndarray]] = defaultdict(list)
    for position, entry in enumerate(resolved.entries):
        head = heads.dataset_to_head[position]
        if head < 0:
            continue
        meta = entry.meta
        by_file: dict[Path, list[int]] = defaultdict(list)
        for episode in meta.episodes:
            by_file[episode.data_file].append(int(episode.index))
        for path, episodes in by_file.items():
            table = pq.read_table(path, columns=["episode_index", meta.action_key])
            for ep in episodes:
                rows = table.filter(pc.equal(table["episode_index"], ep)).to_pylist()
                actions = np.array([row[meta.action_key] for row in rows], dtype=np.float32)
                padded = np.zeros((actions.shape[0], width), dtype=np.float32)
                padded[:, : actions.shape[1]] = actions
                per_head[head].append(padded)
    read_wall = time.perf_counter() - t0
    values: dict[str, list[Any]] = defaultdict(list)
    frames = 0
    for head in range(heads.num_heads):
        x = np.concatenate(per_head[head]).astype(np.float64)
        x = x[np.isfinite(x).all(axis=1)]
        frames += x.shape[0]
        for name, v in zip(
            ("min", "max", "mean", "std"), (x.min(0), x.max(0), x.mean(0), x.std(0)), strict=True
        ):
            values[name].append(v.tolist())
        quantiles = np.quantile(x, [0.01, 0.10, 0.50, 0.90, 0.99], axis=0)
        for name, q in zip(("q01", "q10", "q50", "q90", "q99"), quantiles, strict=True):
            values[name].append(q.tolist())
    return {
        "wall": time.perf_counter() - t0,
        "read_wall": read_wall,
        "cpu": time.process_time() - c0,
        "frames": frames,
        "rss_after_imports": rss0,
        "peak_rss": _peak_rss_mb(),
        "arrow_peak": pa.default_memory_pool().max_memory() / 2**20,
        "values": dict(values),
    }


def _child(kind: str, mixture: Path, width: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--mixture",
            str(mixture),
            "--max-action-dim",
            str(width),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _line(name: str, r: dict[str, Any]) -> str:
    return (
        f"{name:<34} {r['wall']:8.2f} s wall {r['cpu']:8.2f} s CPU "
        f"{r['frames'] / r['wall']:12,.0f} frames/s  "
        f"peak RSS {r['peak_rss']:7.0f} MiB (after imports {r['rss_after_imports']:.0f}), "
        f"Arrow peak {r['arrow_peak']:.0f} MiB"
    )


def _same(ours: dict[str, Any], base: dict[str, Any]) -> bool:
    ok = True
    for name, got in ours.items():
        a, b = np.array(got, dtype=np.float64), np.array(base[name], dtype=np.float64)
        ok &= (
            bool(np.array_equal(a, b))
            if name not in ("mean", "std")
            else bool(np.allclose(a, b, rtol=1e-12, atol=1e-12 * max(1.0, float(np.abs(b).max()))))
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", type=int, default=120)
    parser.add_argument(
        "--episode-lengths", type=int, nargs="+", default=[300] * 6, help="frames per episode"
    )
    parser.add_argument(
        "--seed-scale", action="store_true", help="400 datasets of 10 x 2000 frames (~8M frames)"
    )
    parser.add_argument("--max-action-dim", type=int, default=32)
    parser.add_argument(
        "--data", type=Path, help="reuse/create the generated mixture here (default: temp dir)"
    )
    parser.add_argument("--skip-baseline", action="store_true", help="only time compute_head_stats")
    parser.add_argument("--child", choices=("ours", "traced", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--mixture", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.child == "baseline":
            result = run_baseline(args.mixture, args.max_action_dim)
        else:
            result = run_ours(args.mixture, args.max_action_dim, traced=args.child == "traced")
        print(json.dumps(result))
        return 0
    if args.seed_scale:
        args.datasets, args.episode_lengths = 400, SEED_SCALE_LENGTHS
    from fasttok_plugin.testing import make_example_mixture

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or Path(tmp)
        mixture = root / "mixture.json"
        if not mixture.exists():
            t = time.perf_counter()
            make_example_mixture(root, n_datasets=args.datasets, episode_lengths=args.episode_lengths)
            print(f"generated {args.datasets} datasets in {time.perf_counter() - t:.1f} s ({root})")
        _child("ours", mixture, args.max_action_dim)  # warm-up: both timed runs read from the page cache
        ours = _child("ours", mixture, args.max_action_dim)
        print(f"mixture: {args.datasets} datasets, {ours['frames']:,} frames x {args.max_action_dim} dims")
        print(_line("compute_head_stats (exact, 2 pass)", ours))
        traced = _child("traced", mixture, args.max_action_dim)
        print(
            f"compute_head_stats under tracemalloc: peak {traced['tracemalloc_peak']:.1f} MiB "
            "(Python + numpy allocations)"
        )
        if args.skip_baseline:
            return 0
        base = _child("baseline", mixture, args.max_action_dim)
        print(_line("baseline (to_pylist per episode)", base) + f"; reading alone {base['read_wall']:.2f} s")
        same = _same(ours["values"], base["values"])
        print(
            f"speed-up: {base['wall'] / ours['wall']:.1f}x wall, {base['cpu'] / ours['cpu']:.1f}x CPU; "
            f"peak RSS above imports: ours {ours['peak_rss'] - ours['rss_after_imports']:.0f} MiB, baseline "
            f"{base['peak_rss'] - base['rss_after_imports']:.0f} MiB; same values: {same}"
        )
        if not same:
            print("ERROR: the two computations disagree", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
