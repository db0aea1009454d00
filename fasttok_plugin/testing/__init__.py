"""Small, real LeRobot datasets (v2.1 and v3.0) and mixture files, for tests, examples and benchmarks.

Not part of the core import path: nothing in ``fasttok_plugin`` imports this package. Every dataset is
written with pyarrow in LeRobot's own layout, so the readers are exercised against the real format.

Modules: `datasets` (`write_lerobot_dataset`, `SyntheticDataset`), `mixtures` (`write_mixture`,
`make_example_mixture`); private `_frames`, `_v21`, `_v30`, `_files` hold the layout details.
"""

from __future__ import annotations

from fasttok_plugin.testing.datasets import SyntheticDataset, episode_stats, write_lerobot_dataset
from fasttok_plugin.testing.mixtures import make_example_mixture, write_mixture

__all__ = [
    "SyntheticDataset",
    "episode_stats",
    "make_example_mixture",
    "write_lerobot_dataset",
    "write_mixture",
]
