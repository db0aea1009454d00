"""Stats of transformed actions: what relative actions cost over plain frames (issue #11, item 4).

`compute_head_stats` on one generated mixture, cache off, three ways:

* **frames**: no transform (every frame once);
* **select**: a column selection (every frame once, the selected columns);
* **relative**: relative actions (every chunk the sampler can draw, each of its ``--chunk-size`` steps
  minus the state at its start: ``valid starts x chunk_size`` values per dim, exact quantiles).

Printed per way: values pooled per dim, wall time, values/s, and the Python/numpy peak (tracemalloc)
above the frames' own size. Relative stats pool ~``chunk_size`` times more values with the same two-pass
accumulator, so their memory stays bounded while their time grows with the values.

Usage::

    python benchmarks/bench_relative_stats.py                       # 24 datasets x 4 x 400 frames, T=50
    python benchmarks/bench_relative_stats.py --datasets 100 --chunk-size 50
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.lerobot import clear_frames_cache
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.stats import compute_head_stats
from fasttok_plugin.testing import write_lerobot_dataset, write_mixture
from fasttok_plugin.transforms import ActionTransform


def _mixture(folder: Path, datasets: int, lengths: list[int], dim: int) -> Path:
    entries = []
    for i in range(datasets):
        robot = f"robot{i % 4}"
        write_lerobot_dataset(
            folder / f"d{i}",
            robot_type=robot,
            control_mode="pos",
            action_dim=dim,
            episode_lengths=lengths,
            seed=i,
        )
        entries.append({"repo_id": f"lab/d{i}", "root": f"d{i}"})
    return write_mixture(folder / "mixture.json", {"datasets": entries})


def _run(mixture: Path, width: int, chunk_size: int, transform: ActionTransform | None) -> dict[str, Any]:
    resolved = resolve_mixture(mixture)
    heads = build_norm_heads(resolved, width, stats_source="data")
    clear_frames_cache()
    tracemalloc.start()
    t0 = time.perf_counter()
    stats = compute_head_stats(resolved, heads, cache=False, transforms=transform, chunk_size=chunk_size)
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    values = int(stats.counts.sum())
    return {"values": values, "wall": wall, "rate": values / wall, "peak": peak}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", type=int, default=24)
    parser.add_argument("--episode-lengths", type=int, nargs="+", default=[400, 400, 400, 400])
    parser.add_argument("--action-dim", type=int, default=14)
    parser.add_argument("--max-action-dim", type=int, default=32)
    parser.add_argument("--chunk-size", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mixture = _mixture(Path(tmp), args.datasets, args.episode_lengths, args.action_dim)
        frames = args.datasets * sum(args.episode_lengths)
        print(
            f"{args.datasets} datasets, {frames} frames x {args.action_dim} dims, "
            f"chunk_size {args.chunk_size}"
        )
        ways = {
            "frames": None,
            "select": ActionTransform(action_index=f"0:{args.action_dim - 1}"),
            "relative": ActionTransform(
                relative_dims=f"0:{args.action_dim}", relative_exclude=[args.action_dim - 1]
            ),
        }
        _run(mixture, args.max_action_dim, args.chunk_size, None)  # warm-up: imports, page cache
        base = None
        for name, transform in ways.items():
            r = _run(mixture, args.max_action_dim, args.chunk_size, transform)
            base = base or r
            print(
                f"{name:9s} values {r['values']:>10d} ({r['values'] / frames:5.1f} x frames)  "
                f"wall {r['wall']:6.2f} s  "
                f"{r['rate'] / 1e6:6.2f} M values/s  tracemalloc peak {r['peak']:6.1f} MiB  "
                f"time x{r['wall'] / base['wall']:.1f}"
            )


if __name__ == "__main__":
    main()
