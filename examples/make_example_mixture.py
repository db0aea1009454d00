"""Write a small multi-robot LeRobot mixture (v2.1 and v3.0 datasets, several heads, one fallback entry).

    python examples/make_example_mixture.py --out runs/demo/data
    fasttok-preflight runs/demo/data/mixture.json --chunk-size 16 --max-action-dim 16

The datasets are real LeRobot folders written with pyarrow (smooth synthetic trajectories); the mixture file
refers to them with paths relative to itself, so the folder can be moved as a whole.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fasttok_plugin.testing import make_example_mixture


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo/data"), help="folder to write (default: %(default)s)"
    )
    parser.add_argument(
        "--n-datasets", type=int, default=6, help="mixture entries, at least 1 (default: %(default)s)"
    )
    parser.add_argument(
        "--episode-lengths",
        type=int,
        nargs="+",
        default=[40, 56],
        metavar="N",
        help="frames of each episode of every dataset (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the trajectories (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.n_datasets < 1:
        print(f"error: --n-datasets must be at least 1, got {args.n_datasets}", file=sys.stderr)
        return 2
    if any(length < 1 for length in args.episode_lengths):
        print(f"error: --episode-lengths must be positive, got {args.episode_lengths}", file=sys.stderr)
        return 2
    path = make_example_mixture(
        args.out, n_datasets=args.n_datasets, seed=args.seed, episode_lengths=tuple(args.episode_lengths)
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
