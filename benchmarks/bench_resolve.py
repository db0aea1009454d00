"""Benchmark: resolve a 400-dataset mixture and build its norm heads (target: under 2 s in total).

Generates (once, cached in ``--workdir``) a mixture of tiny LeRobot datasets in both layouts with about
30 heads, some fallback entries (no robot_type) and some v2.1 datasets without ``meta/stats.json``
(their stats are aggregated from ``episodes_stats.jsonl``). Only metadata matters here, so datasets are
a few frames each; generation time is excluded. Then times ``load_mixture`` + ``resolve_mixture`` +
``build_norm_heads`` end to end, ``--repeat`` times, and prints total and per-dataset times.

Usage::

    python benchmarks/bench_resolve.py [--datasets 400] [--workdir DIR] [--repeat 3] [--regenerate]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.mixture import load_mixture
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.testing import write_lerobot_dataset, write_mixture

TARGET_SECONDS = 2.0
ROBOT_HEADS = 22  # tagged heads; fallback entries add one singleton head each
FALLBACK_EVERY = 50  # entry i with i % FALLBACK_EVERY == 7 has no robot_type
GENERATOR_VERSION = 1


def generate(workdir: Path, n_datasets: int, max_action_dim: int) -> Path:
    """Write ``n_datasets`` tiny datasets and ``mixture.json`` under ``workdir`` (cached by parameters)."""
    params = {"version": GENERATOR_VERSION, "datasets": n_datasets, "max_action_dim": max_action_dim}
    marker = workdir / "params.json"
    mixture = workdir / "mixture.json"
    if marker.exists() and mixture.exists() and json.loads(marker.read_text()) == params:
        return mixture
    started = time.perf_counter()
    entries: list[dict[str, Any]] = []
    for i in range(n_datasets):
        head = i % ROBOT_HEADS
        fallback = i % FALLBACK_EVERY == 7
        version = "v2.1" if i % 2 else "v3.0"
        name = f"ds_{i:04d}"
        write_lerobot_dataset(
            workdir / "datasets" / name,
            version=version,
            robot_type=None if fallback else f"robot{head % 11}",
            control_mode="ee_delta" if head < 11 else "joint_pos",
            action_dim=min(2 + head % 12, max_action_dim),
            episode_lengths=(4, 3),
            write_stats=not (version == "v2.1" and i % 3 == 0),
            seed=i,
        )
        entries.append({"repo_id": f"bench/{name}", "root": f"datasets/{name}"})
    # One fallback repo listed twice: the preflight's duplicate-fallback case.
    entries.append(dict(entries[7]))
    write_mixture(mixture, {"datasets": entries, "action_freq": 30.0})
    marker.write_text(json.dumps(params))
    print(f"generated {n_datasets} datasets in {time.perf_counter() - started:.1f} s (not timed)")
    return mixture


def run_once(mixture: Path, max_action_dim: int) -> tuple[dict[str, float], Any]:
    """Time the three steps of one resolution; return per-step seconds and the heads."""
    t0 = time.perf_counter()
    config = load_mixture(mixture)
    t1 = time.perf_counter()
    resolved = resolve_mixture(config)
    t2 = time.perf_counter()
    heads = build_norm_heads(resolved, max_action_dim)
    t3 = time.perf_counter()
    return {
        "load_mixture": t1 - t0,
        "resolve_mixture": t2 - t1,
        "build_norm_heads": t3 - t2,
        "total": t3 - t0,
    }, heads


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the numbers; exit 1 when the best total misses the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=400)
    parser.add_argument("--max-action-dim", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "fasttok_bench_resolve")
    parser.add_argument("--regenerate", action="store_true", help="rewrite the cached datasets")
    args = parser.parse_args(argv)

    if args.regenerate:
        (args.workdir / "params.json").unlink(missing_ok=True)
    mixture = generate(args.workdir, args.datasets, args.max_action_dim)

    runs = []
    heads = None
    for _ in range(max(1, args.repeat)):
        timing, heads = run_once(mixture, args.max_action_dim)
        runs.append(timing)
    assert heads is not None
    n_entries = len(heads.entry_names)
    print(
        f"mixture: {n_entries} entries, {len(heads.keys)} heads, {len(heads.fallback_entries)} fallback "
        f"entries, {len(heads.duplicate_fallbacks)} duplicate fallback repo ids, "
        f"{len(heads.errors())} errors, max_action_dim {heads.max_action_dim}"
    )
    for step in ("load_mixture", "resolve_mixture", "build_norm_heads", "total"):
        values = [r[step] for r in runs]
        print(
            f"{step:>17}: first {values[0] * 1e3:8.1f} ms  best {min(values) * 1e3:8.1f} ms  "
            f"median {statistics.median(values) * 1e3:8.1f} ms  "
            f"per dataset (best) {min(values) / n_entries * 1e3:6.2f} ms"
        )
    best = min(r["total"] for r in runs)
    verdict = "OK" if best < TARGET_SECONDS else "MISSED"
    print(f"target: total < {TARGET_SECONDS:.1f} s for {n_entries} entries -> best {best:.3f} s: {verdict}")
    return 0 if best < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
