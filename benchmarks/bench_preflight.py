"""Benchmark: ``fasttok-preflight`` on a generated 400-dataset mixture, end to end (target: under 1 s).

Generates (once, cached in ``--workdir``; not timed) the example mixture of
:func:`fasttok_plugin.testing.make_example_mixture`: both LeRobot layouts, about 30 heads, fallback
entries, v2.1 datasets whose stats are aggregated from per-episode stats. Then runs the real console
script as a subprocess ``--repeat`` times, process start included, in every output format, and prints the
times next to baselines measured in the same run: a bare ``python -c pass`` start, the CLI's imports
alone, the in-process ``run_preflight`` call (so the split between interpreter start, imports and checking
is visible), and the CLI with ``--jobs 1``: metadata read one dataset after the other, as before the
thread pool (the "before" of the parallel reads, measured against "after" on the same files), each with
the datasets warm in the page cache and evicted from it (``posix_fadvise``; Linux).

Usage::

    python benchmarks/bench_preflight.py [--datasets 400] [--workdir DIR] [--repeat 5] [--regenerate]
                                         [--layout folders|hub]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fasttok_plugin.defaults import DEFAULT_METADATA_THREADS
from fasttok_plugin.testing import make_example_mixture

TARGET_SECONDS = 1.0
GENERATOR_VERSION = 1


def generate(workdir: Path, n_datasets: int, layout: str) -> Path:
    """Write the mixture and its datasets under ``workdir`` unless a matching copy is cached."""
    params = {"version": GENERATOR_VERSION, "datasets": n_datasets, "layout": layout}
    marker = workdir / "params.json"
    mixture = workdir / "mixture.json"
    if marker.exists() and mixture.exists() and json.loads(marker.read_text()) == params:
        return mixture
    if workdir.exists():
        shutil.rmtree(workdir)
    started = time.perf_counter()
    mixture = make_example_mixture(workdir, n_datasets=n_datasets)
    if layout == "hub":
        to_hub_snapshots(mixture, workdir / "lerobot_home" / "hub")
    marker.write_text(json.dumps(params))
    print(f"generated {n_datasets} datasets ({layout}) in {time.perf_counter() - started:.1f} s (not timed)")
    return mixture


def to_hub_snapshots(mixture: Path, hub: Path) -> None:
    """Move every dataset into LeRobot 0.6's snapshot cache and drop the entries' roots.

    ``hub/datasets--<org>--<name>/snapshots/<commit>/...`` are symlinks into ``blobs/``, and ``refs/main``
    names the commit, as ``snapshot_download(cache_dir=...)`` leaves them; the preflight then finds each
    dataset by ``repo_id`` (fasttok_plugin.lerobot.locations).
    """
    document = json.loads(mixture.read_text())
    body = document.get("dataset_mixture", document)
    for entry in body["datasets"]:
        source = mixture.parent / entry.pop("root")
        repo = hub / ("datasets--" + entry["repo_id"].replace("/", "--"))
        commit = hashlib.sha1(entry["repo_id"].encode()).hexdigest()
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            if not blob.exists():
                shutil.move(file, blob)
            link = repo / "snapshots" / commit / file.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        shutil.rmtree(source)
    mixture.write_text(json.dumps(document, indent=2))


def evict_from_page_cache(folder: Path) -> None:
    """Drop ``folder``'s files from the page cache (``POSIX_FADV_DONTNEED``; no root needed)."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "fasttok-preflight"
    return [str(script)] if script.exists() else [sys.executable, "-m", "fasttok_plugin.preflight.cli"]


def bytecode_env(workdir: Path) -> dict[str, str]:
    """The environment with bytecode caching on, cached under ``workdir`` (never in the source tree).

    An installed package has its ``.pyc`` files (pip compiles them); with ``PYTHONDONTWRITEBYTECODE`` set,
    as on some CI machines, every run would recompile the package and time the compiler instead.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def time_process(command: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    env = bytecode_env(cwd)
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    return time.perf_counter() - started, proc


def describe(name: str, values: list[float]) -> str:
    median = statistics.median(values)
    return f"{name:>28}: first {values[0]:6.3f} s  best {min(values):6.3f} s  median {median:6.3f} s"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the numbers; exit 1 when the median end-to-end time misses the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "fasttok_bench_preflight"
    )
    parser.add_argument("--regenerate", action="store_true", help="rewrite the cached datasets")
    parser.add_argument(
        "--layout",
        choices=("folders", "hub"),
        default="folders",
        help="datasets in folders named by root, or in LeRobot 0.6's hub snapshot cache found by repo_id",
    )
    args = parser.parse_args(argv)

    if args.regenerate:
        (args.workdir / "params.json").unlink(missing_ok=True)
    mixture = generate(args.workdir, args.datasets, args.layout)
    # Entries without root are looked up here (hub layout); the real cache is never touched.
    os.environ["HF_LEROBOT_HOME"] = str(args.workdir / "lerobot_home")
    repeat = max(1, args.repeat)

    # Baseline 1: interpreter start alone.
    bare = [time_process([sys.executable, "-c", "pass"], args.workdir)[0] for _ in range(repeat)]

    # Baseline 2: interpreter start plus the CLI's imports (numpy, pyarrow, pluggy), no checking.
    imports = [
        time_process([sys.executable, "-c", "import fasttok_plugin.preflight.cli"], args.workdir)[0]
        for _ in range(repeat)
    ]

    # The real thing: the console script, text output (what a person runs), then every machine format.
    # "Before" (--jobs 1: one dataset after the other, as before the thread pool) and "after" (the default
    # pool) interleave, with the datasets' files warm in the page cache and evicted from it (cold: what a
    # first run after a checkout, or a network filesystem, sees), so all four see the same machine load.
    datasets = args.workdir / ("lerobot_home" if args.layout == "hub" else "datasets")
    cli: dict[tuple[str, str], list[float]] = {}
    proc = None
    for _ in range(repeat):
        for cache in ("warm", "cold"):
            for jobs in ("1", str(DEFAULT_METADATA_THREADS)):
                if cache == "cold":
                    evict_from_page_cache(datasets)
                seconds, proc = time_process([*cli_command(), str(mixture), "--jobs", jobs], args.workdir)
                cli.setdefault((cache, jobs), []).append(seconds)
    assert proc is not None
    if proc.returncode not in (0, 1):
        print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n")
        raise SystemExit(f"fasttok-preflight failed with exit {proc.returncode}")
    summary = proc.stdout.strip().splitlines()[-1]
    format_times = {}
    for fmt in ("json", "github", "junit", "sarif"):
        format_times[fmt] = time_process([*cli_command(), str(mixture), "--format", fmt], args.workdir)[0]

    # Baseline 3: the same checks in-process (no interpreter start, imports already warm).
    from fasttok_plugin.preflight import run_preflight

    in_process: dict[tuple[str, int], list[float]] = {}
    for _ in range(repeat):
        for cache in ("warm", "cold"):
            for jobs in (1, DEFAULT_METADATA_THREADS):
                if cache == "cold":
                    evict_from_page_cache(datasets)
                started = time.perf_counter()
                result = run_preflight(mixture, jobs=jobs)
                in_process.setdefault((cache, jobs), []).append(time.perf_counter() - started)

    after = str(DEFAULT_METADATA_THREADS)
    print(
        f"mixture: {result.n_datasets} datasets ({args.layout}), {len(result.findings)} findings ({summary})"
    )
    print(describe("python -c pass", bare))
    print(describe("imports of the CLI", imports))
    for (cache, jobs), values in in_process.items():
        print(describe(f"run_preflight {cache}, jobs={jobs}", values))
    for (cache, jobs), values in cli.items():
        print(describe(f"CLI {cache} --jobs {jobs}", values))
    for fmt, seconds in format_times.items():
        print(f"{'fasttok-preflight (' + fmt + ')':>28}: {seconds:6.3f} s")
    for cache in ("warm", "cold"):
        before_s, after_s = statistics.median(cli[cache, "1"]), statistics.median(cli[cache, after])
        print(
            f"parallel metadata reads, {cache} cache: end to end {before_s:.3f} s -> {after_s:.3f} s "
            f"({before_s / after_s:.2f}x); in-process {statistics.median(in_process[cache, 1]):.3f} s -> "
            f"{statistics.median(in_process[cache, DEFAULT_METADATA_THREADS]):.3f} s"
        )
    median = statistics.median(cli["warm", after])
    warm_in_process = statistics.median(in_process["warm", DEFAULT_METADATA_THREADS])
    print(
        f"end to end / in-process: {median / warm_in_process:.1f}x; "
        f"interpreter start is {statistics.median(bare) / median:.0%} of the end-to-end time"
    )
    verdict = "OK" if median < TARGET_SECONDS else "MISSED"
    print(
        f"target: end to end < {TARGET_SECONDS:.1f} s for {result.n_datasets} datasets -> "
        f"median {median:.3f} s: {verdict}"
    )
    return 0 if median < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
